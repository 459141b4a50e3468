//! The serializer against the intake's formats: payloads are decompressed and decoded with the
//! generated protobuf types (or parsed as JSON) and compared with the flush they came from.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::sync::Arc;

use dogd_aggregator::{AgentSketch, Flush, Serie, SeriesType, SketchSerie};
use dogd_dogstatsd::sample::{Event, ServiceCheck};
use dogd_forwarder::serialize::Serialized;
use dogd_forwarder::transport::{Endpoint, Transaction};
use dogd_forwarder::{Compression, Limits, Serializer};
use dogd_proto::datadog::agentpayload::{MetricPayload, SketchPayload};
use prost::Message as _;
use serde_json::Value;

fn serializer(compression: Compression, limits: Limits) -> Serializer {
    Serializer {
        compression,
        limits,
        hostname: "agent-host".to_owned(),
    }
}

fn tags(list: &[&str]) -> Arc<[Arc<str>]> {
    list.iter().map(|tag| Arc::from(*tag)).collect()
}

fn gauge(name: &str, tag_list: &[&str], points: Vec<(i64, f64)>) -> Serie {
    Serie {
        name: Arc::from(name),
        tags: tags(tag_list),
        host: Arc::from("agent-host"),
        series_type: SeriesType::Gauge,
        points,
        interval: 10,
        unaggregated: false,
    }
}

fn decompress(transaction: &Transaction) -> Vec<u8> {
    match transaction.content_encoding {
        Some("zstd") => zstd::stream::decode_all(&transaction.body[..]).expect("valid zstd"),
        Some("deflate") => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(&transaction.body[..])
                .read_to_end(&mut out)
                .expect("valid zlib");
            out
        }
        other => panic!("unexpected content encoding {other:?}"),
    }
}

fn of_endpoint(serialized: &Serialized, endpoint: Endpoint) -> Vec<&Transaction> {
    serialized
        .transactions
        .iter()
        .filter(|transaction| transaction.endpoint == endpoint)
        .collect()
}

fn decode_series(serialized: &Serialized) -> Vec<MetricPayload> {
    of_endpoint(serialized, Endpoint::Series)
        .into_iter()
        .map(|transaction| {
            assert_eq!(transaction.content_type, "application/x-protobuf");
            MetricPayload::decode(&decompress(transaction)[..]).expect("a MetricPayload")
        })
        .collect()
}

/// A deterministic, poorly compressible tag (xorshift), so size limits bite after compression.
fn noisy_tag(seed: &mut u64, len: usize) -> String {
    let mut out = String::with_capacity(len + 6);
    out.push_str("noise:");
    for _ in 0..len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.push(char::from(b'a' + u8::try_from(*seed % 26).unwrap_or(0)));
    }
    out
}

#[test]
fn series_payload_decodes_to_the_flushed_series_with_dogstatsd_origin() {
    for compression in [Compression::Zstd(1), Compression::Zlib] {
        let flush = Flush {
            timestamp: 1_700_000_015,
            series: vec![
                gauge(
                    "app.temp",
                    &["env:prod", "room:a"],
                    vec![(1_700_000_000, 21.5)],
                ),
                Serie {
                    series_type: SeriesType::Rate,
                    ..gauge(
                        "app.hits",
                        &[],
                        vec![(1_700_000_000, 0.3), (1_700_000_010, 0.7)],
                    )
                },
            ],
            ..Flush::default()
        };
        let serialized = serializer(compression, Limits::default()).serialize(&flush);
        assert_eq!(serialized.transactions.len(), 1);
        let payloads = decode_series(&serialized);
        let series = &payloads[0].series;
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].metric, "app.temp");
        assert_eq!(series[0].tags, vec!["env:prod", "room:a"]);
        assert_eq!(series[0].r#type, 3, "GAUGE");
        assert_eq!(series[0].points[0].timestamp, 1_700_000_000);
        assert!((series[0].points[0].value - 21.5).abs() < f64::EPSILON);
        assert_eq!(series[0].resources[0].r#type, "host");
        assert_eq!(series[0].resources[0].name, "agent-host");
        let origin = series[0]
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.origin.as_ref())
            .expect("origin metadata");
        assert_eq!((origin.origin_product, origin.origin_category), (10, 10));
        assert_eq!(series[1].r#type, 2, "RATE");
        assert_eq!(series[1].interval, 10);
        assert_eq!(series[1].points.len(), 2);
    }
}

#[test]
fn series_are_split_by_the_points_limit_without_losing_or_repeating_any() {
    let series: Vec<Serie> = (0..25)
        .map(|index| gauge(&format!("m.{index}"), &[], vec![(10, f64::from(index))]))
        .collect();
    let limits = Limits {
        series_points: 10,
        ..Limits::default()
    };
    let serialized = serializer(Compression::Zstd(1), limits).serialize(&Flush {
        series,
        ..Flush::default()
    });
    let payloads = decode_series(&serialized);
    assert_eq!(payloads.len(), 3);
    assert!(payloads.iter().all(|payload| payload.series.len() <= 10));
    let names: Vec<String> = payloads
        .iter()
        .flat_map(|payload| payload.series.iter().map(|serie| serie.metric.clone()))
        .collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!((names.len(), unique.len()), (25, 25));
    assert_eq!(serialized.dropped.too_big, 0);
}

#[test]
fn payloads_over_the_compressed_limit_are_halved_until_each_fits() {
    let mut seed = 0x9E37_79B9_7F4A_7C15;
    let series: Vec<Serie> = (0..64)
        .map(|index| {
            let tag = noisy_tag(&mut seed, 200);
            gauge(&format!("m.{index}"), &[&tag], vec![(10, 1.0)])
        })
        .collect();
    let limit = 2_000;
    let limits = Limits {
        series_compressed: limit,
        ..Limits::default()
    };
    let serialized = serializer(Compression::Zstd(1), limits).serialize(&Flush {
        series,
        ..Flush::default()
    });
    assert!(
        serialized.transactions.len() > 4,
        "split into several payloads"
    );
    assert!(
        serialized
            .transactions
            .iter()
            .all(|t| t.body.len() <= limit)
    );
    let total: usize = decode_series(&serialized)
        .iter()
        .map(|p| p.series.len())
        .sum();
    assert_eq!(total, 64);
    assert_eq!(serialized.dropped.too_big, 0);
}

#[test]
fn a_series_bigger_than_any_payload_is_dropped_and_counted_and_the_rest_sent() {
    let mut seed = 42;
    let huge = noisy_tag(&mut seed, 4_000);
    let limits = Limits {
        series_uncompressed: 2_000,
        ..Limits::default()
    };
    let serialized = serializer(Compression::Zstd(1), limits).serialize(&Flush {
        series: vec![
            gauge("small.a", &[], vec![(10, 1.0)]),
            gauge("huge", &[&huge], vec![(10, 1.0)]),
            gauge("small.b", &[], vec![(10, 2.0)]),
        ],
        ..Flush::default()
    });
    assert_eq!(serialized.dropped.too_big, 1);
    let names: Vec<String> = decode_series(&serialized)
        .iter()
        .flat_map(|payload| payload.series.iter().map(|serie| serie.metric.clone()))
        .collect();
    assert_eq!(names, vec!["small.a", "small.b"]);
}

#[test]
fn sketch_payload_carries_the_sketch_summary_and_bins() {
    let mut sketch = AgentSketch::new();
    for value in [1.0, 2.0, 3.0, 4.0, 100.0] {
        sketch.insert(value);
    }
    let flush = Flush {
        sketches: vec![SketchSerie {
            name: Arc::from("latency"),
            tags: tags(&["svc:web"]),
            host: Arc::from("agent-host"),
            points: vec![(1_700_000_000, sketch.clone())],
        }],
        ..Flush::default()
    };
    let serialized = serializer(Compression::Zstd(1), Limits::default()).serialize(&flush);
    let transactions = of_endpoint(&serialized, Endpoint::Sketches);
    assert_eq!(transactions.len(), 1);
    let payload = SketchPayload::decode(&decompress(transactions[0])[..]).expect("a SketchPayload");
    let decoded = &payload.sketches[0];
    assert_eq!(decoded.metric, "latency");
    assert_eq!(decoded.host, "agent-host");
    assert_eq!(decoded.tags, vec!["svc:web"]);
    let dogsketch = &decoded.dogsketches[0];
    assert_eq!(dogsketch.ts, 1_700_000_000);
    assert_eq!(dogsketch.cnt, 5);
    assert!((dogsketch.min - 1.0).abs() < f64::EPSILON);
    assert!((dogsketch.max - 100.0).abs() < f64::EPSILON);
    assert!((dogsketch.sum - 110.0).abs() < 1e-9);
    let (keys, counts) = sketch.bins();
    assert_eq!((dogsketch.k.clone(), dogsketch.n.clone()), (keys, counts));
    assert_eq!(dogsketch.n.iter().sum::<u32>(), 5);
}

#[test]
fn service_checks_and_events_are_json_in_the_agent_shape() {
    let flush = Flush {
        service_checks: vec![ServiceCheck {
            name: "app.can_connect".to_owned(),
            status: 2,
            timestamp: Some(1_700_000_000),
            host: "db-1".to_owned(),
            message: "refused".to_owned(),
            tags: vec!["db:main".to_owned()],
            origin: None,
        }],
        events: vec![
            Event {
                title: "deploy".to_owned(),
                text: "v2 rolled out".to_owned(),
                timestamp: Some(1_700_000_001),
                host: "web-1".to_owned(),
                aggregation_key: Some("deploys".to_owned()),
                priority: "normal".to_owned(),
                source_type_name: Some("jenkins".to_owned()),
                alert_type: "success".to_owned(),
                tags: vec!["team:core".to_owned()],
                origin: None,
            },
            Event {
                title: "note".to_owned(),
                text: String::new(),
                timestamp: Some(1_700_000_002),
                host: String::new(),
                aggregation_key: None,
                priority: "low".to_owned(),
                source_type_name: None,
                alert_type: "info".to_owned(),
                tags: Vec::new(),
                origin: None,
            },
        ],
        ..Flush::default()
    };
    let serialized = serializer(Compression::Zlib, Limits::default()).serialize(&flush);

    let checks = of_endpoint(&serialized, Endpoint::CheckRun);
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].content_type, "application/json");
    let checks: Value = serde_json::from_slice(&decompress(checks[0])).expect("JSON");
    assert_eq!(checks[0]["check"], "app.can_connect");
    assert_eq!(checks[0]["host_name"], "db-1");
    assert_eq!(checks[0]["status"], 2);
    assert_eq!(checks[0]["timestamp"], 1_700_000_000);
    assert_eq!(checks[0]["message"], "refused");
    assert_eq!(checks[0]["tags"][0], "db:main");

    let events = of_endpoint(&serialized, Endpoint::Events);
    assert_eq!(events.len(), 1);
    let events: Value = serde_json::from_slice(&decompress(events[0])).expect("JSON");
    assert_eq!(events["apiKey"], "");
    assert_eq!(events["internalHostname"], "agent-host");
    let jenkins = &events["events"]["jenkins"][0];
    assert_eq!(jenkins["msg_title"], "deploy");
    assert_eq!(jenkins["msg_text"], "v2 rolled out");
    assert_eq!(jenkins["aggregation_key"], "deploys");
    assert_eq!(jenkins["alert_type"], "success");
    assert_eq!(jenkins["host"], "web-1");
    assert_eq!(events["events"]["api"][0]["msg_title"], "note");
    assert_eq!(events["events"]["api"][0]["priority"], "low");
}

#[test]
fn an_empty_flush_produces_no_payloads() {
    let serialized =
        serializer(Compression::Zstd(1), Limits::default()).serialize(&Flush::default());
    assert!(serialized.transactions.is_empty());
}
