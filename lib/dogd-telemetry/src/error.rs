//! Errors from registering metric families.

use std::fmt;

/// Why a metric family could not be registered. Registration never panics; every message names the
/// metric.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The metric name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    InvalidMetricName {
        /// The name as given.
        name: String,
    },
    /// A label name does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidLabelName {
        /// The metric.
        metric: String,
        /// The label name as given.
        label: String,
    },
    /// A label name is given twice.
    DuplicateLabelName {
        /// The metric.
        metric: String,
        /// The repeated label name.
        label: String,
    },
    /// A label name is reserved: names starting with `__` (reserved by Prometheus), and `le` on a
    /// histogram (used for its buckets).
    ReservedLabelName {
        /// The metric.
        metric: String,
        /// The reserved label name.
        label: String,
    },
    /// Histogram bucket bounds are not strictly increasing, or one is NaN.
    InvalidBuckets {
        /// The metric.
        metric: String,
        /// What is wrong with them.
        reason: String,
    },
    /// The name is already registered with a different kind, label names, help text or buckets,
    /// as a callback gauge, or it collides with a histogram's `_bucket`, `_sum` or `_count` series.
    Conflict {
        /// The metric.
        name: String,
        /// How the registrations differ.
        reason: String,
    },
}

impl fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidMetricName { name } => {
                write!(
                    f,
                    "invalid metric name {name:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*"
                )
            }
            Self::InvalidLabelName { metric, label } => write!(
                f,
                "metric {metric}: invalid label name {label:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"
            ),
            Self::DuplicateLabelName { metric, label } => {
                write!(
                    f,
                    "metric {metric}: label name {label:?} is given more than once"
                )
            }
            Self::ReservedLabelName { metric, label } => {
                write!(f, "metric {metric}: label name {label:?} is reserved")
            }
            Self::InvalidBuckets { metric, reason } => {
                write!(f, "metric {metric}: invalid histogram buckets: {reason}")
            }
            Self::Conflict { name, reason } => {
                write!(
                    f,
                    "metric {name} conflicts with an earlier registration: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for TelemetryError {}
