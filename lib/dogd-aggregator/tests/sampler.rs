//! Flush values per metric type on fixed inputs, with expectations worked out by hand from the
//! agent's rules (10 s buckets aligned to the epoch; counters as rates; closed buckets only).

use dogd_aggregator::limiter::ContextLimitConfig;
use dogd_aggregator::sampler::{SamplerConfig, TimeSampler};
use dogd_aggregator::{Serie, SeriesType};
use dogd_dogstatsd::context::ContextResolver;
use dogd_dogstatsd::parse::MetricType;
use dogd_dogstatsd::sample::{Sample, SampleValue};

struct Feed {
    resolver: ContextResolver,
    sampler: TimeSampler,
}

impl Feed {
    fn new() -> Self {
        Self::with(SamplerConfig::default())
    }

    fn with(config: SamplerConfig) -> Self {
        Self {
            resolver: ContextResolver::new(),
            sampler: TimeSampler::new(config),
        }
    }

    fn sample(
        &mut self,
        name: &str,
        tags: &[&str],
        metric_type: MetricType,
        value: SampleValue,
        rate: f64,
        timestamp: Option<u64>,
    ) -> Sample {
        let (key, context) = self.resolver.resolve(name, tags, "host-a");
        Sample {
            key,
            context,
            metric_type,
            value,
            sample_rate: rate,
            timestamp,
            origin: None,
        }
    }

    fn add(&mut self, at: f64, name: &str, metric_type: MetricType, value: f64, rate: f64) {
        let sample = self.sample(
            name,
            &["env:test"],
            metric_type,
            SampleValue::Number(value),
            rate,
            None,
        );
        self.sampler.add(&sample, at);
    }

    fn add_set(&mut self, at: f64, name: &str, member: &str) {
        let sample = self.sample(
            name,
            &[],
            MetricType::Set,
            SampleValue::SetMember(member.into()),
            1.0,
            None,
        );
        self.sampler.add(&sample, at);
    }

    fn flush(&mut self, at: f64) -> Vec<Serie> {
        let (mut series, _) = self.sampler.flush(at);
        series.sort_by(|a, b| a.name.cmp(&b.name));
        series
    }
}

fn find<'a>(series: &'a [Serie], name: &str) -> &'a Serie {
    series
        .iter()
        .find(|serie| &*serie.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no series {name} in {:?}",
                series.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
}

#[test]
fn counters_flush_as_per_second_rates_scaled_by_sample_rate() {
    let mut feed = Feed::new();
    feed.add(100.5, "requests", MetricType::Counter, 1.0, 1.0);
    // @0.5: this one sample stands for two.
    feed.add(104.0, "requests", MetricType::Counter, 2.0, 0.5);
    let series = feed.flush(120.0);
    let requests = find(&series, "requests");
    assert_eq!(requests.series_type, SeriesType::Rate);
    assert_eq!(requests.interval, 10);
    // (1 + 2/0.5) / 10 s
    assert_eq!(requests.points, vec![(100, 0.5)]);
    assert_eq!(&*requests.host, "host-a");
    assert_eq!(
        requests.tags.iter().map(|t| &**t).collect::<Vec<_>>(),
        ["env:test"]
    );
}

#[test]
fn gauges_keep_the_last_value_and_ignore_the_sample_rate() {
    let mut feed = Feed::new();
    feed.add(101.0, "temperature", MetricType::Gauge, 3.0, 1.0);
    feed.add(102.0, "temperature", MetricType::Gauge, 7.0, 0.1);
    let series = feed.flush(110.0);
    let gauge = find(&series, "temperature");
    assert_eq!(
        (gauge.series_type, gauge.points.clone()),
        (SeriesType::Gauge, vec![(100, 7.0)])
    );
}

#[test]
fn sets_report_the_number_of_unique_members() {
    let mut feed = Feed::new();
    for member in ["alice", "bob", "alice", "carol", "bob"] {
        feed.add_set(105.0, "users", member);
    }
    let series = feed.flush(110.0);
    let users = find(&series, "users");
    assert_eq!(
        (users.series_type, users.points.clone()),
        (SeriesType::Gauge, vec![(100, 3.0)])
    );
}

#[test]
fn histograms_and_timers_flush_aggregates_and_the_95th_percentile() {
    let mut feed = Feed::new();
    for value in 1..=10 {
        feed.add(100.0, "latency", MetricType::Timer, f64::from(value), 1.0);
    }
    let series = feed.flush(110.0);
    let value = |suffix: &str| find(&series, &format!("latency{suffix}")).points[0].1;
    assert_eq!(value(".max"), 10.0);
    assert_eq!(value(".median"), 5.0);
    assert_eq!(value(".avg"), 5.5);
    assert_eq!(value(".count"), 1.0, "10 samples over 10 s");
    assert_eq!(find(&series, "latency.count").series_type, SeriesType::Rate);
    assert_eq!(value(".95percentile"), 10.0);
    assert_eq!(series.len(), 5);
}

#[test]
fn buckets_align_to_multiples_of_ten_seconds_and_open_buckets_wait() {
    let mut feed = Feed::new();
    feed.add(109.999, "g", MetricType::Gauge, 1.0, 1.0);
    feed.add(110.0, "g", MetricType::Gauge, 2.0, 1.0);
    // At 115 the bucket [110, 120) is still open: only [100, 110) goes.
    assert_eq!(find(&feed.flush(115.0), "g").points, vec![(100, 1.0)]);
    assert_eq!(find(&feed.flush(125.0), "g").points, vec![(110, 2.0)]);
    // Two closed buckets in one flush: one series, two points in time order.
    feed.add(131.0, "g", MetricType::Gauge, 3.0, 1.0);
    feed.add(142.0, "g", MetricType::Gauge, 4.0, 1.0);
    assert_eq!(
        find(&feed.flush(155.0), "g").points,
        vec![(130, 3.0), (140, 4.0)]
    );
}

#[test]
fn idle_counters_report_zero_until_they_expire() {
    let mut feed = Feed::with(SamplerConfig {
        counter_expiry_seconds: 25.0,
        ..SamplerConfig::default()
    });
    feed.add(100.0, "hits", MetricType::Counter, 10.0, 1.0);
    assert_eq!(find(&feed.flush(110.0), "hits").points, vec![(100, 1.0)]);
    // Nothing arrived: a zero for the bucket that just closed.
    assert_eq!(find(&feed.flush(120.0), "hits").points, vec![(110, 0.0)]);
    // 25 s after the last sample (at 100) the counter stops: 100 + 25 > 120 still reports…
    assert_eq!(find(&feed.flush(130.0), "hits").points, vec![(120, 0.0)]);
    // …but 100 + 25 ≤ 130 does not, and the counter is forgotten.
    assert!(feed.flush(140.0).is_empty());
    assert!(feed.flush(150.0).is_empty());
}

#[test]
fn a_second_type_for_a_context_in_one_bucket_is_refused() {
    let mut feed = Feed::new();
    feed.add(100.0, "mixed", MetricType::Gauge, 5.0, 1.0);
    feed.add(101.0, "mixed", MetricType::Counter, 1.0, 1.0);
    let series = feed.flush(110.0);
    assert_eq!(find(&series, "mixed").series_type, SeriesType::Gauge);
    assert_eq!(feed.sampler.refused().type_mismatch, 1);
}

#[test]
fn timestamped_gauges_and_counters_bypass_aggregation_and_others_are_refused() {
    let mut feed = Feed::new();
    let gauge = feed.sample(
        "t.gauge",
        &[],
        MetricType::Gauge,
        SampleValue::Number(4.0),
        1.0,
        Some(1_700_000_003),
    );
    let counter = feed.sample(
        "t.count",
        &[],
        MetricType::Counter,
        SampleValue::Number(20.0),
        0.5,
        Some(1_700_000_007),
    );
    let histogram = feed.sample(
        "t.hist",
        &[],
        MetricType::Histogram,
        SampleValue::Number(1.0),
        1.0,
        Some(1_700_000_007),
    );
    for sample in [&gauge, &counter, &histogram] {
        feed.sampler.add(sample, 2_000_000_000.0);
    }
    let unaggregated = feed.sampler.take_unaggregated();
    assert_eq!(unaggregated.len(), 2);
    assert_eq!(
        (unaggregated[0].series_type, unaggregated[0].points.clone()),
        (SeriesType::Gauge, vec![(1_700_000_003, 4.0)])
    );
    // Counters: value / 10 as a rate, the sample rate not applied (the agent's rule).
    assert_eq!(
        (unaggregated[1].series_type, unaggregated[1].points.clone()),
        (SeriesType::Rate, vec![(1_700_000_007, 2.0)])
    );
    assert!(unaggregated.iter().all(|serie| serie.unaggregated));
    assert_eq!(feed.sampler.refused().unsupported_timestamped, 1);
    // Nothing went into the buckets.
    assert!(feed.flush(2_000_000_100.0).is_empty());
}

#[test]
fn distributions_become_one_sketch_per_closed_bucket() {
    let mut feed = Feed::new();
    for value in 1..=100 {
        let sample = feed.sample(
            "payload.size",
            &["svc:a"],
            MetricType::Distribution,
            SampleValue::Number(f64::from(value)),
            1.0,
            None,
        );
        feed.sampler.add(&sample, 100.0);
    }
    let half = feed.sample(
        "payload.size",
        &["svc:a"],
        MetricType::Distribution,
        SampleValue::Number(1000.0),
        0.25,
        None,
    );
    feed.sampler.add(&half, 111.0);
    let (series, sketches) = feed.sampler.flush(125.0);
    assert!(series.is_empty());
    assert_eq!(sketches.len(), 1);
    let points = &sketches[0].points;
    assert_eq!(
        points.iter().map(|(ts, _)| *ts).collect::<Vec<_>>(),
        [100, 110]
    );
    assert_eq!(points[0].1.count(), 100);
    assert_eq!(points[0].1.sum(), 5050.0);
    // @0.25 stands for four samples.
    assert_eq!(points[1].1.count(), 4);
}

#[test]
fn nan_and_infinite_values_are_dropped() {
    let mut feed = Feed::new();
    feed.add(100.0, "g", MetricType::Gauge, f64::NAN, 1.0);
    feed.add(100.0, "g", MetricType::Gauge, f64::INFINITY, 1.0);
    feed.add(100.0, "g", MetricType::Gauge, 2.0, 1.0);
    assert_eq!(find(&feed.flush(110.0), "g").points, vec![(100, 2.0)]);
    assert_eq!(feed.sampler.refused().non_finite, 2);
}

#[test]
fn the_context_limiter_refuses_new_contexts_of_a_sender_over_its_share_until_some_expire() {
    let mut feed = Feed::with(SamplerConfig {
        context_expiry_seconds: 20.0,
        context_limit: Some(ContextLimitConfig {
            limit: 4,
            key_tag_name: "pod_name".to_owned(),
            entry_timeout: 1,
        }),
        ..SamplerConfig::default()
    });
    let gauge = |feed: &mut Feed, at: f64, name: &str, pod: &str| {
        let sample = feed.sample(
            name,
            &[pod],
            MetricType::Gauge,
            SampleValue::Number(1.0),
            1.0,
            None,
        );
        feed.sampler.add(&sample, at);
    };
    // A noisy pod takes two contexts, then a second pod arrives: the budget is split 2 / 2.
    gauge(&mut feed, 100.0, "noisy.a", "pod_name:noisy");
    gauge(&mut feed, 100.0, "noisy.b", "pod_name:noisy");
    gauge(&mut feed, 100.0, "quiet.a", "pod_name:quiet");
    gauge(&mut feed, 101.0, "noisy.c", "pod_name:noisy");
    // Known contexts keep flowing.
    gauge(&mut feed, 102.0, "noisy.a", "pod_name:noisy");
    assert_eq!(feed.sampler.refused().context_limit, 1);
    let names: Vec<String> = feed
        .flush(110.0)
        .iter()
        .map(|serie| serie.name.to_string())
        .collect();
    assert_eq!(names, vec!["noisy.a", "noisy.b", "quiet.a"]);

    // Past the context expiry the noisy pod's contexts are released and a new one fits.
    feed.flush(125.0);
    gauge(&mut feed, 126.0, "noisy.c", "pod_name:noisy");
    assert_eq!(feed.sampler.refused().context_limit, 1);
    assert_eq!(find(&feed.flush(140.0), "noisy.c").points, vec![(120, 1.0)]);
}
