//! The UDP listener: `recvmmsg` drains up to a batch of datagrams per wake-up.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{BATCH_PACKETS, ListenerCounters, Queues, Transport, enqueue, pack};

/// Binds `addr` with SO_RCVBUF `so_rcvbuf` (0: OS default).
pub(crate) fn bind(addr: SocketAddr, so_rcvbuf: usize) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if so_rcvbuf > 0 {
        socket.set_recv_buffer_size(so_rcvbuf)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Reads datagrams until `shutdown`.
pub(crate) async fn run(
    socket: UdpSocket,
    buffer_size: usize,
    queue: Queues,
    counters: ListenerCounters,
    shutdown: CancellationToken,
) {
    let mut buffers = vec![vec![0u8; buffer_size]; BATCH_PACKETS];
    let mut lengths = Vec::with_capacity(BATCH_PACKETS);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            ready = socket.readable() => if let Err(error) = ready {
                tracing::warn!("DogStatsD UDP socket failed: {error}");
                break;
            },
        }
        // Drain everything the kernel holds before waiting again.
        loop {
            lengths.clear();
            let received = socket.try_io(Interest::READABLE, || {
                receive_batch(&socket, &mut buffers, &mut lengths)
            });
            match received {
                Ok(()) if lengths.is_empty() => break,
                Ok(()) => {
                    counters.packets.add(lengths.len() as u64);
                    counters.bytes.add(lengths.iter().sum::<usize>() as u64);
                    let batch = pack(&buffers, &lengths, Transport::Udp, None);
                    enqueue(&queue, batch, &counters.dropped).await;
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    counters.read_errors.inc();
                    tracing::debug!("DogStatsD UDP read error: {error}");
                    break;
                }
            }
        }
    }
}

/// One `recvmmsg` call: fills `lengths` with the size of each datagram received.
fn receive_batch(
    socket: &UdpSocket,
    buffers: &mut [Vec<u8>],
    lengths: &mut Vec<usize>,
) -> std::io::Result<()> {
    let mut slices: Vec<[IoSliceMut<'_>; 1]> = buffers
        .iter_mut()
        .map(|buffer| [IoSliceMut::new(buffer.as_mut_slice())])
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
    let results = recvmmsg(
        socket.as_raw_fd(),
        &mut headers,
        slices.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(std::io::Error::from)?;
    lengths.extend(results.map(|message| message.bytes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_recvmmsg_call_returns_every_queued_datagram_with_its_length() {
        let socket = bind("127.0.0.1:0".parse().expect("addr"), 0).expect("bind");
        let target = socket.local_addr().expect("addr");
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
        for payload in ["a:1|c", "bb:22|g", "ccc:333|d"] {
            sender.send_to(payload.as_bytes(), target).expect("send");
        }
        socket.readable().await.expect("readable");
        let mut buffers = vec![vec![0u8; 64]; 8];
        let mut lengths = Vec::new();
        receive_batch(&socket, &mut buffers, &mut lengths).expect("recvmmsg");
        assert_eq!(lengths, [5, 7, 9]);
        assert_eq!(&buffers[1][..7], b"bb:22|g");
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;

    #[tokio::test]
    async fn run_hands_datagrams_to_the_queue() {
        let registry = dogd_telemetry::Registry::new();
        let counter = |name: &str| registry.counter(name, "x", &[]).expect("counter").with(&[]);
        let counters = ListenerCounters {
            packets: counter("p"),
            bytes: counter("b"),
            read_errors: counter("e"),
            dropped: counter("d"),
            origin_errors: counter("o"),
        };
        let socket = bind("127.0.0.1:0".parse().expect("addr"), 0).expect("bind");
        let target = socket.local_addr().expect("addr");
        let (sender, mut receiver) = tokio::sync::mpsc::channel(4);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            socket,
            8192,
            super::super::Queues::new(vec![sender]),
            counters.clone(),
            stop.clone(),
        ));
        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
        client.send_to(b"hello:1|c", target).expect("send");
        let batch = receiver.recv().await.expect("batch");
        assert_eq!(&batch[0].data[..], b"hello:1|c");
        assert_eq!(counters.bytes.get(), 9);
        stop.cancel();
        task.await.expect("join");
    }
}
