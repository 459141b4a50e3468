//! What one flush produces: series, sketches, events and service checks, ready for a serializer
//! (the forwarder) or the local file sink.

use std::sync::Arc;

use async_trait::async_trait;
use dogd_dogstatsd::sample::{Event, ServiceCheck};

use crate::sketch::AgentSketch;

/// The intake's series types (MetricPayload.MetricType; COUNT is not produced by DogStatsD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeriesType {
    /// A count over the interval.
    Count,
    /// A per-second rate over the interval (`interval` is set).
    Rate,
    /// A gauge.
    Gauge,
}

impl SeriesType {
    /// The name used in JSON output (`count`, `rate`, `gauge`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Rate => "rate",
            Self::Gauge => "gauge",
        }
    }
}

/// One series point: (timestamp in Unix seconds, value).
pub type Point = (i64, f64);

/// A series: one context (and suffix, for histogram aggregates) and its points.
#[derive(Clone, Debug, PartialEq)]
pub struct Serie {
    /// Metric name (with a histogram suffix such as `.max` when derived).
    pub name: Arc<str>,
    /// Tags, sorted and de-duplicated.
    pub tags: Arc<[Arc<str>]>,
    /// Host (empty: none).
    pub host: Arc<str>,
    /// Type.
    pub series_type: SeriesType,
    /// Points, oldest first.
    pub points: Vec<Point>,
    /// Interval in seconds (10 for DogStatsD rates and counts; 0 for gauges).
    pub interval: i64,
    /// Whether the points came unaggregated through the no-aggregation pipeline (`T` timestamps).
    pub unaggregated: bool,
}

/// A distribution's sketches: one context, one sketch per closed bucket.
#[derive(Clone, Debug)]
pub struct SketchSerie {
    /// Metric name.
    pub name: Arc<str>,
    /// Tags, sorted and de-duplicated.
    pub tags: Arc<[Arc<str>]>,
    /// Host (empty: none).
    pub host: Arc<str>,
    /// (bucket start in Unix seconds, sketch), oldest first.
    pub points: Vec<(i64, AgentSketch)>,
}

/// Everything one flush produces.
#[derive(Clone, Debug, Default)]
pub struct Flush {
    /// When the flush happened (Unix seconds).
    pub timestamp: i64,
    /// Series.
    pub series: Vec<Serie>,
    /// Sketches.
    pub sketches: Vec<SketchSerie>,
    /// Events, with their timestamps filled in.
    pub events: Vec<Event>,
    /// Service checks, with their timestamps filled in.
    pub service_checks: Vec<ServiceCheck>,
}

impl Flush {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
            && self.sketches.is_empty()
            && self.events.is_empty()
            && self.service_checks.is_empty()
    }
}

/// Where flushes go: the serializer + forwarder, or the local file sink.
#[async_trait]
pub trait FlushSink: Send + Sync {
    /// Takes one flush. Called in order; the aggregator waits for it before the next flush.
    async fn flush(&self, flush: Flush);
}
