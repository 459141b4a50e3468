//! Unix socket listeners: datagrams (with SCM_CREDENTIALS for origin detection) and streams
//! (4-byte little-endian length-prefixed frames, with SO_PEERCRED for origin detection).

use std::io::IoSliceMut;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use tokio::io::{AsyncReadExt as _, BufReader, Interest};
use tokio::net::{UnixDatagram, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{BATCH_PACKETS, ListenerCounters, Packet, Queues, Transport, enqueue, pack};
use crate::origin::{Origin, OriginResolver};

/// Why a socket file could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketFileError {
    /// Something other than a socket is at the path: it is left alone.
    #[error(
        "{key} {path} exists and is not a socket; refusing to delete it (remove it or choose another path)"
    )]
    NotASocket {
        /// The config key.
        key: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The path could not be prepared or bound.
    #[error("cannot listen on {key} {path}: {source}")]
    Io {
        /// The config key.
        key: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A bound socket file, removed when dropped (on stop).
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                "cannot remove the socket file {}: {error}",
                self.path.display()
            );
        }
    }
}

/// Removes a stale socket at `path` (a leftover of a previous run) but nothing else.
fn clear_path(key: &'static str, path: &Path) -> Result<(), SocketFileError> {
    let io = |source| SocketFileError::Io {
        key,
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io(error)),
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path).map_err(io),
        Ok(_) => Err(SocketFileError::NotASocket {
            key,
            path: path.to_owned(),
        }),
    }
}

/// Like the agent: anyone may write (clients run as other users), only the owner may read.
fn open_for_writers(key: &'static str, path: &Path) -> Result<SocketFile, SocketFileError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o722)).map_err(|source| {
        SocketFileError::Io {
            key,
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(SocketFile {
        path: path.to_owned(),
    })
}

/// Binds the datagram socket at `path`.
pub(crate) fn bind_datagram(
    path: &Path,
    so_rcvbuf: usize,
    pass_credentials: bool,
) -> Result<(UnixDatagram, SocketFile), SocketFileError> {
    const KEY: &str = "dogstatsd_socket";
    clear_path(KEY, path)?;
    let io = |source| SocketFileError::Io {
        key: KEY,
        path: path.to_owned(),
        source,
    };
    let socket = UnixDatagram::bind(path).map_err(io)?;
    let file = open_for_writers(KEY, path)?;
    if so_rcvbuf > 0 {
        setsockopt(&socket, sockopt::RcvBuf, &so_rcvbuf).map_err(|errno| io(errno.into()))?;
    }
    if pass_credentials {
        setsockopt(&socket, sockopt::PassCred, &true).map_err(|errno| io(errno.into()))?;
    }
    Ok((socket, file))
}

/// Binds the stream socket at `path`.
pub(crate) fn bind_stream(path: &Path) -> Result<(UnixListener, SocketFile), SocketFileError> {
    const KEY: &str = "dogstatsd_stream_socket";
    clear_path(KEY, path)?;
    let listener = UnixListener::bind(path).map_err(|source| SocketFileError::Io {
        key: KEY,
        path: path.to_owned(),
        source,
    })?;
    let file = open_for_writers(KEY, path)?;
    Ok((listener, file))
}

/// Reads datagrams until `shutdown`; the socket file is removed when this returns.
#[allow(
    clippy::too_many_arguments,
    reason = "a listener task's full wiring, built in one place"
)]
pub(crate) async fn run_datagram(
    socket: UnixDatagram,
    file: SocketFile,
    buffer_size: usize,
    origins: Option<OriginResolver>,
    queue: Queues,
    counters: ListenerCounters,
    shutdown: CancellationToken,
) {
    let _file = file;
    let mut buffer = vec![0u8; buffer_size];
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            ready = socket.readable() => if let Err(error) = ready {
                tracing::warn!("DogStatsD Unix socket failed: {error}");
                break;
            },
        }
        let mut batch = Vec::with_capacity(BATCH_PACKETS);
        while batch.len() < BATCH_PACKETS {
            let received = socket.try_io(Interest::READABLE, || {
                receive(&socket, &mut buffer, origins.is_some())
            });
            match received {
                Ok((length, pid)) => {
                    counters.packets.inc();
                    counters.bytes.add(length as u64);
                    let origin = match (&origins, pid) {
                        (Some(resolver), Some(pid)) if pid > 0 => {
                            Some(Arc::new(resolver.resolve(pid)))
                        }
                        (Some(_), _) => {
                            // pid 0: the sender is in another pid namespace (the agent logs the same).
                            counters.origin_errors.inc();
                            None
                        }
                        (None, _) => None,
                    };
                    batch.extend(pack(
                        std::slice::from_ref(&buffer),
                        &[length],
                        Transport::UnixDatagram,
                        origin.as_ref(),
                    ));
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    counters.read_errors.inc();
                    tracing::debug!("DogStatsD Unix socket read error: {error}");
                    break;
                }
            }
        }
        if !batch.is_empty() {
            enqueue(&queue, batch, &counters.dropped).await;
        }
    }
}

/// One datagram and, with credentials passing on, the sender's pid.
fn receive(
    socket: &UnixDatagram,
    buffer: &mut [u8],
    credentials: bool,
) -> std::io::Result<(usize, Option<u32>)> {
    let mut iov = [IoSliceMut::new(buffer)];
    let mut space = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
    let control = credentials.then_some(space.as_mut_slice());
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        control,
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let pid = message
        .cmsgs()
        .ok()
        .into_iter()
        .flatten()
        .find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmCredentials(creds) => u32::try_from(creds.pid()).ok(),
            _ => None,
        });
    Ok((message.bytes, pid))
}

/// Accepts stream connections until `shutdown`; each connection is read on its own task.
#[allow(
    clippy::too_many_arguments,
    reason = "a listener task's full wiring, built in one place"
)]
pub(crate) async fn run_stream(
    listener: UnixListener,
    file: SocketFile,
    buffer_size: usize,
    origins: Option<OriginResolver>,
    queue: Queues,
    counters: ListenerCounters,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let _file = file;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                counters.read_errors.inc();
                tracing::debug!("DogStatsD stream accept error: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let origin = origins.as_ref().and_then(|resolver| {
            let pid = stream.peer_cred().ok()?.pid()?;
            match u32::try_from(pid) {
                Ok(pid) if pid > 0 => Some(Arc::new(resolver.resolve(pid))),
                _ => {
                    counters.origin_errors.inc();
                    None
                }
            }
        });
        let (queue, counters, shutdown) = (queue.clone(), counters.clone(), shutdown.clone());
        tasks.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = read_frames(stream, buffer_size, origin, &queue, &counters) => {}
            }
        });
    }
}

/// Reads length-prefixed frames until EOF or a bad frame.
async fn read_frames(
    stream: UnixStream,
    buffer_size: usize,
    origin: Option<Arc<Origin>>,
    queue: &Queues,
    counters: &ListenerCounters,
) {
    let mut reader = BufReader::with_capacity(buffer_size.max(4096) + 4, stream);
    loop {
        let length = match reader.read_u32_le().await {
            Ok(length) => length as usize,
            // EOF between frames is the client closing: normal.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return,
            Err(error) => {
                counters.read_errors.inc();
                tracing::debug!("DogStatsD stream read error: {error}");
                return;
            }
        };
        if length > buffer_size {
            counters.read_errors.inc();
            tracing::warn!(
                "DogStatsD stream frame of {length} bytes exceeds dogstatsd_buffer_size ({buffer_size}); closing the connection"
            );
            return;
        }
        let mut frame = vec![0u8; length];
        if let Err(error) = reader.read_exact(&mut frame).await {
            counters.read_errors.inc();
            tracing::debug!("DogStatsD stream frame cut short: {error}");
            return;
        }
        counters.packets.inc();
        counters.bytes.add(length as u64);
        let packet = Packet {
            data: frame.into(),
            origin: origin.clone(),
            transport: Transport::UnixStream,
        };
        enqueue(queue, vec![packet], &counters.dropped).await;
    }
}
