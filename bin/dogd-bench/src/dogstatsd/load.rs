//! The load generator: DogStatsD counters over UDP or a Unix datagram socket, paced to a target
//! rate with `sendmmsg`, counting what the kernel actually took.

use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

/// Datagrams handed to one `sendmmsg` call at most.
const BATCH: usize = 64;

/// How long a Unix datagram send may block before the datagram is dropped, like the
/// datadog-go client's default write timeout.
const UDS_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// The most a late sender catches up at once: a sender that was not scheduled for longer skips
/// the rest instead of flooding the server with a burst no real client sends.
const MAX_BURST: Duration = Duration::from_micros(250);

/// What the lines look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// DogStatsD: `bench.metric.<i % 100>:1|c|#env:bench,service:ingest,ctx:<i>` (~55 bytes).
    Tagged,
    /// Plain StatsD, the context in the name: `bench.metric.<i % 100>.ctx_<i>:1|c` (~30 bytes),
    /// which every peer can parse (collectd rejects `|#` tags).
    Plain,
}

impl Format {
    /// The label used in tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Tagged => "tagged",
            Self::Plain => "plain",
        }
    }

    /// The counter line of context `i` (without its newline).
    pub(crate) fn line(self, i: usize) -> String {
        match self {
            Self::Tagged => format!(
                "bench.metric.{}:1|c|#env:bench,service:ingest,ctx:{i}",
                i % 100
            ),
            Self::Plain => format!("bench.metric.{}.ctx_{i}:1|c", i % 100),
        }
    }
}

/// A pool of datagrams covering every context once, sent in a loop.
#[derive(Debug)]
pub(crate) struct Traffic {
    datagrams: Vec<Vec<u8>>,
    /// Lines (samples) in each datagram.
    samples: Vec<u64>,
}

impl Traffic {
    /// Lines of `contexts` contexts, packed up to `max_bytes` per datagram (newline-terminated,
    /// like buffering clients), or one line per datagram when `max_bytes` is 0.
    pub(crate) fn new(format: Format, contexts: usize, max_bytes: usize) -> Self {
        let mut datagrams = Vec::new();
        let mut samples = Vec::new();
        let mut current = Vec::new();
        let mut lines = 0;
        for i in 0..contexts.max(1) {
            let line = format.line(i);
            if lines > 0 && (max_bytes == 0 || current.len() + line.len() + 1 > max_bytes) {
                datagrams.push(std::mem::take(&mut current));
                samples.push(lines);
                lines = 0;
            }
            current.extend_from_slice(line.as_bytes());
            current.push(b'\n');
            lines += 1;
        }
        datagrams.push(current);
        samples.push(lines);
        Self { datagrams, samples }
    }

    /// Samples in one pass over the pool (the number of contexts).
    pub(crate) fn samples_per_pass(&self) -> u64 {
        self.samples.iter().sum()
    }

    /// Mean samples per datagram.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn samples_per_datagram(&self) -> f64 {
        self.samples_per_pass() as f64 / self.datagrams.len() as f64
    }

    /// Mean datagram size in bytes.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn bytes_per_datagram(&self) -> f64 {
        let bytes: usize = self.datagrams.iter().map(Vec::len).sum();
        bytes as f64 / self.datagrams.len() as f64
    }
}

/// Where to send.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// A UDP address.
    Udp(SocketAddr),
    /// A Unix datagram socket path.
    Uds(PathBuf),
}

impl Target {
    /// The label used in tables.
    pub(crate) fn transport(&self) -> &'static str {
        match self {
            Self::Udp(_) => "UDP",
            Self::Uds(_) => "UDS",
        }
    }

    fn connect(&self) -> anyhow::Result<OwnedFd> {
        Ok(match self {
            Self::Udp(addr) => {
                let socket = UdpSocket::bind("127.0.0.1:0")?;
                socket.connect(addr)?;
                socket.into()
            }
            Self::Uds(path) => {
                let socket = UnixDatagram::unbound()?;
                socket
                    .connect(path)
                    .with_context(|| format!("connecting to {}", path.display()))?;
                socket.set_write_timeout(Some(UDS_WRITE_TIMEOUT))?;
                socket.into()
            }
        })
    }
}

/// What one run sent.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sent {
    /// Samples in datagrams the kernel accepted.
    pub(crate) samples: u64,
    /// Datagrams the kernel accepted.
    pub(crate) datagrams: u64,
    /// Samples in datagrams dropped by the sender: a Unix send that blocked past the write
    /// timeout, or a UDP send refused.
    pub(crate) lost: u64,
    /// How long sending took.
    pub(crate) elapsed: Duration,
    /// Sending time skipped because the sender fell more than [`MAX_BURST`] behind (it was not
    /// scheduled): that traffic is not sent later in one burst.
    pub(crate) stalled: Duration,
}

impl Sent {
    /// Samples per second actually sent.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn rate(&self) -> f64 {
        self.samples as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A connected sender that goes round the traffic pool.
#[derive(Debug)]
pub(crate) struct Sender {
    socket: OwnedFd,
    next: usize,
}

impl Sender {
    /// Connects to `target`.
    pub(crate) fn new(target: &Target) -> anyhow::Result<Self> {
        Ok(Self {
            socket: target.connect()?,
            next: 0,
        })
    }

    /// Sends `traffic` at `rate` samples/s (infinite: as fast as possible) for `duration`,
    /// or until `max_samples` were attempted.
    pub(crate) fn run(
        &mut self,
        traffic: &Traffic,
        rate: f64,
        duration: Duration,
        max_samples: u64,
    ) -> anyhow::Result<Sent> {
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let addrs = vec![None::<SockaddrStorage>; BATCH];
        let pool = traffic.datagrams.len();
        let mut sent = Sent::default();
        let mut attempted = 0u64;
        // Samples not sent because the sender stalled.
        let mut skipped = 0u64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let max_burst = (rate * MAX_BURST.as_secs_f64()).max(1.0) as u64;
        let started = Instant::now();
        loop {
            let elapsed = started.elapsed();
            if elapsed >= duration || attempted >= max_samples {
                break;
            }
            // Samples that should have gone by now.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let due = if rate.is_finite() {
                ((rate * elapsed.as_secs_f64()) as u64 - skipped).min(max_samples)
            } else {
                max_samples
            };
            if rate.is_finite() && due > attempted + max_burst {
                skipped += due - attempted - max_burst;
                continue;
            }
            if attempted >= due {
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
            let mut count = 0;
            let mut batch_samples = 0;
            while count < BATCH && attempted + batch_samples < due {
                batch_samples += traffic.samples[(self.next + count) % pool];
                count += 1;
            }
            let slices: Vec<[IoSlice<'_>; 1]> = (0..count)
                .map(|j| [IoSlice::new(&traffic.datagrams[(self.next + j) % pool])])
                .collect();
            let result = sendmmsg(
                self.socket.as_raw_fd(),
                &mut headers,
                &slices,
                &addrs,
                [],
                MsgFlags::empty(),
            )
            .map(Iterator::count);
            let (done, accepted) = match result {
                Ok(done) => (done, true),
                Err(Errno::EINTR) => continue,
                // The write timeout passed (Unix) or the port refused (UDP): that datagram is lost.
                Err(Errno::EAGAIN | Errno::ECONNREFUSED) => (1, false),
                Err(error) => bail!("sendmmsg: {error}"),
            };
            for _ in 0..done {
                let samples = traffic.samples[self.next];
                attempted += samples;
                if accepted {
                    sent.samples += samples;
                    sent.datagrams += 1;
                } else {
                    sent.lost += samples;
                }
                self.next = (self.next + 1) % pool;
            }
        }
        sent.elapsed = started.elapsed();
        if rate.is_finite() {
            #[allow(clippy::cast_precision_loss)]
            let stalled = skipped as f64 / rate;
            sent.stalled = Duration::from_secs_f64(stalled);
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_packs_lines_up_to_the_limit_and_covers_every_context() {
        let traffic = Traffic::new(Format::Tagged, 1000, 1400);
        assert_eq!(traffic.samples_per_pass(), 1000);
        assert!(traffic.datagrams.iter().all(|d| d.len() <= 1400));
        assert!(traffic.samples_per_datagram() > 20.0);
        let single = Traffic::new(Format::Plain, 10, 0);
        assert_eq!(single.datagrams.len(), 10);
        assert_eq!(single.datagrams[3], b"bench.metric.3.ctx_3:1|c\n");
    }

    #[test]
    fn sender_counts_what_it_sent() {
        let receiver = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let target = Target::Udp(receiver.local_addr().expect("addr"));
        let traffic = Traffic::new(Format::Plain, 100, 200);
        let mut sender = Sender::new(&target).expect("sender");
        let sent = sender
            .run(&traffic, f64::INFINITY, Duration::from_secs(5), 100)
            .expect("run");
        assert_eq!(sent.samples, 100);
        let mut buffer = [0u8; 512];
        let mut lines = 0;
        receiver.set_nonblocking(true).expect("nonblocking");
        while let Ok(n) = receiver.recv(&mut buffer) {
            lines += buffer[..n].iter().filter(|b| **b == b'\n').count();
        }
        assert_eq!(lines, 100);
    }
}
