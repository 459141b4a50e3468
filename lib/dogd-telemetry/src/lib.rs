//! Internal metrics: counters, gauges and histograms with labels, and their Prometheus text
//! exposition (format 0.0.4).
//!
//! There is no global state. The binary creates one [`Registry`] and hands clones of it (cheap:
//! an `Arc`) to every component. A component registers its metric *families* once
//! ([`Registry::counter`], [`Registry::gauge`], [`Registry::histogram`], or the
//! [`Registry::family`] builder for a per-family series limit), resolves each labelled *series*
//! once into a handle ([`CounterVec::with`] → [`Counter`]), and updates the handle on its hot path:
//! an update is one atomic operation, with no lock and no allocation.
//!
//! Rendering ([`Registry::render_prometheus`]) and the structured [`Registry::snapshot`] are
//! deterministic: families sorted by name, series sorted by label values.
//!
//! This crate is deliberately generic: it knows nothing about Datadog, DogStatsD or the agent.
//! Metric names are exposed exactly as given (no `_total` suffix is appended).
//!
//! # Label values
//!
//! [`CounterVec::with`] (and its gauge and histogram twins) take one value per label name, in the
//! order the names were registered. A wrong number of values never panics: missing trailing values
//! are the empty string and extra values are ignored.
//!
//! # Cardinality
//!
//! Each family holds at most [`DEFAULT_MAX_SERIES`] series unless configured otherwise
//! ([`Registry::with_default_max_series`], [`FamilyBuilder::max_series`]). Once a family is full,
//! every new label set resolves to one shared overflow series whose label values are all
//! [`OVERFLOW_LABEL_VALUE`]; series resolved before that keep working.
//!
//! # Example
//!
//! ```
//! use dogd_telemetry::Registry;
//!
//! let registry = Registry::new();
//! let packets = registry
//!     .counter("udp_packets", "UDP packets read.", &["listener"])
//!     .expect("valid and first registration");
//! let udp = packets.with(&["udp"]); // resolve once...
//! udp.inc(); // ...then increment without locking
//! udp.add(2);
//!
//! assert_eq!(
//!     registry.render_prometheus(),
//!     concat!(
//!         "# HELP udp_packets UDP packets read.\n",
//!         "# TYPE udp_packets counter\n",
//!         "udp_packets{listener=\"udp\"} 3\n",
//!     )
//! );
//! ```

#![warn(missing_docs)]

mod error;
mod family;
mod metrics;
mod registry;
mod snapshot;
mod text;

pub use error::TelemetryError;
pub use family::{CounterVec, GaugeVec, HistogramVec};
pub use metrics::{Counter, Gauge, Histogram};
pub use registry::{FamilyBuilder, Registry};
pub use snapshot::{
    Bucket, FamilySnapshot, HistogramSnapshot, MetricKind, SeriesSnapshot, SeriesValue,
};
pub use text::render_prometheus;

/// Histogram bucket upper bounds used when nothing better is known: the Prometheus
/// `client_golang` `DefBuckets`, in seconds.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How many series a family holds before new label sets go to the overflow series, unless
/// configured otherwise.
pub const DEFAULT_MAX_SERIES: usize = 1000;

/// The value of every label of a family's overflow series.
pub const OVERFLOW_LABEL_VALUE: &str = "__overflow__";

/// The `Content-Type` of [`Registry::render_prometheus`]'s output (Prometheus text format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
