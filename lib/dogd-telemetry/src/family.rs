//! A metric family: its description and its series, keyed by label values.
//!
//! Resolving a series takes a read lock and (on a hit) allocates nothing: the map is keyed by
//! [`SeriesKey`] but looked up through the borrowed view [`Lookup`], which compares equal to an
//! owned key with the same values. A miss takes the write lock once to insert the series.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use crate::OVERFLOW_LABEL_VALUE;
use crate::metrics::{Counter, CounterCell, Gauge, GaugeCell, Histogram, HistogramCell};
use crate::snapshot::{FamilySnapshot, MetricKind, SeriesSnapshot, SeriesValue};

/// Label values viewed one by one, so an owned key and a borrowed lookup compare alike.
trait KeyView {
    fn len(&self) -> usize;
    fn at(&self, index: usize) -> &str;
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn KeyView + '_ {}

impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyView + '_ {
    /// Lexicographic over the values (byte order), then by length.
    fn cmp(&self, other: &Self) -> Ordering {
        let common = self.len().min(other.len());
        (0..common)
            .map(|index| self.at(index).cmp(other.at(index)))
            .find(|ordering| ordering.is_ne())
            .unwrap_or_else(|| self.len().cmp(&other.len()))
    }
}

/// The owned label values of a stored series.
#[derive(Debug)]
struct SeriesKey(Box<[String]>);

impl KeyView for SeriesKey {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn at(&self, index: usize) -> &str {
        self.0.get(index).map_or("", String::as_str)
    }
}

// Ordering is defined through `KeyView` so it agrees with `Borrow<dyn KeyView>`, as `BTreeMap`
// requires.
impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SeriesKey {}

impl PartialOrd for SeriesKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SeriesKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self as &dyn KeyView).cmp(other as &dyn KeyView)
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for SeriesKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// Borrowed label values normalised to `len` values: missing ones read as `fill`, extra ones are
/// ignored.
struct Lookup<'a> {
    values: &'a [&'a str],
    len: usize,
    fill: &'a str,
}

impl KeyView for Lookup<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn at(&self, index: usize) -> &str {
        self.values.get(index).copied().unwrap_or(self.fill)
    }
}

impl Lookup<'_> {
    fn to_key(&self) -> SeriesKey {
        SeriesKey(
            (0..self.len)
                .map(|index| self.at(index).to_owned())
                .collect(),
        )
    }
}

/// The storage of one kind of series.
pub(crate) trait Cell: Send + Sync + Sized + 'static {
    /// What every series of a family is built from (the bucket bounds of a histogram).
    type Config: Send + Sync + 'static;
    const KIND: MetricKind;
    fn new(config: &Self::Config) -> Self;
    fn value(&self) -> SeriesValue;
}

impl Cell for CounterCell {
    type Config = ();
    const KIND: MetricKind = MetricKind::Counter;
    fn new((): &()) -> Self {
        Self::default()
    }
    fn value(&self) -> SeriesValue {
        SeriesValue::Counter(self.get())
    }
}

impl Cell for GaugeCell {
    type Config = ();
    const KIND: MetricKind = MetricKind::Gauge;
    fn new((): &()) -> Self {
        Self::default()
    }
    fn value(&self) -> SeriesValue {
        SeriesValue::Gauge(self.get())
    }
}

impl Cell for HistogramCell {
    type Config = Arc<[f64]>;
    const KIND: MetricKind = MetricKind::Histogram;
    fn new(bounds: &Arc<[f64]>) -> Self {
        Self::new(Arc::clone(bounds))
    }
    fn value(&self) -> SeriesValue {
        SeriesValue::Histogram(self.snapshot())
    }
}

#[derive(Debug)]
struct SeriesMap<C> {
    map: BTreeMap<SeriesKey, Arc<C>>,
    /// Series inserted under the limit (the overflow series is not counted).
    regular: usize,
}

/// One registered family of series.
#[derive(Debug)]
pub(crate) struct Family<C: Cell> {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) label_names: Box<[String]>,
    pub(crate) max_series: usize,
    pub(crate) config: C::Config,
    series: RwLock<SeriesMap<C>>,
}

impl<C: Cell> Family<C> {
    pub(crate) fn new(
        name: String,
        help: String,
        label_names: Box<[String]>,
        max_series: usize,
        config: C::Config,
    ) -> Self {
        let family = Self {
            name,
            help,
            label_names,
            max_series,
            config,
            series: RwLock::new(SeriesMap {
                map: BTreeMap::new(),
                regular: 0,
            }),
        };
        if family.label_names.is_empty() {
            // An unlabelled family has exactly one series: expose it (at zero) from the start.
            family.resolve(&[]);
        }
        family
    }

    /// The series for these label values, created on first use; the overflow series once the
    /// family is full.
    pub(crate) fn resolve(&self, values: &[&str]) -> Arc<C> {
        let lookup = Lookup {
            values,
            len: self.label_names.len(),
            fill: "",
        };
        // A panic while holding these locks cannot leave the map half-updated (inserts are single
        // `BTreeMap` operations), so a poisoned lock is still safe to use.
        if let Some(cell) = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(&lookup as &dyn KeyView)
        {
            return Arc::clone(cell);
        }

        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(cell) = series.map.get(&lookup as &dyn KeyView) {
            return Arc::clone(cell);
        }
        if series.regular < self.max_series {
            series.regular += 1;
            let cell = Arc::new(C::new(&self.config));
            series.map.insert(lookup.to_key(), Arc::clone(&cell));
            return cell;
        }
        let overflow = Lookup {
            values: &[],
            len: self.label_names.len(),
            fill: OVERFLOW_LABEL_VALUE,
        };
        if let Some(cell) = series.map.get(&overflow as &dyn KeyView) {
            return Arc::clone(cell);
        }
        let cell = Arc::new(C::new(&self.config));
        series.map.insert(overflow.to_key(), Arc::clone(&cell));
        cell
    }

    pub(crate) fn snapshot(&self) -> FamilySnapshot {
        // Copy the handles out so values are read without holding the lock.
        let series: Vec<(Vec<String>, Arc<C>)> = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .iter()
            .map(|(key, cell)| (key.0.to_vec(), Arc::clone(cell)))
            .collect();
        FamilySnapshot {
            name: self.name.clone(),
            help: self.help.clone(),
            kind: C::KIND,
            label_names: self.label_names.to_vec(),
            series: series
                .into_iter()
                .map(|(label_values, cell)| SeriesSnapshot {
                    label_values,
                    value: cell.value(),
                })
                .collect(),
        }
    }

    fn len(&self) -> usize {
        self.series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

macro_rules! family_handle {
    ($(#[$doc:meta])* $vec:ident, $cell:ty, $handle:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $vec {
            family: Arc<Family<$cell>>,
        }

        impl $vec {
            pub(crate) fn from_family(family: Arc<Family<$cell>>) -> Self {
                Self { family }
            }

            #[doc = concat!("The ", $what, " for these label values (one per label name, in registration")]
            /// order), created at zero on first use. Resolve it once and keep the handle on hot
            /// paths.
            ///
            /// Missing trailing values are the empty string; extra values are ignored. Once the
            /// family holds its maximum number of series, a new label set gets the shared overflow
            /// series whose label values are all [`OVERFLOW_LABEL_VALUE`](crate::OVERFLOW_LABEL_VALUE).
            pub fn with(&self, label_values: &[&str]) -> $handle {
                $handle::from_cell(self.family.resolve(label_values))
            }

            /// The metric name.
            pub fn name(&self) -> &str {
                &self.family.name
            }

            /// The label names, in registration order.
            pub fn label_names(&self) -> impl ExactSizeIterator<Item = &str> {
                self.family.label_names.iter().map(String::as_str)
            }

            /// How many series the family holds beyond which new label sets overflow.
            pub fn max_series(&self) -> usize {
                self.family.max_series
            }

            /// How many series the family holds now, the overflow series included.
            pub fn series_count(&self) -> usize {
                self.family.len()
            }
        }

        impl fmt::Debug for $vec {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($vec))
                    .field("name", &self.family.name)
                    .field("label_names", &self.family.label_names)
                    .field("series", &self.family.len())
                    .finish()
            }
        }
    };
}

family_handle!(
    /// A counter family: one [`Counter`] per label set. Cheap to clone; every clone is the same
    /// family.
    CounterVec,
    CounterCell,
    Counter,
    "counter"
);
family_handle!(
    /// A gauge family: one [`Gauge`] per label set. Cheap to clone; every clone is the same family.
    GaugeVec,
    GaugeCell,
    Gauge,
    "gauge"
);
family_handle!(
    /// A histogram family: one [`Histogram`] per label set, all with the family's buckets. Cheap to
    /// clone; every clone is the same family.
    HistogramVec,
    HistogramCell,
    Histogram,
    "histogram"
);

impl HistogramVec {
    /// The finite bucket upper bounds, in increasing order (`+Inf` is implicit).
    pub fn buckets(&self) -> &[f64] {
        &self.family.config
    }
}
