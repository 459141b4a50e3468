//! Structured, owned copies of the registry's values, for status pages, flares and tests.

use std::fmt;

/// What a family measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down (including callback gauges).
    Gauge,
    /// A distribution in cumulative buckets.
    Histogram,
}

impl MetricKind {
    /// The Prometheus `# TYPE` word: `counter`, `gauge` or `histogram`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One family and all its series, at the time of [`Registry::snapshot`](crate::Registry::snapshot).
#[derive(Clone, Debug, PartialEq)]
pub struct FamilySnapshot {
    /// The metric name, exactly as registered.
    pub name: String,
    /// The help text.
    pub help: String,
    /// The kind.
    pub kind: MetricKind,
    /// The label names, in registration order.
    pub label_names: Vec<String>,
    /// The series, sorted by label values. Empty for a labelled family nothing has resolved yet.
    pub series: Vec<SeriesSnapshot>,
}

/// One series of a family.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSnapshot {
    /// One value per label name, in the family's label-name order.
    pub label_values: Vec<String>,
    /// The series' value; its variant matches the family's kind.
    pub value: SeriesValue,
}

/// A series' value.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesValue {
    /// A counter's count.
    Counter(u64),
    /// A gauge's value.
    Gauge(f64),
    /// A histogram's buckets, count and sum.
    Histogram(HistogramSnapshot),
}

/// A histogram's state.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// One bucket per finite upper bound, in increasing order, with cumulative counts. The implicit
    /// `+Inf` bucket is not listed: its count is [`HistogramSnapshot::count`].
    pub buckets: Vec<Bucket>,
    /// How many values were observed.
    pub count: u64,
    /// The sum of the observed values.
    pub sum: f64,
}

/// One cumulative histogram bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// The bucket's upper bound (Prometheus `le`, inclusive).
    pub upper_bound: f64,
    /// How many observed values were less than or equal to `upper_bound`.
    pub cumulative_count: u64,
}
