//! The time sampler: samples into 10-second buckets aligned to the wall clock; at flush, every
//! closed bucket becomes series and sketches. Follows the agent's `TimeSampler`: counters are
//! sent as rates and keep reporting 0 until `dogstatsd_expiry_seconds` after their last sample,
//! gauges keep the last value, sets count unique members, histograms are summarized, and
//! distributions are sketched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use dogd_dogstatsd::context::{Context, ContextKey, ContextKeyMap, ContextKeySet};
use dogd_dogstatsd::parse::MetricType;
use dogd_dogstatsd::sample::{Sample, SampleValue};

use crate::flush::{Serie, SeriesType, SketchSerie};
use crate::histogram::{Histogram, HistogramSpec, weight_of};
use crate::limiter::{ContextLimitConfig, ContextLimiter};
use crate::sketch::AgentSketch;

/// Sampler settings.
#[derive(Clone, Debug)]
pub struct SamplerConfig {
    /// Bucket width in seconds (10, as the agent).
    pub interval: i64,
    /// Histogram aggregates and percentiles.
    pub histogram: HistogramSpec,
    /// `dogstatsd_expiry_seconds` (300): how long an idle counter keeps reporting 0.
    pub counter_expiry_seconds: f64,
    /// `dogstatsd_context_expiry_seconds` (20): how long an idle context counts against the
    /// context limiter.
    pub context_expiry_seconds: f64,
    /// The context limiter (`dogstatsd_context_limiter.*`); `None`: no limit.
    pub context_limit: Option<ContextLimitConfig>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            interval: 10,
            histogram: HistogramSpec::default(),
            counter_expiry_seconds: 300.0,
            context_expiry_seconds: 20.0,
            context_limit: None,
        }
    }
}

/// One context's state in one bucket.
#[derive(Debug)]
enum State {
    Counter(f64),
    Gauge(f64),
    Set(HashSet<Arc<str>>),
    Histogram(Histogram),
}

impl State {
    fn new(metric_type: MetricType) -> Option<Self> {
        Some(match metric_type {
            MetricType::Counter => Self::Counter(0.0),
            MetricType::Gauge => Self::Gauge(0.0),
            MetricType::Set => Self::Set(HashSet::new()),
            MetricType::Histogram | MetricType::Timer => Self::Histogram(Histogram::default()),
            MetricType::Distribution => return None,
        })
    }

    /// Adds a sample of the same kind; false for a kind mismatch (the first type in a bucket
    /// wins, as with the agent).
    fn add(&mut self, metric_type: MetricType, value: &SampleValue, rate: f64) -> bool {
        match (self, metric_type, value) {
            (Self::Counter(sum), MetricType::Counter, SampleValue::Number(v)) => {
                #[allow(clippy::cast_precision_loss, reason = "weights are small integers")]
                let weight = if rate > 0.0 && rate.is_finite() {
                    1.0 / rate
                } else {
                    weight_of(rate) as f64
                };
                *sum += v * weight;
            }
            (Self::Gauge(last), MetricType::Gauge, SampleValue::Number(v)) => *last = *v,
            (Self::Set(members), MetricType::Set, SampleValue::SetMember(member)) => {
                members.insert(member.clone());
            }
            (Self::Set(members), MetricType::Set, SampleValue::Number(v)) => {
                members.insert(Arc::from(v.to_string()));
            }
            (
                Self::Histogram(histogram),
                MetricType::Histogram | MetricType::Timer,
                SampleValue::Number(v),
            ) => {
                histogram.add(*v, rate);
            }
            _ => return false,
        }
        true
    }
}

#[derive(Debug)]
struct Entry {
    context: Arc<Context>,
    state: State,
}

type Bucket = ContextKeyMap<Entry>;

/// Counts of samples the sampler refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refused {
    /// A sample whose type differs from the context's type in the same bucket.
    pub type_mismatch: u64,
    /// A timestamped sample of a type the no-aggregation pipeline does not take.
    pub unsupported_timestamped: u64,
    /// NaN or infinite values (the parser accepts them as Go does; the agent's aggregator drops them).
    pub non_finite: u64,
    /// Samples of new contexts refused by the context limiter.
    pub context_limit: u64,
}

/// A context counted by the limiter.
#[derive(Debug)]
struct Tracked {
    sender: Arc<str>,
    /// Arrival time of its last sample (Unix seconds).
    last_seen: f64,
}

/// Buckets of samples awaiting their flush.
#[derive(Debug)]
pub struct TimeSampler {
    config: SamplerConfig,
    buckets: BTreeMap<i64, Bucket>,
    sketches: BTreeMap<i64, ContextKeyMap<(Arc<Context>, AgentSketch)>>,
    /// Counter contexts and when they were last sampled (arrival time, Unix seconds).
    counters: ContextKeyMap<(f64, Arc<Context>)>,
    last_cutoff: i64,
    /// Timestamped samples (no-aggregation pipeline), as single-point series.
    unaggregated: Vec<Serie>,
    refused: Refused,
    limiter: Option<ContextLimiter>,
    /// Contexts counted by the limiter (empty without one).
    tracked: ContextKeyMap<Tracked>,
}

impl TimeSampler {
    /// An empty sampler.
    pub fn new(config: SamplerConfig) -> Self {
        Self {
            limiter: config.context_limit.as_ref().and_then(ContextLimiter::new),
            tracked: ContextKeyMap::default(),
            config,
            buckets: BTreeMap::new(),
            sketches: BTreeMap::new(),
            counters: ContextKeyMap::default(),
            last_cutoff: 0,
            unaggregated: Vec::new(),
            refused: Refused::default(),
        }
    }

    /// The start of the bucket holding `timestamp`.
    pub fn bucket_start(&self, timestamp: f64) -> i64 {
        #[allow(clippy::cast_possible_truncation, reason = "Unix seconds fit i64")]
        let seconds = timestamp.floor() as i64;
        seconds - seconds.rem_euclid(self.config.interval)
    }

    /// Samples refused so far.
    pub fn refused(&self) -> Refused {
        self.refused
    }

    /// Contexts held in open buckets plus counters still reporting zeros.
    pub fn live_contexts(&self) -> usize {
        let mut keys: ContextKeySet = self.counters.keys().copied().collect();
        for bucket in self.buckets.values() {
            keys.extend(bucket.keys().copied());
        }
        for sketches in self.sketches.values() {
            keys.extend(sketches.keys().copied());
        }
        keys.len()
    }

    /// Timestamped samples waiting to be sent.
    pub fn unaggregated_len(&self) -> usize {
        self.unaggregated.len()
    }

    /// Takes the timestamped samples waiting to be sent.
    pub fn take_unaggregated(&mut self) -> Vec<Serie> {
        std::mem::take(&mut self.unaggregated)
    }

    /// Adds a sample that arrived at `now` (Unix seconds).
    pub fn add(&mut self, sample: &Sample, now: f64) {
        if let SampleValue::Number(value) = sample.value
            && !value.is_finite()
        {
            self.refused.non_finite += 1;
            return;
        }
        if let Some(timestamp) = sample.timestamp {
            self.add_unaggregated(sample, timestamp);
            return;
        }
        if !self.admit(sample, now) {
            self.refused.context_limit += 1;
            return;
        }
        let bucket = self.bucket_start(now);
        if sample.metric_type == MetricType::Distribution {
            if let SampleValue::Number(value) = sample.value {
                let entry = self
                    .sketches
                    .entry(bucket)
                    .or_default()
                    .entry(sample.key)
                    .or_insert_with(|| (sample.context.clone(), AgentSketch::new()));
                // The agent's weighted insert: count int(1/rate), sum (1/rate)·v, bins uint(1/rate).
                entry.1.insert_sampled(value, sample.sample_rate);
            }
            return;
        }
        if sample.metric_type == MetricType::Counter {
            // Only a new counter takes a reference to its context; a known one just moves its
            // last-seen time (no reference-count traffic per sample).
            self.counters
                .entry(sample.key)
                .and_modify(|(last_seen, _)| *last_seen = now)
                .or_insert_with(|| (now, sample.context.clone()));
        }
        let Some(fresh) = State::new(sample.metric_type) else {
            return;
        };
        let entry = self
            .buckets
            .entry(bucket)
            .or_default()
            .entry(sample.key)
            .or_insert_with(|| Entry {
                context: sample.context.clone(),
                state: fresh,
            });
        if !entry
            .state
            .add(sample.metric_type, &sample.value, sample.sample_rate)
        {
            self.refused.type_mismatch += 1;
        }
    }

    /// Whether the limiter (if any) lets this sample's context exist.
    fn admit(&mut self, sample: &Sample, now: f64) -> bool {
        let Some(limiter) = &mut self.limiter else {
            return true;
        };
        if let Some(tracked) = self.tracked.get_mut(&sample.key) {
            tracked.last_seen = now;
            return true;
        }
        let sender = limiter.sender_of(&sample.context.tags);
        if !limiter.track(&sender) {
            return false;
        }
        self.tracked.insert(
            sample.key,
            Tracked {
                sender,
                last_seen: now,
            },
        );
        true
    }

    /// Releases limiter slots of contexts idle for `context_expiry_seconds` (counters still
    /// reporting zeros keep theirs).
    fn expire_tracked(&mut self, now: f64) {
        let Some(limiter) = &mut self.limiter else {
            return;
        };
        let expiry = self.config.context_expiry_seconds;
        let counters = &self.counters;
        self.tracked.retain(|key, tracked| {
            let keep = now - tracked.last_seen <= expiry || counters.contains_key(key);
            if !keep {
                limiter.remove(&tracked.sender);
            }
            keep
        });
        limiter.end_flush();
    }

    /// The no-aggregation pipeline: gauges as they are, counters as rates over the interval
    /// (sample rate not applied), everything else refused.
    fn add_unaggregated(&mut self, sample: &Sample, timestamp: u64) {
        let SampleValue::Number(value) = sample.value else {
            self.refused.unsupported_timestamped += 1;
            return;
        };
        #[allow(clippy::cast_precision_loss, reason = "the interval is small")]
        let (series_type, value) = match sample.metric_type {
            MetricType::Gauge => (SeriesType::Gauge, value),
            MetricType::Counter => (SeriesType::Rate, value / self.config.interval as f64),
            _ => {
                self.refused.unsupported_timestamped += 1;
                return;
            }
        };
        self.unaggregated.push(Serie {
            name: sample.context.name.clone(),
            tags: sample.context.tags.clone().into(),
            host: sample.context.host.clone(),
            series_type,
            points: vec![(i64::try_from(timestamp).unwrap_or(i64::MAX), value)],
            interval: self.config.interval,
            unaggregated: true,
        });
    }

    /// Closes every bucket that ended at or before `bucket_start(now)` and returns its series and
    /// sketches; the bucket still open is kept.
    pub fn flush(&mut self, now: f64) -> (Vec<Serie>, Vec<SketchSerie>) {
        let cutoff = self.bucket_start(now);
        let interval = self.config.interval;
        let mut series: Vec<Serie> = Vec::new();
        // (type, context, suffix) → index in `series`: one series per signature, points appended.
        let mut by_signature: HashMap<(SeriesType, ContextKey, String), usize> = HashMap::new();
        let mut expired_counters = ContextKeySet::default();

        let closed: Vec<i64> = self
            .buckets
            .range(..=cutoff - interval)
            .map(|(start, _)| *start)
            .collect();
        let mut flushed: Vec<(i64, Bucket)> = closed
            .into_iter()
            .filter_map(|start| self.buckets.remove(&start).map(|bucket| (start, bucket)))
            .collect();
        if flushed.is_empty() && self.last_cutoff + interval <= cutoff {
            // Nothing arrived: counters still report their zeros, once per interval.
            flushed.push((cutoff - interval, Bucket::default()));
        }
        for (start, mut bucket) in flushed {
            self.zero_counters(start, &mut bucket, &mut expired_counters);
            for (key, entry) in bucket {
                for (suffix, series_type, value) in summarize(entry.state, &self.config, interval) {
                    let signature = (series_type, key, suffix);
                    match by_signature.get(&signature) {
                        Some(index) => series[*index].points.push((start, value)),
                        None => {
                            let name: Arc<str> = if signature.2.is_empty() {
                                entry.context.name.clone()
                            } else {
                                Arc::from(format!("{}{}", entry.context.name, signature.2))
                            };
                            by_signature.insert(signature, series.len());
                            series.push(Serie {
                                name,
                                tags: entry.context.tags.clone().into(),
                                host: entry.context.host.clone(),
                                series_type,
                                points: vec![(start, value)],
                                // The agent sets the bucket interval on every series it flushes.
                                interval,
                                unaggregated: false,
                            });
                        }
                    }
                }
            }
        }
        for key in expired_counters {
            self.counters.remove(&key);
        }
        self.expire_tracked(now);

        let mut sketch_points: ContextKeyMap<SketchSerie> = ContextKeyMap::default();
        let closed: Vec<i64> = self
            .sketches
            .range(..=cutoff - interval)
            .map(|(start, _)| *start)
            .collect();
        for start in closed {
            let Some(bucket) = self.sketches.remove(&start) else {
                continue;
            };
            for (key, (context, sketch)) in bucket {
                sketch_points
                    .entry(key)
                    .or_insert_with(|| SketchSerie {
                        name: context.name.clone(),
                        tags: context.tags.clone().into(),
                        host: context.host.clone(),
                        points: Vec::new(),
                    })
                    .points
                    .push((start, sketch));
            }
        }
        self.last_cutoff = cutoff;
        for serie in &mut series {
            serie.points.sort_by_key(|(timestamp, _)| *timestamp);
        }
        (series, sketch_points.into_values().collect())
    }

    /// Adds a 0 to every counter that has not expired (harmless where the counter has samples),
    /// and marks the expired ones for removal, as the agent's `countersSampleZeroValue`.
    fn zero_counters(&mut self, start: i64, bucket: &mut Bucket, expired: &mut ContextKeySet) {
        #[allow(clippy::cast_precision_loss, reason = "Unix seconds are exact in f64")]
        let start_f = start as f64;
        for (key, (last_sampled, context)) in &self.counters {
            if self.config.counter_expiry_seconds + last_sampled > start_f {
                bucket.entry(*key).or_insert_with(|| Entry {
                    context: context.clone(),
                    state: State::Counter(0.0),
                });
            } else {
                expired.insert(*key);
            }
        }
    }
}

/// The series values of one context's bucket: `(suffix, type, value)`.
fn summarize(
    state: State,
    config: &SamplerConfig,
    interval: i64,
) -> Vec<(String, SeriesType, f64)> {
    #[allow(
        clippy::cast_precision_loss,
        reason = "the interval and set sizes are small"
    )]
    match state {
        State::Counter(sum) => vec![(String::new(), SeriesType::Rate, sum / interval as f64)],
        State::Gauge(value) => vec![(String::new(), SeriesType::Gauge, value)],
        State::Set(members) => vec![(String::new(), SeriesType::Gauge, members.len() as f64)],
        State::Histogram(mut histogram) => histogram.summarize(&config.histogram, interval),
    }
}
