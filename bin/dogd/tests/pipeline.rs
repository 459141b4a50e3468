//! End-to-end: DogStatsD traffic from the real Python client goes through `dogd run`'s aggregator,
//! serializer and forwarder to a fake intake (embedded, decoding every payload), or to the local
//! file sink when no API key is set. Failures of the intake are retried, a refused key drops, and
//! what cannot be delivered at stop survives on disk into the next run.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use dogd_fakeintake::{FakeIntake, Kind, Options, series_total};
use dogd_testkit::{Daemon, clean_command, free_tcp_port, free_udp_port};
use nix::sys::signal::Signal;
use serde_json::Value;

const API_KEY: &str = "0123456789abcdef0123456789abcdef";

fn dogd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_dogd"))
}

/// A fake intake on a runtime of its own (the tests themselves are synchronous).
struct Intake {
    fake: Option<FakeIntake>,
    runtime: tokio::runtime::Runtime,
}

impl Intake {
    fn start(port: u16, options: Options) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let fake = runtime
            .block_on(FakeIntake::start(addr, options))
            .expect("start the fake intake");
        Self {
            fake: Some(fake),
            runtime,
        }
    }

    fn fake(&self) -> &FakeIntake {
        self.fake.as_ref().expect("running")
    }

    /// Every decoded series (or sketch) across the payloads received so far.
    fn items(&self, kind: Kind) -> Vec<Value> {
        let field = match kind {
            Kind::Series => "series",
            Kind::Sketches => "sketches",
            Kind::CheckRun | Kind::Events => return self.fake().payloads(kind),
        };
        self.fake()
            .payloads(kind)
            .iter()
            .flat_map(|record| {
                record["payload"][field]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    fn named(&self, kind: Kind, name: &str) -> Vec<Value> {
        self.items(kind)
            .into_iter()
            .filter(|item| item["metric"] == name)
            .collect()
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        if let Some(fake) = self.fake.take() {
            self.runtime.block_on(fake.stop());
        }
    }
}

/// Polls `probe` every 100 ms until it gives a value; panics with `what` after `timeout`.
fn wait_until<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The total count rate series carry: each point is a per-second rate over its interval.
fn rate_total(series: &[Value]) -> f64 {
    series.iter().map(series_total).sum()
}

/// A running `dogd` with its DogStatsD UDP port and CMD API port.
struct Running {
    daemon: Daemon,
    udp_port: u16,
    cmd_port: u16,
}

/// Starts `dogd run` with `env`, DogStatsD on a free UDP port, and waits until it is ready.
fn start_in(home: tempfile::TempDir, env: &[(&str, &str)]) -> Running {
    let udp_port = free_udp_port();
    let udp_text = udp_port.to_string();
    let mut env = env.to_vec();
    env.extend([
        ("DD_CMD_PORT", "0"),
        ("DD_DOGSTATSD_PORT", udp_text.as_str()),
    ]);
    let mut daemon = Daemon::spawn_in(dogd(), home, &["run"], &env);
    let cmd_port = daemon.server_addr("CMD API Server").port();
    daemon.wait_ready();
    Running {
        daemon,
        udp_port,
        cmd_port,
    }
}

/// Starts `dogd run` forwarding to `intake_url`.
fn start_forwarding(intake_url: &str, extra: &[(&str, &str)]) -> Running {
    let home = tempfile::tempdir().expect("home");
    start_forwarding_in(home, intake_url, extra)
}

fn start_forwarding_in(
    home: tempfile::TempDir,
    intake_url: &str,
    extra: &[(&str, &str)],
) -> Running {
    let mut env = vec![("DD_API_KEY", API_KEY), ("DD_DD_URL", intake_url)];
    env.extend_from_slice(extra);
    start_in(home, &env)
}

/// Sends plain DogStatsD lines over UDP, one datagram each.
fn send_udp(port: u16, lines: &[String]) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    for line in lines {
        socket
            .send_to(line.as_bytes(), ("127.0.0.1", port))
            .expect("send");
    }
}

/// Waits until DogStatsD has parsed at least `metrics` metric samples (read from `dogd status`).
fn wait_parsed(running: &Running, metrics: u64) {
    let cmd_port = running.cmd_port.to_string();
    let home = running.daemon.home.path();
    wait_until(
        Duration::from_secs(20),
        "DogStatsD to parse the samples",
        || {
            let output = clean_command(dogd(), home)
                .env("DD_CMD_PORT", &cmd_port)
                .args(["status", "dogstatsd", "--json"])
                .output()
                .ok()?;
            let status: Value = serde_json::from_slice(&output.stdout).ok()?;
            (status["messages"]["metrics"].as_u64()? >= metrics).then_some(())
        },
    );
}

/// `dogd health --json` of the running daemon (`Null` when it cannot be read).
fn health_of(running: &Running) -> Value {
    let output = clean_command(dogd(), running.daemon.home.path())
        .env("DD_CMD_PORT", running.cmd_port.to_string())
        .args(["health", "--json"])
        .output();
    output
        .ok()
        .and_then(|output| serde_json::from_slice(&output.stdout).ok())
        .unwrap_or(Value::Null)
}

/// Stops the daemon with SIGTERM and returns its log lines, checking it exited cleanly.
fn stop(daemon: &mut Daemon) -> Vec<String> {
    daemon.signal(Signal::SIGTERM);
    let (status, lines) = daemon.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit {status:?}:\n{}", lines.join("\n"));
    lines
}

const PY_SENDER: &str = r#"
import sys
from datadog.dogstatsd import DogStatsd
statsd = DogStatsd(host="127.0.0.1", port=int(sys.argv[1]), disable_telemetry=True)
for _ in range(5):
    statsd.increment("e2e.requests", tags=["route:/home"])
statsd.gauge("e2e.temp", 21.5, tags=["room:lab"])
for v in range(1, 11):
    statsd.histogram("e2e.size", v)
for v in range(1, 101):
    statsd.distribution("e2e.latency", v, tags=["svc:web"])
statsd.event("deploy", "v2 rolled out", alert_type="success", tags=["team:core"])
statsd.service_check("e2e.can_connect", 2, message="refused", tags=["db:main"])
statsd.flush()
statsd.close_socket()
"#;

#[test]
fn python_client_traffic_reaches_the_intake_decoded_on_the_periodic_flush() {
    let intake = Intake::start(0, Options::default());
    let mut running = start_forwarding(&intake.fake().url(), &[]);
    let health = health_of(&running);
    assert_eq!(
        health["Healthy"],
        serde_json::json!(["aggregator", "api", "dogstatsd", "forwarder"]),
        "{health}"
    );

    let python = dogd_testkit::python_with(Path::new(env!("CARGO_TARGET_TMPDIR")), &["datadog"]);
    let sent = std::process::Command::new(python)
        .args(["-c", PY_SENDER, &running.udp_port.to_string()])
        .output()
        .expect("python");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );

    // The periodic flush (every 15 s, closed 10 s buckets) delivers without any stop.
    let temp = wait_until(Duration::from_secs(45), "e2e.temp at the intake", || {
        let found = intake.named(Kind::Series, "e2e.temp");
        (!found.is_empty()).then_some(found)
    });
    assert_eq!(temp[0]["type"], "gauge");
    assert_eq!(temp[0]["points"][0][1], 21.5);
    assert_eq!(temp[0]["tags"], serde_json::json!(["room:lab"]));
    assert_eq!(
        temp[0]["origin"],
        serde_json::json!({"product": 10, "category": 10, "service": 0})
    );
    assert!(
        temp[0]["host"]
            .as_str()
            .is_some_and(|host| !host.is_empty())
    );

    let lines = stop(&mut running.daemon);

    // Everything, the open bucket included, is out after stop.
    let requests = intake.named(Kind::Series, "e2e.requests");
    assert!(requests.iter().all(|serie| serie["type"] == "rate"));
    assert!((rate_total(&requests) - 5.0).abs() < 1e-9, "{requests:?}");
    let size_max = intake.named(Kind::Series, "e2e.size.max");
    assert_eq!(size_max[0]["points"][0][1], 10.0);
    let size_count = intake.named(Kind::Series, "e2e.size.count");
    assert!((rate_total(&size_count) - 10.0).abs() < 1e-9);

    let latency = intake.named(Kind::Sketches, "e2e.latency");
    let dogsketches: Vec<&Value> = latency
        .iter()
        .flat_map(|sketch| sketch["dogsketches"].as_array().into_iter().flatten())
        .collect();
    let count: i64 = dogsketches
        .iter()
        .map(|dog| dog["cnt"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(count, 100);
    let min = dogsketches
        .iter()
        .filter_map(|dog| dog["min"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let max = dogsketches
        .iter()
        .filter_map(|dog| dog["max"].as_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!((min, max), (1.0, 100.0));
    assert_eq!(latency[0]["tags"], serde_json::json!(["svc:web"]));

    let checks = intake.items(Kind::CheckRun);
    let check = checks
        .iter()
        .flat_map(|record| record["payload"].as_array().cloned().unwrap_or_default())
        .find(|check| check["check"] == "e2e.can_connect")
        .expect("the service check");
    assert_eq!(check["status"], 2);
    assert_eq!(check["message"], "refused");
    let events = intake.items(Kind::Events);
    let event = &events[0]["payload"]["events"]["api"][0];
    assert_eq!(event["msg_title"], "deploy");
    assert_eq!(event["alert_type"], "success");

    // Every payload carried the key, zstd and (for protobuf) the agent-payload version.
    let series_payloads = intake.fake().payloads(Kind::Series);
    for record in &series_payloads {
        assert_eq!(record["headers"]["api_key"], API_KEY);
        assert_eq!(record["headers"]["content_encoding"], "zstd");
        assert!(record["headers"]["agent_payload"].is_string());
    }
    assert!(
        lines
            .iter()
            .any(|line| line.contains("forwarding to http://127.0.0.1")),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn intake_errors_are_retried_until_the_payload_is_accepted() {
    let intake = Intake::start(0, Options::default());
    intake.fake().fail_next(2, 500);
    let mut running = start_forwarding(
        &intake.fake().url(),
        &[
            ("DD_FORWARDER_BACKOFF_BASE", "0.1"),
            ("DD_FORWARDER_BACKOFF_MAX", "0.3"),
        ],
    );
    send_udp(running.udp_port, &["retried.count:7|c".to_owned()]);
    wait_parsed(&running, 1);
    stop(&mut running.daemon);

    let stats = intake.fake().stats();
    assert_eq!(stats["failed_by_injection"]["series"], 2, "{stats}");
    let series = intake.named(Kind::Series, "retried.count");
    assert!((rate_total(&series) - 7.0).abs() < 1e-9, "{series:?}");
}

#[test]
fn a_refused_api_key_drops_payloads_and_says_why_once() {
    let intake = Intake::start(
        0,
        Options {
            reject_api_keys: [API_KEY.to_owned()].into(),
            ..Options::default()
        },
    );
    let mut running = start_forwarding(&intake.fake().url(), &[]);
    // The key fails validation at start: the forwarder reports itself unhealthy.
    let health = wait_until(
        Duration::from_secs(20),
        "the forwarder to turn unhealthy",
        || {
            let health = health_of(&running);
            health["Unhealthy"]
                .as_array()?
                .iter()
                .any(|name| name == "forwarder")
                .then_some(health)
        },
    );
    assert_eq!(
        health["Healthy"],
        serde_json::json!(["aggregator", "api", "dogstatsd"])
    );
    send_udp(
        running.udp_port,
        &["refused.a:1|c".to_owned(), "refused.b:2|g".to_owned()],
    );
    wait_parsed(&running, 2);
    let lines = stop(&mut running.daemon);

    assert!(intake.fake().payloads(Kind::Series).is_empty());
    let stats = intake.fake().stats();
    assert!(
        stats["rejected_api_key"]["series"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{stats}"
    );
    let forbidden: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("| ERROR |") && line.contains("403"))
        .collect();
    assert_eq!(forbidden.len(), 1, "{}", lines.join("\n"));
    // The key is named only by its last characters.
    assert!(!lines.iter().any(|line| line.contains(API_KEY)));
}

#[test]
fn payloads_undeliverable_at_stop_are_sent_by_the_next_run_from_disk() {
    let home = tempfile::tempdir().expect("home");
    let state = home.path().join(".local/state/dogd");
    // Nothing listens on this port during the first run.
    let intake_port = free_tcp_port();
    let intake_url = format!("http://127.0.0.1:{intake_port}");
    let persistent = [
        ("DD_FORWARDER_STORAGE_MAX_SIZE_IN_BYTES", "10000000"),
        ("DD_SHUTDOWN_TIMEOUT", "4"),
    ];
    let mut first = start_forwarding_in(home, &intake_url, &persistent);
    send_udp(first.udp_port, &["kept.count:3|c|#run:first".to_owned()]);
    wait_parsed(&first, 1);
    let lines = stop(&mut first.daemon);
    // The second run reuses the first one's home (and so its state directory).
    let home = std::mem::replace(&mut first.daemon.home, tempfile::tempdir().expect("spare"));
    drop(first);

    let queue = state.join("transactions_to_retry");
    let files: Vec<_> = std::fs::read_dir(&queue)
        .expect("the disk queue directory")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".retry"))
        .collect();
    assert!(!files.is_empty(), "{}", lines.join("\n"));

    let intake = Intake::start(intake_port, Options::default());
    let mut second = start_forwarding_in(home, &intake_url, &persistent);
    let series = wait_until(Duration::from_secs(30), "the stored series", || {
        let found = intake.named(Kind::Series, "kept.count");
        (!found.is_empty()).then_some(found)
    });
    assert!((rate_total(&series) - 3.0).abs() < 1e-9, "{series:?}");
    assert_eq!(series[0]["tags"], serde_json::json!(["run:first"]));
    stop(&mut second.daemon);
    let left = std::fs::read_dir(&queue)
        .expect("queue dir")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".retry"))
        .count();
    assert_eq!(left, 0, "sent files are removed");
}

#[test]
fn sigterm_mid_stream_delivers_every_sample_the_aggregator_received() {
    let intake = Intake::start(0, Options::default());
    let mut running = start_forwarding(&intake.fake().url(), &[]);
    let udp_port = running.udp_port;
    // Samples keep coming while dogd stops: whatever it accepted must reach the intake.
    let sender = std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("client socket");
        let mut sent = 0u64;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            let batch = "stream.count:1|c\n".repeat(20);
            if socket
                .send_to(batch.as_bytes(), ("127.0.0.1", udp_port))
                .is_ok()
            {
                sent += 20;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        sent
    });
    wait_parsed(&running, 1000);
    let lines = stop(&mut running.daemon);
    let sent = sender.join().expect("sender");

    let received: u64 = lines
        .iter()
        .find_map(|line| {
            let (_, rest) = line.split_once("flushed everything it held (")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no final aggregator line:\n{}", lines.join("\n")));
    assert!(received >= 1000 && received <= sent, "{received} of {sent}");
    let delivered = rate_total(&intake.named(Kind::Series, "stream.count"));
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let expected = received as f64;
    assert!(
        (delivered - expected).abs() < 1e-6,
        "aggregator received {received}, intake got {delivered}"
    );
}

#[test]
fn without_an_api_key_flushes_go_to_the_local_file_sink() {
    let mut running = start_in(tempfile::tempdir().expect("home"), &[]);
    let ready = running
        .daemon
        .seen()
        .iter()
        .find(|line| line.contains("flushes are written to"))
        .cloned()
        .expect("the local sink is announced");
    send_udp(
        running.udp_port,
        &[
            "local.gauge:4|g|#k:v".to_owned(),
            "local.dist:2|d".to_owned(),
        ],
    );
    wait_parsed(&running, 2);
    stop(&mut running.daemon);

    let file = running.daemon.state_dir().join("local_sink/flushes.jsonl");
    assert!(ready.contains(&file.display().to_string()), "{ready}");
    let text = std::fs::read_to_string(&file).expect("the local sink file");
    let records: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let gauge = records
        .iter()
        .find(|record| record["metric"] == "local.gauge")
        .expect("the gauge");
    assert_eq!(gauge["kind"], "series");
    assert_eq!(gauge["points"][0][1], 4.0);
    assert_eq!(gauge["tags"], serde_json::json!(["k:v"]));
    let sketch = records
        .iter()
        .find(|record| record["metric"] == "local.dist")
        .expect("the sketch");
    assert_eq!(sketch["kind"], "sketch");
    assert_eq!(sketch["dogsketches"][0]["cnt"], 1);
}
