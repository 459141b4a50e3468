//! What the server hands to the aggregator: metric samples with interned contexts, events and
//! service checks, in batches, through a [`SampleSink`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::context::{Context, ContextKey};
use crate::parse::MetricType;

/// Where a message came from, as far as the server could tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageOrigin {
    /// The sender's pid (Unix sockets with origin detection).
    pub pid: Option<u32>,
    /// The sender's container, from its cgroup.
    pub container_id: Option<Arc<str>>,
    /// The client-sent `c:` field (container id / cgroup inode), when honoured.
    pub local_data: Option<Arc<str>>,
    /// The client-sent `e:` field, when honoured.
    pub external_data: Option<Arc<str>>,
    /// The requested tag cardinality (`card:` or `dd.internal.card:`).
    pub cardinality: Option<Arc<str>>,
    /// A `dd.internal.entity_id:` tag (pod UID), when present and not `none`.
    pub entity_id: Option<Arc<str>>,
}

/// A sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleValue {
    /// Counters, gauges, histograms, timers, distributions.
    Number(f64),
    /// A set member.
    SetMember(Arc<str>),
}

/// One metric sample.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The context's key.
    pub key: ContextKey,
    /// The context (name, tags, host).
    pub context: Arc<Context>,
    /// The metric type.
    pub metric_type: MetricType,
    /// The value.
    pub value: SampleValue,
    /// The client's sample rate (1.0 when absent).
    pub sample_rate: f64,
    /// `T<timestamp>` when honoured: the sample bypasses aggregation.
    pub timestamp: Option<u64>,
    /// Where it came from.
    pub origin: Option<Arc<MessageOrigin>>,
}

/// An event (`_e{...}`), owned.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// `d:` date happened (unix seconds).
    pub timestamp: Option<i64>,
    /// Host (`h:`, else the `host:` tag, else the agent's hostname; empty: none).
    pub host: String,
    /// `k:` aggregation key.
    pub aggregation_key: Option<String>,
    /// `p:` priority (`normal` or `low`).
    pub priority: String,
    /// `s:` source type name.
    pub source_type_name: Option<String>,
    /// `t:` alert type (`error`, `warning`, `info`, `success`).
    pub alert_type: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Where it came from.
    pub origin: Option<Arc<MessageOrigin>>,
}

/// A service check (`_sc|...`), owned.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceCheck {
    /// Check name.
    pub name: String,
    /// Status: 0 OK, 1 warning, 2 critical, 3 unknown.
    pub status: u8,
    /// `d:` timestamp (unix seconds).
    pub timestamp: Option<i64>,
    /// Host (`h:`, else the `host:` tag, else the agent's hostname; empty: none).
    pub host: String,
    /// `m:` message.
    pub message: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Where it came from.
    pub origin: Option<Arc<MessageOrigin>>,
}

/// What one packet batch produced.
#[derive(Debug, Default)]
pub struct SampleBatch {
    /// Metric samples.
    pub samples: Vec<Sample>,
    /// Events.
    pub events: Vec<Event>,
    /// Service checks.
    pub service_checks: Vec<ServiceCheck>,
}

impl SampleBatch {
    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.events.is_empty() && self.service_checks.is_empty()
    }
}

/// Where parsed batches go (the aggregator). `accept` may wait for room; the server's packet
/// queue absorbs the wait and drops, counted, when it overflows.
#[async_trait]
pub trait SampleSink: Send + Sync {
    /// Takes a batch.
    async fn accept(&self, batch: SampleBatch);
}

/// A sink that counts and discards: what runs until an aggregator is wired in, and in tests.
#[derive(Debug, Default)]
pub struct CountingSink {
    samples: std::sync::atomic::AtomicU64,
    events: std::sync::atomic::AtomicU64,
    service_checks: std::sync::atomic::AtomicU64,
}

impl CountingSink {
    /// (samples, events, service checks) accepted so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.samples.load(Relaxed),
            self.events.load(Relaxed),
            self.service_checks.load(Relaxed),
        )
    }
}

#[async_trait]
impl SampleSink for CountingSink {
    async fn accept(&self, batch: SampleBatch) {
        use std::sync::atomic::Ordering::Relaxed;
        self.samples.fetch_add(batch.samples.len() as u64, Relaxed);
        self.events.fetch_add(batch.events.len() as u64, Relaxed);
        self.service_checks
            .fetch_add(batch.service_checks.len() as u64, Relaxed);
    }
}
