//! The server over real sockets: real DogStatsD clients (Python `datadog`, node `hot-shots`) over
//! UDP and Unix sockets, origin detection, socket files, stream framing, and back-pressure.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dogd_config::{Config, Environment};
use dogd_core::{HealthRegistry, StopRequest, Supervisor};
use dogd_dogstatsd::parse::MetricType;
use dogd_dogstatsd::sample::{Event, Sample, SampleBatch, SampleSink, SampleValue, ServiceCheck};
use dogd_dogstatsd::stats::MetricStats;
use dogd_dogstatsd::{DogStatsdConfig, DogStatsdServer};
use dogd_telemetry::Registry;

/// Keeps everything it is given.
#[derive(Default)]
struct Capture {
    samples: Mutex<Vec<Sample>>,
    events: Mutex<Vec<Event>>,
    checks: Mutex<Vec<ServiceCheck>>,
}

#[async_trait]
impl SampleSink for Capture {
    async fn accept(&self, batch: SampleBatch) {
        self.samples.lock().expect("lock").extend(batch.samples);
        self.events.lock().expect("lock").extend(batch.events);
        self.checks
            .lock()
            .expect("lock")
            .extend(batch.service_checks);
    }
}

impl Capture {
    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().expect("lock").clone()
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().expect("lock").clone()
    }

    fn checks(&self) -> Vec<ServiceCheck> {
        self.checks.lock().expect("lock").clone()
    }

    /// Waits until `done` holds for what was captured.
    async fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; have {:?}",
                self.samples().iter().map(describe).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn find(&self, name: &str) -> Vec<Sample> {
        self.samples()
            .into_iter()
            .filter(|sample| &*sample.context.name == name)
            .collect()
    }
}

fn describe(sample: &Sample) -> String {
    format!(
        "{} {:?} {:?} {:?}",
        sample.context.name, sample.metric_type, sample.value, sample.context.tags
    )
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Running {
    capture: Arc<Capture>,
    registry: Registry,
    supervisor: Supervisor,
    port: u16,
    dir: tempfile::TempDir,
}

impl Running {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("dsd.socket")
    }

    fn stream_socket(&self) -> PathBuf {
        self.dir.path().join("dsd-stream.socket")
    }

    fn metric(&self, series: &str) -> u64 {
        self.registry
            .render_prometheus()
            .lines()
            .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    }

    async fn stop(mut self) {
        assert!(self.supervisor.stop().await.is_clean());
    }
}

fn server_for(
    yaml: &str,
    dir: &Path,
    sink: Arc<dyn SampleSink>,
    registry: &Registry,
) -> DogStatsdServer {
    let config = Config::from_yaml(&dir.join("datadog.yaml"), yaml, &Environment::default())
        .expect("config");
    DogStatsdServer::new(
        DogStatsdConfig::from_config(&config).expect("dogstatsd config"),
        "test-host",
        sink,
        registry,
        MetricStats::new(false),
    )
    .expect("server")
}

async fn start(
    extra_yaml: &str,
    sink: Option<Arc<dyn SampleSink>>,
) -> Result<Running, dogd_core::StartError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    // Defaults for what the test does not set itself (YAML refuses duplicate keys).
    let mut yaml = extra_yaml.to_owned();
    for (key, value) in [
        ("dogstatsd_port", port.to_string()),
        (
            "dogstatsd_socket",
            dir.path().join("dsd.socket").display().to_string(),
        ),
        (
            "dogstatsd_stream_socket",
            dir.path().join("dsd-stream.socket").display().to_string(),
        ),
    ] {
        if !extra_yaml.contains(&format!("{key}:")) {
            yaml.push_str(&format!("{key}: {value}\n"));
        }
    }
    let capture = Arc::new(Capture::default());
    let registry = Registry::new();
    let sink = sink.unwrap_or_else(|| capture.clone());
    let server = server_for(&yaml, dir.path(), sink, &registry);
    let mut supervisor = Supervisor::new(
        Duration::from_secs(5),
        HealthRegistry::new(),
        StopRequest::new(),
    );
    supervisor.register(server);
    supervisor.start().await?;
    Ok(Running {
        capture,
        registry,
        supervisor,
        port,
        dir,
    })
}

fn python() -> PathBuf {
    dogd_testkit::python_with(Path::new(env!("CARGO_TARGET_TMPDIR")), &["datadog"])
}

const PY_CLIENT: &str = r#"
import os, sys
from datadog.dogstatsd import DogStatsd
mode, target = sys.argv[1], sys.argv[2]
if mode == "udp":
    client = DogStatsd(host="127.0.0.1", port=int(target), disable_telemetry=True)
else:
    client = DogStatsd(socket_path=target, disable_telemetry=True)
client.gauge("py.gauge", 42.5, tags=["env:test", "mode:" + mode])
client.increment("py.counter", 3, tags=["env:test"])
client.histogram("py.histogram", 12)
client.distribution("py.distribution", 7.25, tags=["team:core"])
client.timing("py.timing", 350)
client.set("py.set", "alice")
client.event("Deploy done", "version 2\nall good", alert_type="success", tags=["env:test"], hostname="web-1")
client.service_check("py.can_connect", 2, tags=["db:main"], message="connection refused")
client.flush()
client.close_socket()
print(os.getpid())
"#;

fn run_python(mode: &str, target: &str) -> u32 {
    let output = std::process::Command::new(python())
        .args(["-c", PY_CLIENT, mode, target])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("pid")
}

fn number(sample: &Sample) -> f64 {
    match &sample.value {
        SampleValue::Number(value) => *value,
        other => panic!("not a number: {other:?}"),
    }
}

fn tags(sample: &Sample) -> Vec<String> {
    sample
        .context
        .tags
        .iter()
        .map(|tag| tag.to_string())
        .collect()
}

fn assert_python_payload(capture: &Capture, mode: &str) {
    let gauge = capture.find("py.gauge");
    assert_eq!(gauge.len(), 1);
    assert_eq!(gauge[0].metric_type, MetricType::Gauge);
    assert_eq!(number(&gauge[0]), 42.5);
    assert_eq!(
        tags(&gauge[0]),
        ["env:test".to_owned(), format!("mode:{mode}")]
    );
    assert_eq!(&*gauge[0].context.host, "test-host");
    assert_eq!(number(&capture.find("py.counter")[0]), 3.0);
    assert_eq!(
        capture.find("py.counter")[0].metric_type,
        MetricType::Counter
    );
    assert_eq!(
        capture.find("py.histogram")[0].metric_type,
        MetricType::Histogram
    );
    assert_eq!(
        capture.find("py.distribution")[0].metric_type,
        MetricType::Distribution
    );
    assert_eq!(number(&capture.find("py.distribution")[0]), 7.25);
    assert_eq!(capture.find("py.timing")[0].metric_type, MetricType::Timer);
    assert_eq!(
        capture.find("py.set")[0].value,
        SampleValue::SetMember(Arc::from("alice"))
    );
    let events = capture.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].title, "Deploy done");
    assert_eq!(events[0].text, "version 2\nall good");
    assert_eq!(events[0].alert_type, "success");
    assert_eq!(events[0].host, "web-1");
    let checks = capture.checks();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].name, "py.can_connect");
    assert_eq!(checks[0].status, 2);
    assert_eq!(checks[0].message, "connection refused");
}

fn done_with_python(capture: &Capture) -> bool {
    !capture.find("py.set").is_empty()
        && !capture.checks().is_empty()
        && !capture.events().is_empty()
        && capture.samples().len() >= 6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_datadog_client_over_udp_is_parsed() {
    let running = start("", None).await.expect("start");
    let port = running.port.to_string();
    tokio::task::spawn_blocking(move || run_python("udp", &port))
        .await
        .expect("join");
    running
        .capture
        .wait_for("python payload", done_with_python)
        .await;
    assert_python_payload(&running.capture, "udp");
    assert_eq!(
        running.metric(r#"dogstatsd__processed{message_type="metrics",state="ok"}"#),
        6
    );
    assert!(running.metric(r#"dogstatsd__udp_packets{state="ok"}"#) >= 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_datadog_client_over_uds_is_parsed_with_its_pid() {
    let running = start("dogstatsd_origin_detection: true\n", None)
        .await
        .expect("start");
    let socket = running.socket().display().to_string();
    let pid = tokio::task::spawn_blocking(move || run_python("uds", &socket))
        .await
        .expect("join");
    running
        .capture
        .wait_for("python payload", done_with_python)
        .await;
    assert_python_payload(&running.capture, "uds");
    for sample in running.capture.samples() {
        let origin = sample.origin.expect("origin detected");
        assert_eq!(
            origin.pid,
            Some(pid),
            "origin pid of {}",
            sample.context.name
        );
    }
    running.stop().await;
}

const NODE_CLIENT: &str = r#"
const StatsD = require('hot-shots');
const [mode, target] = process.argv.slice(1);
const options = mode === 'udp' ? { host: '127.0.0.1', port: Number(target) } : { protocol: 'uds', path: target };
const client = new StatsD({ ...options, errorHandler: (e) => { console.error(e); process.exit(2); } });
client.gauge('node.gauge', 9.5, ['lang:js']);
client.increment('node.counter', 2);
client.histogram('node.histogram', 44, 0.9999999);
client.distribution('node.distribution', 1.5);
client.timing('node.timing', 12);
client.set('node.set', 'bob');
client.event('node event', 'text from node', { alert_type: 'warning' });
client.check('node.check', client.CHECKS.WARNING, { message: 'slow' });
client.close(() => {});
"#;

fn run_node(mode: &str, target: &str) {
    let modules =
        dogd_testkit::node_modules_with(Path::new(env!("CARGO_TARGET_TMPDIR")), &["hot-shots"]);
    let output = std::process::Command::new("node")
        .args(["-e", NODE_CLIENT, mode, target])
        .env("NODE_PATH", modules)
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn done_with_node(capture: &Capture) -> bool {
    !capture.find("node.set").is_empty()
        && !capture.checks().is_empty()
        && !capture.events().is_empty()
        && capture.samples().len() >= 6
}

fn assert_node_payload(capture: &Capture) {
    let gauge = &capture.find("node.gauge")[0];
    assert_eq!(number(gauge), 9.5);
    assert_eq!(tags(gauge), ["lang:js"]);
    assert_eq!(number(&capture.find("node.counter")[0]), 2.0);
    let histogram = &capture.find("node.histogram")[0];
    // hot-shots samples on the client: a rate this close to 1 always sends, and travels as @0.9999999.
    assert_eq!(histogram.sample_rate, 0.9999999);
    assert_eq!(
        capture.find("node.distribution")[0].metric_type,
        MetricType::Distribution
    );
    assert_eq!(
        capture.find("node.timing")[0].metric_type,
        MetricType::Timer
    );
    assert_eq!(
        capture.find("node.set")[0].value,
        SampleValue::SetMember(Arc::from("bob"))
    );
    let events = capture.events();
    assert_eq!(
        (events[0].title.as_str(), events[0].alert_type.as_str()),
        ("node event", "warning")
    );
    let checks = capture.checks();
    assert_eq!(
        (
            checks[0].name.as_str(),
            checks[0].status,
            checks[0].message.as_str()
        ),
        ("node.check", 1, "slow")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_hot_shots_over_udp_is_parsed() {
    let running = start("", None).await.expect("start");
    let port = running.port.to_string();
    tokio::task::spawn_blocking(move || run_node("udp", &port))
        .await
        .expect("join");
    running
        .capture
        .wait_for("node payload", done_with_node)
        .await;
    assert_node_payload(&running.capture);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_hot_shots_over_uds_is_parsed() {
    let running = start("", None).await.expect("start");
    let socket = running.socket().display().to_string();
    tokio::task::spawn_blocking(move || run_node("uds", &socket))
        .await
        .expect("join");
    running
        .capture
        .wait_for("node payload", done_with_node)
        .await;
    assert_node_payload(&running.capture);
    running.stop().await;
}

#[tokio::test]
async fn stream_socket_reads_length_prefixed_frames_and_drops_oversized_ones() {
    use tokio::io::AsyncWriteExt as _;
    let running = start("dogstatsd_buffer_size: 128\n", None)
        .await
        .expect("start");
    let mut stream = tokio::net::UnixStream::connect(running.stream_socket())
        .await
        .expect("connect");
    for payload in ["stream.a:1|c\nstream.b:2|g", "stream.c:3|d\n"] {
        let length = u32::try_from(payload.len()).expect("small").to_le_bytes();
        stream.write_all(&length).await.expect("length");
        stream.write_all(payload.as_bytes()).await.expect("payload");
    }
    running
        .capture
        .wait_for("stream frames", |c| c.samples().len() == 3)
        .await;
    // A frame longer than dogstatsd_buffer_size closes the connection.
    stream
        .write_all(&1000u32.to_le_bytes())
        .await
        .expect("length");
    let _ = stream.write_all(&[b'x'; 200]).await;
    let mut other = tokio::net::UnixStream::connect(running.stream_socket())
        .await
        .expect("connect again");
    let payload = "stream.d:4|c";
    other.write_all(&12u32.to_le_bytes()).await.expect("length");
    other.write_all(payload.as_bytes()).await.expect("payload");
    running
        .capture
        .wait_for("second connection", |c| !c.find("stream.d").is_empty())
        .await;
    running
        .capture
        .wait_for("oversized frame counted", |_| {
            running.metric(r#"dogstatsd__uds_packets{transport="uds_stream",state="error"}"#) == 1
        })
        .await;
    running.stop().await;
}

#[tokio::test]
async fn malformed_lines_are_counted_and_the_rest_of_the_packet_still_parses() {
    let running = start("", None).await.expect("start");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .send_to(
            b"good.one:1|c\nbad.type:1|x\nno_pipe\n:1|c\ngood.two:2|g\n",
            ("127.0.0.1", running.port),
        )
        .expect("send");
    running
        .capture
        .wait_for("good lines", |c| c.samples().len() == 2)
        .await;
    let names: Vec<String> = running
        .capture
        .samples()
        .iter()
        .map(|s| s.context.name.to_string())
        .collect();
    assert_eq!(names, ["good.one", "good.two"]);
    running
        .capture
        .wait_for("errors counted", |_| {
            running.metric(r#"dogstatsd__processed{message_type="metrics",state="error"}"#) == 3
        })
        .await;
    let metrics = running.registry.render_prometheus();
    assert!(
        metrics.contains("dogstatsd__parse_errors{message_type=\"metrics\",reason="),
        "{metrics}"
    );
    running.stop().await;
}

#[tokio::test]
async fn stale_socket_is_replaced_and_removed_on_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stale.socket");
    // A socket file left behind by a process that died.
    drop(std::os::unix::net::UnixDatagram::bind(&path).expect("stale socket"));
    assert!(path.exists());
    let yaml = format!("dogstatsd_socket: {}\n", path.display());
    let running = start(&yaml, None)
        .await
        .expect("start replaces the stale socket");
    let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
    client
        .send_to(b"replaced:1|c", &path)
        .expect("send to the new socket");
    running
        .capture
        .wait_for("sample", |c| !c.find("replaced").is_empty())
        .await;
    let mode = std::fs::metadata(&path).expect("socket").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o722
    );
    running.stop().await;
    assert!(!path.exists(), "socket file removed on stop");
}

#[tokio::test]
async fn a_path_that_is_not_a_socket_fails_the_start_and_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, "do not delete").expect("write");
    let yaml = format!("dogstatsd_socket: {}\n", path.display());
    let error = start(&yaml, None).await.err().expect("refused");
    assert_eq!(error.component, "dogstatsd");
    let message = error.to_string();
    assert!(
        message.contains("exists and is not a socket; refusing to delete it"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        "do not delete"
    );
}

#[tokio::test]
async fn udp_port_in_use_fails_the_start() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server_for(
        &format!("dogstatsd_port: {port}\n"),
        dir.path(),
        Arc::new(Capture::default()),
        &Registry::new(),
    );
    let mut supervisor = Supervisor::new(
        Duration::from_secs(5),
        HealthRegistry::new(),
        StopRequest::new(),
    );
    supervisor.register(server);
    let message = supervisor
        .start()
        .await
        .expect_err("port taken")
        .to_string();
    assert!(
        message.contains(&format!(
            "cannot listen for DogStatsD on UDP 127.0.0.1:{port} (dogstatsd_port)"
        )),
        "{message}"
    );
}

/// A sink that never returns: the aggregator is stuck.
struct Stuck;

#[async_trait]
impl SampleSink for Stuck {
    async fn accept(&self, _batch: SampleBatch) {
        std::future::pending::<()>().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_sink_makes_packets_drop_and_counted_without_stalling_the_reader() {
    let running = start(
        "dogstatsd_queue_size: 2\ndogstatsd_workers_count: 1\n",
        Some(Arc::new(Stuck)),
    )
    .await
    .expect("start");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let send = |count: usize, pause: Duration| {
        for i in 0..count {
            socket
                .send_to(
                    format!("flood:{i}|c").as_bytes(),
                    ("127.0.0.1", running.port),
                )
                .expect("send");
            std::thread::sleep(pause);
        }
    };
    send(400, Duration::from_micros(200));
    running
        .capture
        .wait_for("drops", |_| {
            running.metric(r#"dogstatsd__packets_dropped{transport="udp"}"#) > 0
        })
        .await;
    // The reader is not stuck behind the full queue: it keeps reading (and dropping).
    let read_before = running.metric(r#"dogstatsd__udp_packets{state="ok"}"#);
    send(200, Duration::from_millis(1));
    running
        .capture
        .wait_for("reading goes on", |_| {
            running.metric(r#"dogstatsd__udp_packets{state="ok"}"#) >= read_before + 190
        })
        .await;
    // Stopping is bounded by the supervisor's deadline even with the sink stuck.
    let mut supervisor = running.supervisor;
    let report = tokio::time::timeout(Duration::from_secs(15), supervisor.stop())
        .await
        .expect("stop bounded");
    assert!(!report.components.is_empty());
}
