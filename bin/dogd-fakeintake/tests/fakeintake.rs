//! The real `dogd-fakeintake` binary, started per test on a free port, fed over HTTP.

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use dogd_proto::datadog::agentpayload::metric_payload::{
    MetricPoint, MetricSeries, MetricType, Resource,
};
use dogd_proto::datadog::agentpayload::sketch_payload::Sketch;
use dogd_proto::datadog::agentpayload::sketch_payload::sketch::Dogsketch;
use dogd_proto::datadog::agentpayload::{Metadata, MetricPayload, Origin, SketchPayload};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// The running binary; killed on drop.
struct FakeIntake {
    _child: Child,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl FakeIntake {
    async fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dogd-fakeintake"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start dogd-fakeintake");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            BufReader::new(stdout).read_line(&mut first),
        )
        .await
        .expect("the listening line within 10 s")
        .expect("read stdout");
        let base = first
            .trim()
            .strip_prefix("dogd-fakeintake listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        Self {
            _child: child,
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).expect("request");
        let response = self.client.request(request).await.expect("response");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, json)
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut headers = vec![
            ("DD-API-KEY", KEY),
            ("Content-Type", content_type),
            ("DD-Agent-Version", "7.62.1"),
            ("User-Agent", "datadog-agent/7.62.1"),
        ];
        if let Some(encoding) = encoding {
            headers.push(("Content-Encoding", encoding));
        }
        self.request("POST", path, &headers, body).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, &[], Vec::new()).await
    }

    async fn payloads(&self, endpoint: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/fakeintake/payloads?endpoint={endpoint}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().expect("a JSON list")
    }
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).expect("zstd")
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("zlib");
    encoder.finish().expect("zlib")
}

fn series_payload() -> Vec<u8> {
    MetricPayload {
        series: vec![MetricSeries {
            resources: vec![Resource {
                r#type: "host".to_owned(),
                name: "web-1".to_owned(),
            }],
            metric: "app.requests".to_owned(),
            tags: vec!["env:prod".to_owned(), "service:web".to_owned()],
            points: vec![
                MetricPoint {
                    value: 1.5,
                    timestamp: 1_700_000_000,
                },
                MetricPoint {
                    value: 2.0,
                    timestamp: 1_700_000_010,
                },
            ],
            r#type: MetricType::Rate as i32,
            interval: 10,
            metadata: Some(Metadata {
                origin: Some(Origin {
                    origin_product: 10,
                    origin_category: 10,
                    origin_service: 0,
                }),
            }),
            ..MetricSeries::default()
        }],
    }
    .encode_to_vec()
}

fn sketch_payload() -> Vec<u8> {
    SketchPayload {
        sketches: vec![Sketch {
            metric: "app.latency".to_owned(),
            host: "web-1".to_owned(),
            tags: vec!["env:prod".to_owned()],
            dogsketches: vec![Dogsketch {
                ts: 1_700_000_000,
                cnt: 3,
                min: 1.0,
                max: 5.0,
                avg: 3.0,
                sum: 9.0,
                k: vec![1338, 1409, 1442],
                n: vec![1, 1, 1],
            }],
            ..Sketch::default()
        }],
        metadata: None,
    }
    .encode_to_vec()
}

#[tokio::test]
async fn series_compressed_with_zstd_are_decoded_and_served_back() {
    let intake = FakeIntake::start(&[]).await;
    let (status, body) = intake
        .post(
            "/api/v2/series",
            "application/x-protobuf",
            Some("zstd"),
            zstd(&series_payload()),
        )
        .await;
    assert_eq!(status, 202, "{body}");

    let payloads = intake.payloads("series").await;
    assert_eq!(payloads.len(), 1);
    let record = &payloads[0];
    assert!(record["received_at"].as_f64().is_some_and(|t| t > 1.6e9));
    assert_eq!(record["headers"]["api_key"], KEY);
    assert_eq!(record["headers"]["content_encoding"], "zstd");
    assert_eq!(record["headers"]["agent_version"], "7.62.1");
    let series = &record["payload"]["series"][0];
    assert_eq!(
        series,
        &json!({
            "metric": "app.requests",
            "type": "rate",
            "interval": 10,
            "tags": ["env:prod", "service:web"],
            "host": "web-1",
            "resources": [{"type": "host", "name": "web-1"}],
            "points": [[1_700_000_000, 1.5], [1_700_000_010, 2.0]],
            "unit": "",
            "source_type_name": "",
            "origin": {"product": 10, "category": 10, "service": 0},
        })
    );
}

#[tokio::test]
async fn sketches_compressed_with_zlib_are_decoded_and_served_back() {
    let intake = FakeIntake::start(&[]).await;
    let (status, body) = intake
        .post(
            "/api/beta/sketches",
            "application/x-protobuf",
            Some("deflate"),
            zlib(&sketch_payload()),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let payloads = intake.payloads("sketches").await;
    let sketch = &payloads[0]["payload"]["sketches"][0];
    assert_eq!(sketch["metric"], "app.latency");
    assert_eq!(sketch["host"], "web-1");
    assert_eq!(sketch["tags"], json!(["env:prod"]));
    assert_eq!(
        sketch["dogsketches"][0],
        json!({"ts": 1_700_000_000, "cnt": 3, "min": 1.0, "max": 5.0, "avg": 3.0, "sum": 9.0,
               "k": [1338, 1409, 1442], "n": [1, 1, 1]})
    );
}

#[tokio::test]
async fn check_runs_and_events_are_stored_as_received() {
    let intake = FakeIntake::start(&[]).await;
    let checks = json!([{"check": "db.up", "host_name": "db-1", "timestamp": 1_700_000_000,
                         "status": 2, "message": "refused", "tags": ["env:prod"]}]);
    let events = json!({"apiKey": "", "events": {"api": [{"msg_title": "deploy", "msg_text": "v2",
                        "timestamp": 1_700_000_000, "host": "web-1"}]}, "internalHostname": "web-1"});
    let check_bytes = serde_json::to_vec(&checks).expect("json");
    let event_bytes = serde_json::to_vec(&events).expect("json");

    let (status, _) = intake
        .post(
            "/api/v1/check_run",
            "application/json",
            Some("zstd"),
            zstd(&check_bytes),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = intake
        .post(
            "/intake/",
            "application/json",
            Some("deflate"),
            zlib(&event_bytes),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = intake
        .post("/intake/", "application/json", None, event_bytes.clone())
        .await;
    assert_eq!(status, 202);

    assert_eq!(intake.payloads("check_run").await[0]["payload"], checks);
    let stored = intake.payloads("events").await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0]["payload"], events);
    assert_eq!(stored[1]["headers"]["content_encoding"], Value::Null);
}

#[tokio::test]
async fn undecodable_payloads_are_answered_400_and_recorded() {
    let intake = FakeIntake::start(&[]).await;
    let (status, body) = intake
        .post(
            "/api/v2/series",
            "application/x-protobuf",
            Some("zstd"),
            b"not zstd at all".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]
            .as_str()
            .is_some_and(|message| message.contains("zstd")),
        "{body}"
    );
    let (status, _) = intake
        .post(
            "/api/v1/check_run",
            "application/json",
            None,
            b"{\"not\":\"an array\"}".to_vec(),
        )
        .await;
    assert_eq!(status, 400);

    let (_, errors) = intake.get("/fakeintake/errors").await;
    let errors = errors.as_array().expect("list");
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["endpoint"], "series");
    assert_eq!(errors[1]["endpoint"], "check_run");
    assert!(intake.payloads("series").await.is_empty());
}

#[tokio::test]
async fn fail_next_makes_the_next_intake_requests_fail_with_the_given_status() {
    let intake = FakeIntake::start(&["--fail-next", "2", "--fail-status", "503"]).await;
    let send = || {
        intake.post(
            "/api/v2/series",
            "application/x-protobuf",
            None,
            series_payload(),
        )
    };
    assert_eq!(send().await.0, 503);
    assert_eq!(send().await.0, 503);
    assert_eq!(send().await.0, 202);

    let (status, _) = intake
        .request(
            "POST",
            "/fakeintake/fail?count=1&status=429",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(send().await.0, 429);
    assert_eq!(send().await.0, 202);

    let (_, stats) = intake.get("/fakeintake/stats").await;
    assert_eq!(stats["requests"]["series"], 5);
    assert_eq!(stats["failed_by_injection"]["series"], 3);
    assert_eq!(stats["stored"]["series"], 2);
}

#[tokio::test]
async fn a_rejected_api_key_gets_403_everywhere_and_others_validate() {
    let intake = FakeIntake::start(&["--reject-api-key", "revoked"]).await;
    let (status, body) = intake
        .request(
            "GET",
            "/api/v1/validate",
            &[("DD-API-KEY", KEY)],
            Vec::new(),
        )
        .await;
    assert_eq!((status, body), (200, json!({"valid": true})));
    // The agent passes the key as a query parameter: accepted too.
    let (status, _) = intake.get(&format!("/api/v1/validate?api_key={KEY}")).await;
    assert_eq!(status, 200);

    let (status, _) = intake
        .request(
            "GET",
            "/api/v1/validate",
            &[("DD-API-KEY", "revoked")],
            Vec::new(),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = intake
        .request(
            "POST",
            "/api/v2/series",
            &[
                ("DD-API-KEY", "revoked"),
                ("Content-Type", "application/x-protobuf"),
            ],
            series_payload(),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = intake.get("/api/v1/validate").await;
    assert_eq!(status, 403, "no key at all is refused too");
    assert!(intake.payloads("series").await.is_empty());
}

#[tokio::test]
async fn flush_forgets_what_was_received() {
    let intake = FakeIntake::start(&[]).await;
    let (status, _) = intake
        .post(
            "/api/v2/series",
            "application/x-protobuf",
            None,
            series_payload(),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(intake.payloads("series").await.len(), 1);
    let (status, _) = intake.get("/fakeintake/flush").await;
    assert_eq!(status, 200);
    assert!(intake.payloads("series").await.is_empty());
    let (status, body) = intake.get("/fakeintake/payloads?endpoint=metrics").await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]
            .as_str()
            .is_some_and(|m| m.contains("series"))
    );
}

#[tokio::test]
async fn the_forwarder_retries_injected_failures_and_its_payloads_decode() {
    use dogd_core::{HealthRegistry, StopRequest, Supervisor};
    use dogd_forwarder::transport::{
        CONTENT_TYPE_PROTOBUF, Endpoint, Forwarder, ForwarderConfig, Transaction,
    };

    let intake = FakeIntake::start(&["--fail-next", "1", "--fail-status", "503"]).await;
    let base = ForwarderConfig::base_url_for("datadoghq.com", Some(&intake.base), "7.62.1")
        .expect("base url");
    let mut config = ForwarderConfig::new(base, KEY, "7.62.1");
    config.backoff_base = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(100);
    let forwarder = Forwarder::new(config, &dogd_telemetry::Registry::new()).expect("forwarder");
    let handle = forwarder.handle();
    let mut supervisor = Supervisor::new(
        Duration::from_secs(10),
        HealthRegistry::new(),
        StopRequest::new(),
    );
    supervisor.register(forwarder);
    supervisor.start().await.expect("start");

    handle.submit(vec![Transaction::new(
        Endpoint::Series,
        Bytes::from(zstd(&series_payload())),
        CONTENT_TYPE_PROTOBUF,
        Some("zstd"),
    )]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while intake.payloads("series").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no series arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(supervisor.stop().await.is_clean());

    let record = &intake.payloads("series").await[0];
    assert_eq!(record["payload"]["series"][0]["metric"], "app.requests");
    assert_eq!(record["headers"]["user_agent"], "datadog-agent/7.62.1");
    assert!(record["headers"]["agent_payload"].is_string());
    let (_, stats) = intake.get("/fakeintake/stats").await;
    assert_eq!(stats["failed_by_injection"]["series"], 1, "{stats}");
    assert_eq!(
        stats["requests"]["series"], 2,
        "one injected failure, then the retry"
    );
}
