//! The registry: every family, keyed by name.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::TelemetryError;
use crate::family::{Cell, CounterVec, Family, GaugeVec, HistogramVec};
use crate::metrics::{CounterCell, GaugeCell, HistogramCell};
use crate::snapshot::{FamilySnapshot, MetricKind, SeriesSnapshot, SeriesValue};
use crate::{DEFAULT_MAX_SERIES, text};

/// The series a histogram named `x` exposes besides `x` itself.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// A gauge read by a callback at render time.
struct GaugeFn {
    name: String,
    help: String,
    read: Box<dyn Fn() -> f64 + Send + Sync>,
}

impl fmt::Debug for GaugeFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GaugeFn")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A registered family of any kind.
#[derive(Clone, Debug)]
enum Entry {
    Counter(Arc<Family<CounterCell>>),
    Gauge(Arc<Family<GaugeCell>>),
    Histogram(Arc<Family<HistogramCell>>),
    GaugeFn(Arc<GaugeFn>),
}

impl Entry {
    fn description(&self) -> &'static str {
        match self {
            Self::Counter(_) => "a counter",
            Self::Gauge(_) => "a gauge",
            Self::Histogram(_) => "a histogram",
            Self::GaugeFn(_) => "a callback gauge",
        }
    }

    fn snapshot(&self) -> FamilySnapshot {
        match self {
            Self::Counter(family) => family.snapshot(),
            Self::Gauge(family) => family.snapshot(),
            Self::Histogram(family) => family.snapshot(),
            Self::GaugeFn(gauge) => FamilySnapshot {
                name: gauge.name.clone(),
                help: gauge.help.clone(),
                kind: MetricKind::Gauge,
                label_names: Vec::new(),
                series: vec![SeriesSnapshot {
                    label_values: Vec::new(),
                    value: SeriesValue::Gauge((gauge.read)()),
                }],
            },
        }
    }
}

/// The kinds of family [`Registry::register`] can create.
trait Registrable: Cell {
    fn wrap(family: Arc<Family<Self>>) -> Entry;
    fn unwrap(entry: &Entry) -> Option<&Arc<Family<Self>>>;
    /// `Some(reason)` when an existing family's config differs from a new registration's.
    fn config_conflict(existing: &Self::Config, new: &Self::Config) -> Option<String>;
}

impl Registrable for CounterCell {
    fn wrap(family: Arc<Family<Self>>) -> Entry {
        Entry::Counter(family)
    }
    fn unwrap(entry: &Entry) -> Option<&Arc<Family<Self>>> {
        match entry {
            Entry::Counter(family) => Some(family),
            _ => None,
        }
    }
    fn config_conflict((): &(), (): &()) -> Option<String> {
        None
    }
}

impl Registrable for GaugeCell {
    fn wrap(family: Arc<Family<Self>>) -> Entry {
        Entry::Gauge(family)
    }
    fn unwrap(entry: &Entry) -> Option<&Arc<Family<Self>>> {
        match entry {
            Entry::Gauge(family) => Some(family),
            _ => None,
        }
    }
    fn config_conflict((): &(), (): &()) -> Option<String> {
        None
    }
}

impl Registrable for HistogramCell {
    fn wrap(family: Arc<Family<Self>>) -> Entry {
        Entry::Histogram(family)
    }
    fn unwrap(entry: &Entry) -> Option<&Arc<Family<Self>>> {
        match entry {
            Entry::Histogram(family) => Some(family),
            _ => None,
        }
    }
    fn config_conflict(existing: &Arc<[f64]>, new: &Arc<[f64]>) -> Option<String> {
        let same = existing.len() == new.len()
            && existing
                .iter()
                .zip(new.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits());
        (!same).then(|| format!("registered with buckets {existing:?}, not {new:?}"))
    }
}

#[derive(Debug)]
struct Inner {
    families: RwLock<BTreeMap<String, Entry>>,
    default_max_series: usize,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            families: RwLock::default(),
            default_max_series: DEFAULT_MAX_SERIES,
        }
    }
}

/// Every metric family of the process, keyed by name. Cheap to clone; every clone is the same
/// registry.
///
/// Create one in the binary and pass it to each component. Registration and rendering take a lock
/// on the family map; updating a resolved [`Counter`](crate::Counter), [`Gauge`](crate::Gauge) or
/// [`Histogram`](crate::Histogram) takes none.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.read().keys().collect::<Vec<_>>())
            .field("default_max_series", &self.inner.default_max_series)
            .finish()
    }
}

impl Registry {
    /// Creates an empty registry whose families hold at most
    /// [`DEFAULT_MAX_SERIES`](crate::DEFAULT_MAX_SERIES) series each.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty registry whose families hold at most `max_series` series each (unless a
    /// family sets its own limit with [`FamilyBuilder::max_series`]). With `0`, every label set of
    /// a labelled family goes to the overflow series.
    pub fn with_default_max_series(max_series: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                families: RwLock::default(),
                default_max_series: max_series,
            }),
        }
    }

    /// The series limit of families that do not set their own.
    pub fn default_max_series(&self) -> usize {
        self.inner.default_max_series
    }

    // A panic while holding the family map lock cannot leave it half-updated (every change is one
    // `BTreeMap::insert`), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .families
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .families
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts registering a family, for options beyond the shorthands ([`Registry::counter`] and
    /// friends): label names and a per-family series limit.
    pub fn family(&self, name: &str, help: &str) -> FamilyBuilder<'_> {
        FamilyBuilder {
            registry: self,
            name: name.to_owned(),
            help: help.to_owned(),
            label_names: Vec::new(),
            max_series: None,
        }
    }

    /// Registers a counter family, or returns the one already registered under `name` with the same
    /// help text and label names (so both handles update the same series).
    ///
    /// # Errors
    ///
    /// An invalid metric or label name, or a conflicting earlier registration of `name`; see
    /// [`TelemetryError`].
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<CounterVec, TelemetryError> {
        self.family(name, help).labels(label_names).counter()
    }

    /// Registers a gauge family, or returns the one already registered under `name` with the same
    /// help text and label names.
    ///
    /// # Errors
    ///
    /// As [`Registry::counter`].
    pub fn gauge(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<GaugeVec, TelemetryError> {
        self.family(name, help).labels(label_names).gauge()
    }

    /// Registers a histogram family with these bucket upper bounds (strictly increasing; a last
    /// `+Inf` is implied and may be given; an empty list leaves only `+Inf`), or returns the one
    /// already registered under `name` with the same help text, label names and buckets.
    /// [`DEFAULT_BUCKETS`](crate::DEFAULT_BUCKETS) suits durations in seconds.
    ///
    /// # Errors
    ///
    /// As [`Registry::counter`]; also `le` as a label name, and buckets that are not strictly
    /// increasing or contain NaN.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, TelemetryError> {
        self.family(name, help)
            .labels(label_names)
            .histogram(buckets)
    }

    /// Registers an unlabelled gauge whose value is read by calling `read` each time the registry
    /// is rendered or snapshotted (for example a queue's fill level). `read` is called with no
    /// registry lock held, so it may itself use the registry; it should be quick and must not panic.
    ///
    /// # Errors
    ///
    /// An invalid name, or `name` already registered (callback gauges cannot be shared).
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Result<(), TelemetryError> {
        validate_metric_name(name)?;
        let mut families = self.write();
        if let Some(existing) = families.get(name) {
            return Err(TelemetryError::Conflict {
                name: name.to_owned(),
                reason: format!("already registered as {}", existing.description()),
            });
        }
        check_histogram_collision(&families, name, MetricKind::Gauge)?;
        let gauge = GaugeFn {
            name: name.to_owned(),
            help: help.to_owned(),
            read: Box::new(read),
        };
        families.insert(name.to_owned(), Entry::GaugeFn(Arc::new(gauge)));
        Ok(())
    }

    /// Every family with its series and values, families sorted by name and series by label
    /// values. Callback gauges are read now.
    pub fn snapshot(&self) -> Vec<FamilySnapshot> {
        // Copy the entries out so no registry lock is held while reading values or calling
        // callbacks.
        let entries: Vec<Entry> = self.read().values().cloned().collect();
        entries.iter().map(Entry::snapshot).collect()
    }

    /// The Prometheus text exposition (format 0.0.4, content type
    /// [`PROMETHEUS_CONTENT_TYPE`](crate::PROMETHEUS_CONTENT_TYPE)) of every family; see
    /// [`render_prometheus`](crate::render_prometheus).
    pub fn render_prometheus(&self) -> String {
        text::render_prometheus(&self.snapshot())
    }

    fn register<C: Registrable>(
        &self,
        builder: FamilyBuilder<'_>,
        config: C::Config,
    ) -> Result<Arc<Family<C>>, TelemetryError> {
        let FamilyBuilder {
            registry: _,
            name,
            help,
            label_names,
            max_series,
        } = builder;
        validate_metric_name(&name)?;
        validate_label_names(&name, &label_names, C::KIND)?;

        let mut families = self.write();
        if let Some(existing) = families.get(&name) {
            let conflict = |reason: String| TelemetryError::Conflict {
                name: name.clone(),
                reason,
            };
            let Some(family) = C::unwrap(existing) else {
                return Err(conflict(format!(
                    "already registered as {}, not a {}",
                    existing.description(),
                    C::KIND
                )));
            };
            if *family.label_names != *label_names {
                return Err(conflict(format!(
                    "registered with label names {:?}, not {label_names:?}",
                    family.label_names
                )));
            }
            if family.help != help {
                return Err(conflict(format!(
                    "registered with help {:?}, not {help:?}",
                    family.help
                )));
            }
            if let Some(reason) = C::config_conflict(&family.config, &config) {
                return Err(conflict(reason));
            }
            return Ok(Arc::clone(family));
        }
        check_histogram_collision(&families, &name, C::KIND)?;

        let max_series = max_series.unwrap_or(self.inner.default_max_series);
        let family = Arc::new(Family::new(
            name.clone(),
            help,
            label_names.into_boxed_slice(),
            max_series,
            config,
        ));
        families.insert(name, C::wrap(Arc::clone(&family)));
        Ok(family)
    }
}

/// Options for registering one family; made by [`Registry::family`], finished by
/// [`FamilyBuilder::counter`], [`FamilyBuilder::gauge`] or [`FamilyBuilder::histogram`].
///
/// ```
/// # use dogd_telemetry::Registry;
/// let registry = Registry::new();
/// let errors = registry
///     .family("parse_errors", "Packets that could not be parsed.")
///     .labels(&["listener", "reason"])
///     .max_series(50)
///     .counter()
///     .expect("valid and first registration");
/// errors.with(&["udp", "bad_type"]).inc();
/// ```
#[derive(Debug)]
#[must_use = "a family is only registered by counter(), gauge() or histogram()"]
pub struct FamilyBuilder<'r> {
    registry: &'r Registry,
    name: String,
    help: String,
    label_names: Vec<String>,
    max_series: Option<usize>,
}

impl FamilyBuilder<'_> {
    /// Sets the label names (none by default), in the order [`CounterVec::with`] and friends take
    /// their values.
    pub fn labels(mut self, label_names: &[&str]) -> Self {
        self.label_names = label_names.iter().map(|&label| label.to_owned()).collect();
        self
    }

    /// Sets how many series the family holds before new label sets go to the overflow series
    /// (the registry's default otherwise). When the family is already registered, the first
    /// registration's limit stays.
    pub fn max_series(mut self, max_series: usize) -> Self {
        self.max_series = Some(max_series);
        self
    }

    /// Registers a counter family (or returns the same one already registered).
    ///
    /// # Errors
    ///
    /// As [`Registry::counter`].
    pub fn counter(self) -> Result<CounterVec, TelemetryError> {
        self.registry
            .register(self, ())
            .map(CounterVec::from_family)
    }

    /// Registers a gauge family (or returns the same one already registered).
    ///
    /// # Errors
    ///
    /// As [`Registry::gauge`].
    pub fn gauge(self) -> Result<GaugeVec, TelemetryError> {
        self.registry.register(self, ()).map(GaugeVec::from_family)
    }

    /// Registers a histogram family with these bucket upper bounds (or returns the same one
    /// already registered); see [`Registry::histogram`].
    ///
    /// # Errors
    ///
    /// As [`Registry::histogram`].
    pub fn histogram(self, buckets: &[f64]) -> Result<HistogramVec, TelemetryError> {
        let bounds = validate_buckets(&self.name, buckets)?;
        self.registry
            .register(self, bounds)
            .map(HistogramVec::from_family)
    }
}

fn validate_metric_name(name: &str) -> Result<(), TelemetryError> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if valid {
        Ok(())
    } else {
        Err(TelemetryError::InvalidMetricName {
            name: name.to_owned(),
        })
    }
}

fn validate_label_names(
    metric: &str,
    label_names: &[String],
    kind: MetricKind,
) -> Result<(), TelemetryError> {
    for (index, label) in label_names.iter().enumerate() {
        let mut chars = label.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        let error = if !valid {
            TelemetryError::InvalidLabelName {
                metric: metric.to_owned(),
                label: label.clone(),
            }
        } else if label.starts_with("__") || (kind == MetricKind::Histogram && label == "le") {
            TelemetryError::ReservedLabelName {
                metric: metric.to_owned(),
                label: label.clone(),
            }
        } else if label_names
            .get(..index)
            .is_some_and(|before| before.contains(label))
        {
            TelemetryError::DuplicateLabelName {
                metric: metric.to_owned(),
                label: label.clone(),
            }
        } else {
            continue;
        };
        return Err(error);
    }
    Ok(())
}

/// The bounds without `+Inf` (implicit, and dropped when given last): strictly increasing, no NaN.
fn validate_buckets(metric: &str, buckets: &[f64]) -> Result<Arc<[f64]>, TelemetryError> {
    let invalid = |reason: String| TelemetryError::InvalidBuckets {
        metric: metric.to_owned(),
        reason,
    };
    let finite = match buckets.split_last() {
        Some((last, rest)) if *last == f64::INFINITY => rest,
        _ => buckets,
    };
    if finite.iter().any(|bound| bound.is_nan()) {
        return Err(invalid("NaN is not a bucket bound".to_owned()));
    }
    if finite.contains(&f64::INFINITY) {
        return Err(invalid("+Inf may only be the last bound".to_owned()));
    }
    if let Some(pair) = finite.windows(2).find(|pair| pair[0] >= pair[1]) {
        return Err(invalid(format!(
            "bounds must be strictly increasing, but {} is followed by {}",
            pair[0], pair[1]
        )));
    }
    Ok(finite.into())
}

/// A histogram `x` also exposes `x_bucket`, `x_sum` and `x_count`; no other family may take those
/// names, and a histogram may not be registered when one of its derived names is taken.
fn check_histogram_collision(
    families: &BTreeMap<String, Entry>,
    name: &str,
    kind: MetricKind,
) -> Result<(), TelemetryError> {
    for suffix in HISTOGRAM_SUFFIXES {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(Entry::Histogram(_)) = families.get(base)
        {
            return Err(TelemetryError::Conflict {
                name: name.to_owned(),
                reason: format!("histogram {base} already exposes a {name} series"),
            });
        }
        if kind == MetricKind::Histogram {
            let derived = format!("{name}{suffix}");
            if let Some(existing) = families.get(&derived) {
                return Err(TelemetryError::Conflict {
                    name: name.to_owned(),
                    reason: format!(
                        "its {derived} series would collide with {} already registered as {derived}",
                        existing.description()
                    ),
                });
            }
        }
    }
    Ok(())
}
