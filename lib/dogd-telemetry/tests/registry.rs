//! The registry through its public API: exposition text, limits, conflicts and concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use dogd_telemetry::{
    Bucket, Counter, DEFAULT_BUCKETS, FamilySnapshot, Gauge, HistogramSnapshot, MetricKind,
    OVERFLOW_LABEL_VALUE, Registry, SeriesSnapshot, SeriesValue, TelemetryError,
};

type TestResult = Result<(), TelemetryError>;

#[test]
fn a_counter_is_exposed_with_help_type_and_its_count() -> TestResult {
    let registry = Registry::new();
    let packets = registry.counter("dogstatsd_udp_packets", "UDP packets read.", &[])?;
    let counter = packets.with(&[]);
    counter.inc();
    counter.add(41);

    assert_eq!(counter.get(), 42);
    assert_eq!(
        registry.render_prometheus(),
        "# HELP dogstatsd_udp_packets UDP packets read.\n\
         # TYPE dogstatsd_udp_packets counter\n\
         dogstatsd_udp_packets 42\n"
    );
    Ok(())
}

#[test]
fn a_gauge_is_exposed_with_its_value_and_labels() -> TestResult {
    let registry = Registry::new();
    let queue = registry.gauge("queue_fill", "Items waiting.", &["queue", "shard"])?;
    let a = queue.with(&["packets", "0"]);
    a.set(10.0);
    a.inc();
    a.dec();
    a.dec();
    a.add(0.5);
    a.sub(0.25);
    queue.with(&["packets", "1"]).set(-3.0);

    assert_eq!(a.get(), 9.25);
    assert_eq!(
        registry.render_prometheus(),
        "# HELP queue_fill Items waiting.\n\
         # TYPE queue_fill gauge\n\
         queue_fill{queue=\"packets\",shard=\"0\"} 9.25\n\
         queue_fill{queue=\"packets\",shard=\"1\"} -3\n"
    );
    Ok(())
}

#[test]
fn gauges_expose_infinities_and_nan_as_prometheus_spells_them() -> TestResult {
    let registry = Registry::new();
    let gauge = registry.gauge("g", "h", &["v"])?;
    gauge.with(&["inf"]).set(f64::INFINITY);
    gauge.with(&["nan"]).set(f64::NAN);
    gauge.with(&["neg"]).set(f64::NEG_INFINITY);

    assert_eq!(
        registry.render_prometheus(),
        "# HELP g h\n# TYPE g gauge\ng{v=\"inf\"} +Inf\ng{v=\"nan\"} NaN\ng{v=\"neg\"} -Inf\n"
    );
    Ok(())
}

#[test]
fn a_labelled_histogram_is_exposed_with_cumulative_buckets_sum_and_count() -> TestResult {
    let registry = Registry::new();
    let latency = registry.histogram(
        "api_server__request_duration_seconds",
        "Request latency.",
        &["method", "code"],
        &[0.1, 0.5, 1.0],
    )?;
    let ok = latency.with(&["GET", "200"]);
    for value in [0.05, 0.2, 0.3, 0.75, 3.0] {
        ok.observe(value);
    }
    latency.with(&["DELETE", "404"]).observe(0.5);

    assert_eq!(
        registry.render_prometheus(),
        "# HELP api_server__request_duration_seconds Request latency.\n\
         # TYPE api_server__request_duration_seconds histogram\n\
         api_server__request_duration_seconds_bucket{method=\"DELETE\",code=\"404\",le=\"0.1\"} 0\n\
         api_server__request_duration_seconds_bucket{method=\"DELETE\",code=\"404\",le=\"0.5\"} 1\n\
         api_server__request_duration_seconds_bucket{method=\"DELETE\",code=\"404\",le=\"1\"} 1\n\
         api_server__request_duration_seconds_bucket{method=\"DELETE\",code=\"404\",le=\"+Inf\"} 1\n\
         api_server__request_duration_seconds_sum{method=\"DELETE\",code=\"404\"} 0.5\n\
         api_server__request_duration_seconds_count{method=\"DELETE\",code=\"404\"} 1\n\
         api_server__request_duration_seconds_bucket{method=\"GET\",code=\"200\",le=\"0.1\"} 1\n\
         api_server__request_duration_seconds_bucket{method=\"GET\",code=\"200\",le=\"0.5\"} 3\n\
         api_server__request_duration_seconds_bucket{method=\"GET\",code=\"200\",le=\"1\"} 4\n\
         api_server__request_duration_seconds_bucket{method=\"GET\",code=\"200\",le=\"+Inf\"} 5\n\
         api_server__request_duration_seconds_sum{method=\"GET\",code=\"200\"} 4.3\n\
         api_server__request_duration_seconds_count{method=\"GET\",code=\"200\"} 5\n"
    );
    Ok(())
}

#[test]
fn an_unlabelled_histogram_puts_le_as_its_only_label() -> TestResult {
    let registry = Registry::new();
    registry
        .histogram("h", "h", &[], &[1.0])?
        .with(&[])
        .observe(2.0);

    assert_eq!(
        registry.render_prometheus(),
        "# HELP h h\n# TYPE h histogram\n\
         h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n"
    );
    Ok(())
}

#[test]
fn families_are_sorted_by_name_and_series_by_label_values() -> TestResult {
    let registry = Registry::new();
    let zeta = registry.counter("zeta", "Z.", &["k"])?;
    let alpha = registry.gauge("alpha", "A.", &[])?;
    zeta.with(&["b"]).inc();
    zeta.with(&["a"]).add(2);
    zeta.with(&["B"]).add(3);
    alpha.with(&[]).set(1.5);

    assert_eq!(
        registry.render_prometheus(),
        "# HELP alpha A.\n# TYPE alpha gauge\nalpha 1.5\n\
         # HELP zeta Z.\n# TYPE zeta counter\n\
         zeta{k=\"B\"} 3\nzeta{k=\"a\"} 2\nzeta{k=\"b\"} 1\n"
    );
    Ok(())
}

#[test]
fn label_values_escape_backslash_quote_and_newline_and_help_escapes_backslash_and_newline()
-> TestResult {
    let registry = Registry::new();
    let counter = registry.counter("c", "Line one\nline \"two\" \\ end", &["path"])?;
    counter.with(&["C:\\dir \"quoted\"\nnext"]).inc();

    assert_eq!(
        registry.render_prometheus(),
        "# HELP c Line one\\nline \"two\" \\\\ end\n\
         # TYPE c counter\n\
         c{path=\"C:\\\\dir \\\"quoted\\\"\\nnext\"} 1\n"
    );
    Ok(())
}

#[test]
fn an_unlabelled_family_is_exposed_at_zero_and_a_labelled_one_only_once_it_has_a_series()
-> TestResult {
    let registry = Registry::new();
    registry.counter("plain", "P.", &[])?;
    let labelled = registry.counter("labelled", "L.", &["k"])?;

    assert_eq!(
        registry.render_prometheus(),
        "# HELP plain P.\n# TYPE plain counter\nplain 0\n"
    );

    labelled.with(&["v"]);
    assert_eq!(
        registry.render_prometheus(),
        "# HELP labelled L.\n# TYPE labelled counter\nlabelled{k=\"v\"} 0\n\
         # HELP plain P.\n# TYPE plain counter\nplain 0\n"
    );
    Ok(())
}

#[test]
fn label_sets_beyond_the_family_limit_share_one_overflow_series() -> TestResult {
    let registry = Registry::new();
    let requests = registry
        .family("requests", "R.")
        .labels(&["client", "code"])
        .max_series(2)
        .counter()?;
    assert_eq!(requests.max_series(), 2);

    let first = requests.with(&["a", "200"]);
    let second = requests.with(&["b", "200"]);
    let third = requests.with(&["c", "200"]);
    let fourth = requests.with(&["d", "500"]);
    first.inc();
    second.add(2);
    third.add(3);
    fourth.add(4);
    // Series resolved before the limit was reached keep their own counts.
    requests.with(&["a", "200"]).inc();

    assert_eq!(
        third.get(),
        7,
        "the third and fourth label sets share the overflow series"
    );
    assert_eq!(requests.series_count(), 3);
    assert_eq!(
        registry.render_prometheus(),
        "# HELP requests R.\n# TYPE requests counter\n\
         requests{client=\"__overflow__\",code=\"__overflow__\"} 7\n\
         requests{client=\"a\",code=\"200\"} 2\n\
         requests{client=\"b\",code=\"200\"} 2\n"
    );
    Ok(())
}

#[test]
fn the_registry_wide_series_limit_applies_to_families_without_their_own() -> TestResult {
    let registry = Registry::with_default_max_series(1);
    assert_eq!(registry.default_max_series(), 1);
    let gauge = registry.gauge("g", "G.", &["k"])?;
    let roomy = registry
        .family("roomy", "R.")
        .labels(&["k"])
        .max_series(10)
        .gauge()?;

    gauge.with(&["x"]).set(1.0);
    gauge.with(&["y"]).set(2.0);
    gauge.with(&["z"]).add(5.0);
    for value in ["x", "y", "z"] {
        roomy.with(&[value]).inc();
    }

    let snapshot = registry.snapshot();
    let series = |name: &str| -> Vec<Vec<String>> {
        snapshot
            .iter()
            .find(|family| family.name == name)
            .map(|family| {
                family
                    .series
                    .iter()
                    .map(|series| series.label_values.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        series("g"),
        [vec![OVERFLOW_LABEL_VALUE.to_owned()], vec!["x".to_owned()]]
    );
    assert_eq!(gauge.with(&["anything"]).get(), 7.0);
    assert_eq!(series("roomy").len(), 3);
    Ok(())
}

#[test]
fn the_default_series_limit_is_a_thousand() -> TestResult {
    let registry = Registry::new();
    let counter = registry.counter("c", "C.", &["id"])?;
    for id in 0..1005 {
        counter.with(&[&id.to_string()]).inc();
    }
    assert_eq!(counter.series_count(), 1001);
    assert_eq!(counter.with(&[OVERFLOW_LABEL_VALUE]).get(), 5);
    assert_eq!(counter.with(&["999"]).get(), 1);
    Ok(())
}

#[test]
fn registering_the_same_family_twice_returns_the_same_series() -> TestResult {
    let registry = Registry::new();
    let first = registry.counter("hits", "Hits.", &["path"])?;
    let second = registry.counter("hits", "Hits.", &["path"])?;
    first.with(&["/"]).add(3);
    second.with(&["/"]).inc();
    assert_eq!(second.with(&["/"]).get(), 4);
    assert_eq!(first.with(&["/"]).get(), 4);

    let buckets = registry.histogram("h", "H.", &[], DEFAULT_BUCKETS)?;
    let again = registry.histogram("h", "H.", &[], DEFAULT_BUCKETS)?;
    buckets.with(&[]).observe(0.01);
    assert_eq!(again.with(&[]).snapshot().count, 1);
    assert_eq!(again.buckets(), DEFAULT_BUCKETS);
    Ok(())
}

#[test]
fn a_conflicting_registration_is_an_error_and_leaves_the_first_in_place() -> TestResult {
    let registry = Registry::new();
    let hits = registry.counter("hits", "Hits.", &["path"])?;
    hits.with(&["/"]).inc();
    registry.histogram("latency", "L.", &[], &[1.0, 2.0])?;
    registry.gauge_fn("fill", "F.", || 1.0)?;

    let conflicts = [
        (
            "other kind",
            registry.gauge("hits", "Hits.", &["path"]).err(),
        ),
        (
            "other labels",
            registry.counter("hits", "Hits.", &["route"]).err(),
        ),
        ("fewer labels", registry.counter("hits", "Hits.", &[]).err()),
        (
            "other help",
            registry.counter("hits", "Other.", &["path"]).err(),
        ),
        (
            "other buckets",
            registry.histogram("latency", "L.", &[], &[1.0, 3.0]).err(),
        ),
        (
            "over a callback gauge",
            registry.gauge("fill", "F.", &[]).err(),
        ),
        (
            "callback twice",
            registry.gauge_fn("fill", "F.", || 2.0).err(),
        ),
        (
            "callback over a counter",
            registry.gauge_fn("hits", "Hits.", || 2.0).err(),
        ),
        (
            "histogram suffix",
            registry.counter("latency_count", "C.", &[]).err(),
        ),
        (
            "histogram suffix",
            registry.gauge_fn("latency_sum", "S.", || 0.0).err(),
        ),
    ];
    for (what, error) in &conflicts {
        assert!(
            matches!(error, Some(TelemetryError::Conflict { .. })),
            "{what}: expected a conflict, got {error:?}"
        );
    }
    registry.counter("queue_bucket", "Q.", &[])?;
    let error = registry.histogram("queue", "Q.", &[], &[1.0]).err();
    assert!(
        matches!(&error, Some(TelemetryError::Conflict { name, .. }) if name == "queue"),
        "{error:?}"
    );

    assert_eq!(
        registry
            .counter("hits", "Hits.", &["path"])?
            .with(&["/"])
            .get(),
        1
    );
    Ok(())
}

#[test]
fn concurrent_increments_from_several_threads_sum_exactly() -> TestResult {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 50_000;
    let registry = Registry::new();
    let counter = registry.counter("c", "C.", &["k"])?;
    let gauge = registry.gauge("g", "G.", &[])?;
    let histogram = registry.histogram("h", "H.", &[], &[0.5])?;

    thread::scope(|scope| {
        for thread in 0..THREADS {
            let counter = counter.clone();
            let gauge = gauge.with(&[]);
            let histogram = histogram.with(&[]);
            scope.spawn(move || {
                // Half the threads resolve once, half resolve on every increment.
                let resolved = counter.with(&["shared"]);
                for _ in 0..PER_THREAD {
                    if thread % 2 == 0 {
                        resolved.inc();
                    } else {
                        counter.with(&["shared"]).inc();
                    }
                    gauge.add(1.0);
                    histogram.observe(if thread % 2 == 0 { 0.25 } else { 1.0 });
                }
            });
        }
    });

    let total = THREADS * PER_THREAD;
    assert_eq!(counter.with(&["shared"]).get(), total);
    assert_eq!(gauge.with(&[]).get(), total as f64);
    let snapshot = histogram.with(&[]).snapshot();
    assert_eq!(snapshot.count, total);
    assert_eq!(
        snapshot.buckets,
        [Bucket {
            upper_bound: 0.5,
            cumulative_count: total / 2
        }]
    );
    assert_eq!(snapshot.sum, (total / 2) as f64 * 1.25);
    Ok(())
}

#[test]
fn a_value_equal_to_a_bucket_bound_counts_in_that_bucket() -> TestResult {
    let registry = Registry::new();
    let histogram = registry
        .histogram("h", "H.", &[], &[0.005, 0.01, 1.0])?
        .with(&[]);
    for value in [0.005, 0.01, 0.010000000000000002, 1.0, f64::NEG_INFINITY] {
        histogram.observe(value);
    }

    let counts: Vec<(f64, u64)> = histogram
        .snapshot()
        .buckets
        .iter()
        .map(|bucket| (bucket.upper_bound, bucket.cumulative_count))
        .collect();
    assert_eq!(counts, [(0.005, 2), (0.01, 3), (1.0, 5)]);
    Ok(())
}

#[test]
fn values_above_every_bound_and_nan_count_only_in_the_infinite_bucket() -> TestResult {
    let registry = Registry::new();
    let histogram = registry.histogram("h", "H.", &[], &[1.0])?.with(&[]);
    histogram.observe(1.5);
    histogram.observe(f64::INFINITY);
    histogram.observe(f64::NAN);

    let snapshot = histogram.snapshot();
    assert_eq!(
        snapshot.buckets,
        [Bucket {
            upper_bound: 1.0,
            cumulative_count: 0
        }]
    );
    assert_eq!(snapshot.count, 3);
    assert!(snapshot.sum.is_nan());
    Ok(())
}

#[test]
fn histogram_buckets_must_increase_strictly_and_a_last_infinity_is_implied() -> TestResult {
    let registry = Registry::new();
    let with_infinity = registry.histogram("a", "A.", &[], &[1.0, f64::INFINITY])?;
    assert_eq!(with_infinity.buckets(), [1.0]);
    assert!(
        registry.histogram("a", "A.", &[], &[1.0]).is_ok(),
        "the same buckets"
    );

    let empty = registry.histogram("only_inf", "O.", &[], &[])?;
    empty.with(&[]).observe(3.0);
    assert!(
        registry
            .render_prometheus()
            .contains("only_inf_bucket{le=\"+Inf\"} 1\n")
    );

    for buckets in [
        &[1.0, 1.0][..],
        &[2.0, 1.0],
        &[f64::NAN],
        &[1.0, f64::INFINITY, f64::INFINITY],
    ] {
        let error = registry.histogram("b", "B.", &[], buckets).err();
        assert!(
            matches!(error, Some(TelemetryError::InvalidBuckets { .. })),
            "{buckets:?}: {error:?}"
        );
    }
    Ok(())
}

#[test]
fn a_callback_gauge_is_read_each_time_the_registry_is_rendered() -> TestResult {
    let registry = Registry::new();
    let level = Arc::new(AtomicU64::new(3));
    let read = Arc::clone(&level);
    registry.gauge_fn("channel_fill", "Items in the channel.", move || {
        read.load(Ordering::Relaxed) as f64
    })?;

    let expected = |value: u64| {
        format!(
            "# HELP channel_fill Items in the channel.\n# TYPE channel_fill gauge\nchannel_fill {value}\n"
        )
    };
    assert_eq!(registry.render_prometheus(), expected(3));
    level.store(17, Ordering::Relaxed);
    assert_eq!(registry.render_prometheus(), expected(17));
    Ok(())
}

#[test]
fn a_callback_gauge_may_use_the_registry_without_deadlocking() -> TestResult {
    let registry = Registry::new();
    let inner = registry.clone();
    // Registering takes the family map's write lock: rendering must not hold it while reading.
    registry.gauge_fn("mirror", "Mirrors a counter.", move || {
        inner
            .counter("other", "O.", &[])
            .map_or(-1.0, |other| other.with(&[]).get() as f64)
    })?;
    registry.counter("other", "O.", &[])?.with(&[]).add(2);

    assert!(registry.render_prometheus().contains("\nmirror 2\n"));
    Ok(())
}

#[test]
fn missing_label_values_are_empty_and_extra_ones_are_ignored() -> TestResult {
    let registry = Registry::new();
    let counter = registry.counter("c", "C.", &["a", "b"])?;
    counter.with(&["x"]).inc();
    counter.with(&["x", ""]).inc();
    counter.with(&["x", "y", "ignored"]).inc();
    counter.with(&[]).inc();

    assert_eq!(counter.with(&["x", ""]).get(), 2);
    assert_eq!(counter.with(&["x", "y"]).get(), 1);
    assert_eq!(
        registry.render_prometheus(),
        "# HELP c C.\n# TYPE c counter\nc{a=\"\",b=\"\"} 1\nc{a=\"x\",b=\"\"} 2\nc{a=\"x\",b=\"y\"} 1\n"
    );

    let unlabelled = registry.counter("u", "U.", &[])?;
    unlabelled.with(&["surplus"]).inc();
    assert_eq!(unlabelled.with(&[]).get(), 1);
    Ok(())
}

#[test]
fn invalid_metric_and_label_names_are_rejected_and_valid_ones_kept_exactly() -> TestResult {
    let registry = Registry::new();
    for name in ["", "1abc", "has-dash", "has space", "é"] {
        let error = registry.counter(name, "h", &[]).err();
        assert_eq!(
            error,
            Some(TelemetryError::InvalidMetricName {
                name: name.to_owned()
            })
        );
    }
    for label in ["", "1a", "a:b", "a-b"] {
        let error = registry.counter("ok", "h", &[label]).err();
        assert!(
            matches!(error, Some(TelemetryError::InvalidLabelName { .. })),
            "{label:?}: {error:?}"
        );
    }
    let error = registry.counter("ok", "h", &["a", "b", "a"]).err();
    assert!(
        matches!(error, Some(TelemetryError::DuplicateLabelName { label, .. }) if label == "a")
    );
    let error = registry.counter("ok", "h", &["__name__"]).err();
    assert!(
        matches!(error, Some(TelemetryError::ReservedLabelName { .. })),
        "{error:?}"
    );
    let error = registry.histogram("ok", "h", &["le"], &[1.0]).err();
    assert!(
        matches!(error, Some(TelemetryError::ReservedLabelName { .. })),
        "{error:?}"
    );
    assert!(
        registry.snapshot().is_empty(),
        "nothing invalid was registered"
    );

    registry.counter(
        "le_is_fine_on_a_counter",
        "h",
        &["le", "_private", "Mixed_9"],
    )?;
    registry.counter("ns:sub__double__underscores:", "h", &[])?;
    registry.gauge("_leading", "h", &[])?;
    let names: Vec<String> = registry
        .snapshot()
        .into_iter()
        .map(|family| family.name)
        .collect();
    assert_eq!(
        names,
        [
            "_leading",
            "le_is_fine_on_a_counter",
            "ns:sub__double__underscores:"
        ]
    );
    Ok(())
}

#[test]
fn a_snapshot_lists_every_family_with_its_series_and_values() -> TestResult {
    let registry = Registry::new();
    registry.counter("c", "Count.", &["k"])?.with(&["v"]).add(5);
    registry.gauge_fn("f", "Fn.", || 2.5)?;
    registry
        .histogram("h", "Hist.", &["k"], &[1.0])?
        .with(&["v"])
        .observe(0.5);
    registry.gauge("idle", "Idle.", &["k"])?;

    assert_eq!(
        registry.snapshot(),
        [
            FamilySnapshot {
                name: "c".to_owned(),
                help: "Count.".to_owned(),
                kind: MetricKind::Counter,
                label_names: vec!["k".to_owned()],
                series: vec![SeriesSnapshot {
                    label_values: vec!["v".to_owned()],
                    value: SeriesValue::Counter(5),
                }],
            },
            FamilySnapshot {
                name: "f".to_owned(),
                help: "Fn.".to_owned(),
                kind: MetricKind::Gauge,
                label_names: vec![],
                series: vec![SeriesSnapshot {
                    label_values: vec![],
                    value: SeriesValue::Gauge(2.5)
                }],
            },
            FamilySnapshot {
                name: "h".to_owned(),
                help: "Hist.".to_owned(),
                kind: MetricKind::Histogram,
                label_names: vec!["k".to_owned()],
                series: vec![SeriesSnapshot {
                    label_values: vec!["v".to_owned()],
                    value: SeriesValue::Histogram(HistogramSnapshot {
                        buckets: vec![Bucket {
                            upper_bound: 1.0,
                            cumulative_count: 1
                        }],
                        count: 1,
                        sum: 0.5,
                    }),
                }],
            },
            FamilySnapshot {
                name: "idle".to_owned(),
                help: "Idle.".to_owned(),
                kind: MetricKind::Gauge,
                label_names: vec!["k".to_owned()],
                series: vec![],
            },
        ]
    );
    Ok(())
}

#[test]
fn handles_made_with_default_work_without_a_registry() {
    let counter = Counter::default();
    counter.add(2);
    let gauge = Gauge::default();
    gauge.set(1.5);
    assert_eq!((counter.get(), gauge.get()), (2, 1.5));
}

#[test]
fn registry_clones_share_their_families() -> TestResult {
    let registry = Registry::new();
    let clone = registry.clone();
    clone.counter("c", "C.", &[])?.with(&[]).inc();
    assert_eq!(registry.counter("c", "C.", &[])?.with(&[]).get(), 1);
    Ok(())
}
