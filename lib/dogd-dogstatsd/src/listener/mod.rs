//! Listeners: read packets from sockets in batches and hand them to the parsers through a
//! bounded queue. A full queue never blocks a reader for long: past a short wait the packets are
//! dropped and counted, so the kernel buffer keeps draining.

pub(crate) mod udp;
pub(crate) mod uds;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dogd_telemetry::Counter;
use tokio::sync::mpsc;

use crate::origin::Origin;

/// How a packet arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A UDP datagram.
    Udp,
    /// A Unix datagram.
    UnixDatagram,
    /// A frame on a Unix stream connection.
    UnixStream,
}

impl Transport {
    /// The label used in telemetry and status.
    pub fn label(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::UnixDatagram => "uds",
            Self::UnixStream => "uds_stream",
        }
    }

    /// Whether messages must end with a newline on this transport.
    pub(crate) fn eol_required(self, udp: bool, uds: bool) -> bool {
        match self {
            Self::Udp => udp,
            Self::UnixDatagram | Self::UnixStream => uds,
        }
    }
}

/// One packet: newline-separated messages, and where it came from.
#[derive(Clone, Debug)]
pub struct Packet {
    /// The packet's bytes (a slice of a shared batch buffer).
    pub data: Bytes,
    /// The sender, when origin detection found it.
    pub origin: Option<Arc<Origin>>,
    /// How it arrived.
    pub transport: Transport,
}

/// Packets read together.
pub type PacketBatch = Vec<Packet>;

/// The most packets read in one batch (one recvmmsg call).
pub(crate) const BATCH_PACKETS: usize = 32;

/// How long a reader waits for room in a full queue before dropping the batch.
const QUEUE_WAIT: Duration = Duration::from_millis(5);

/// Copies the received lengths of `buffers` into one allocation, sliced per packet.
pub(crate) fn pack(
    buffers: &[Vec<u8>],
    lengths: &[usize],
    transport: Transport,
    origin: Option<&Arc<Origin>>,
) -> PacketBatch {
    let total: usize = lengths.iter().sum();
    let mut joined = BytesMut::with_capacity(total);
    for (buffer, length) in buffers.iter().zip(lengths) {
        joined.extend_from_slice(&buffer[..*length]);
    }
    let mut joined = joined.freeze();
    lengths
        .iter()
        .map(|length| Packet {
            data: joined.split_to(*length),
            origin: origin.cloned(),
            transport,
        })
        .collect()
}

/// The parser workers' queues; listeners hand batches to them in turn.
#[derive(Clone, Debug)]
pub(crate) struct Queues {
    senders: Arc<[mpsc::Sender<PacketBatch>]>,
    next: Arc<AtomicUsize>,
}

impl Queues {
    pub(crate) fn new(senders: Vec<mpsc::Sender<PacketBatch>>) -> Self {
        Self {
            senders: senders.into(),
            next: Arc::default(),
        }
    }

    fn pick(&self) -> Option<&mpsc::Sender<PacketBatch>> {
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        self.senders.get(index % self.senders.len().max(1))
    }

    /// Batches waiting in all queues.
    pub(crate) fn queued(&self) -> usize {
        self.senders
            .iter()
            .map(|sender| sender.max_capacity() - sender.capacity())
            .sum()
    }
}

/// Sends a batch to the parsers, dropping it (and counting its packets) if the queue stays full.
pub(crate) async fn enqueue(queues: &Queues, batch: PacketBatch, dropped: &Counter) {
    let packets = batch.len() as u64;
    let Some(queue) = queues.pick() else {
        return;
    };
    let batch = match queue.try_send(batch) {
        Ok(()) => return,
        Err(mpsc::error::TrySendError::Closed(_)) => return,
        Err(mpsc::error::TrySendError::Full(batch)) => batch,
    };
    match tokio::time::timeout(QUEUE_WAIT, queue.send(batch)).await {
        Ok(Ok(())) => {}
        Ok(Err(_closed)) => {}
        Err(_elapsed) => dropped.add(packets),
    }
}

/// Counters one listener updates.
#[derive(Clone, Debug)]
pub(crate) struct ListenerCounters {
    pub(crate) packets: Counter,
    pub(crate) bytes: Counter,
    pub(crate) read_errors: Counter,
    pub(crate) dropped: Counter,
    pub(crate) origin_errors: Counter,
}
