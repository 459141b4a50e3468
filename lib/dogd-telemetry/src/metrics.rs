//! Series handles: counters, gauges and histograms, each an `Arc` of atomics.
//!
//! Every update is lock-free and allocation-free. Loads and stores are `Relaxed`: metrics are
//! independent statistics, not synchronisation.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::snapshot::{Bucket, HistogramSnapshot};

/// Adds `delta` to the `f64` whose bits are stored in `cell`, with a compare-and-swap loop.
fn add_f64(cell: &AtomicU64, delta: f64) {
    // The closure always returns `Some`, so `fetch_update` cannot fail.
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        Some((f64::from_bits(bits) + delta).to_bits())
    });
}

/// A counter series' storage.
#[derive(Debug, Default)]
pub(crate) struct CounterCell(AtomicU64);

impl CounterCell {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A monotonically increasing count: one series of a [`CounterVec`](crate::CounterVec).
///
/// Cloning is cheap and every clone updates the same series. The count wraps around at
/// `u64::MAX`. [`Counter::default`] makes a counter attached to no registry (handy for tests and
/// for components built without telemetry).
#[derive(Clone, Default)]
pub struct Counter {
    cell: Arc<CounterCell>,
}

impl Counter {
    pub(crate) fn from_cell(cell: Arc<CounterCell>) -> Self {
        Self { cell }
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.cell.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.cell.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.cell.get()
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter")
            .field("value", &self.get())
            .finish()
    }
}

/// A gauge series' storage: the bits of an `f64` (all-zero bits are `0.0`).
#[derive(Debug, Default)]
pub(crate) struct GaugeCell(AtomicU64);

impl GaugeCell {
    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A value that goes up and down: one series of a [`GaugeVec`](crate::GaugeVec).
///
/// Cloning is cheap and every clone updates the same series. [`Gauge::default`] makes a gauge
/// attached to no registry.
#[derive(Clone, Default)]
pub struct Gauge {
    cell: Arc<GaugeCell>,
}

impl Gauge {
    pub(crate) fn from_cell(cell: Arc<GaugeCell>) -> Self {
        Self { cell }
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, value: f64) {
        self.cell.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// Adds `delta` (which may be negative).
    #[inline]
    pub fn add(&self, delta: f64) {
        add_f64(&self.cell.0, delta);
    }

    /// Subtracts `delta`.
    #[inline]
    pub fn sub(&self, delta: f64) {
        add_f64(&self.cell.0, -delta);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        self.cell.get()
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge").field("value", &self.get()).finish()
    }
}

/// A histogram series' storage.
#[derive(Debug)]
pub(crate) struct HistogramCell {
    /// Finite upper bounds, strictly increasing (validated at registration).
    bounds: Arc<[f64]>,
    /// Non-cumulative counts: `counts[i]` for `bounds[i]`, plus one last slot for `+Inf`.
    counts: Box<[AtomicU64]>,
    /// The bits of the `f64` sum of observations.
    sum: AtomicU64,
}

impl HistogramCell {
    pub(crate) fn new(bounds: Arc<[f64]>) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            bounds,
            counts,
            sum: AtomicU64::new(0),
        }
    }

    #[inline]
    fn observe(&self, value: f64) {
        // Prometheus `le` is "less than or equal": the first bound >= value. NaN is greater than
        // nothing, so it only lands in `+Inf` (like client_golang).
        let index = if value.is_nan() {
            self.bounds.len()
        } else {
            self.bounds.partition_point(|bound| *bound < value)
        };
        if let Some(count) = self.counts.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        add_f64(&self.sum, value);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative = cumulative.wrapping_add(count.load(Ordering::Relaxed));
            buckets.push(Bucket {
                upper_bound: *bound,
                cumulative_count: cumulative,
            });
        }
        let infinite = self
            .counts
            .last()
            .map_or(0, |count| count.load(Ordering::Relaxed));
        HistogramSnapshot {
            buckets,
            // Derived from the buckets so that `count` always equals the `+Inf` bucket, even while
            // other threads observe.
            count: cumulative.wrapping_add(infinite),
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// A distribution of observed values in cumulative buckets: one series of a
/// [`HistogramVec`](crate::HistogramVec).
///
/// Cloning is cheap and every clone updates the same series.
#[derive(Clone)]
pub struct Histogram {
    cell: Arc<HistogramCell>,
}

impl Histogram {
    pub(crate) fn from_cell(cell: Arc<HistogramCell>) -> Self {
        Self { cell }
    }

    /// Records one observation: it counts in the first bucket whose upper bound is greater than or
    /// equal to it (and so in every later cumulative bucket), and is added to the sum.
    #[inline]
    pub fn observe(&self, value: f64) {
        self.cell.observe(value);
    }

    /// The current buckets, count and sum.
    pub fn snapshot(&self) -> HistogramSnapshot {
        self.cell.snapshot()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.snapshot();
        f.debug_struct("Histogram")
            .field("count", &snapshot.count)
            .field("sum", &snapshot.sum)
            .finish()
    }
}
