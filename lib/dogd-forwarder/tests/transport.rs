//! The forwarder against a real intake on a real socket: one small axum server per test, whose
//! answers each test scripts.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use dogd_api::StatusProvider as _;
use dogd_core::{HealthRegistry, StopRequest, Supervisor};
use dogd_forwarder::transport::{
    AGENT_PAYLOAD_VERSION, CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF, Endpoint, Forwarder,
    ForwarderConfig, ForwarderStatus, Proxy, ProxyConfig, StorageConfig, Transaction,
};
use dogd_telemetry::Registry;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const API_KEY: &str = "0123456789abcdef0123456789abcdef";
const VERSION: &str = "7.62.1";

/// One request as the intake saw it.
#[derive(Clone, Debug)]
struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

#[derive(Default)]
struct IntakeState {
    /// Statuses for the next requests, in order; 200 once empty.
    script: Mutex<VecDeque<u16>>,
    received: Mutex<Vec<Received>>,
}

/// A fake intake on 127.0.0.1, stopped on drop.
struct Intake {
    addr: SocketAddr,
    state: Arc<IntakeState>,
    server: JoinHandle<()>,
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    State(state): State<Arc<IntakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let status = state
        .script
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or(200);
    state
        .received
        .lock()
        .expect("received lock")
        .push(Received {
            method,
            path: uri.path().to_owned(),
            headers,
            body,
            at: Instant::now(),
        });
    let status = StatusCode::from_u16(status).expect("scripted status");
    (status, format!("{{\"status\":{}}}", status.as_u16()))
}

impl Intake {
    async fn start(script: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, script)
    }

    async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .expect("bind the reserved port");
        Self::serve(listener, &[])
    }

    fn serve(listener: TcpListener, script: &[u16]) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(IntakeState {
            script: Mutex::new(script.iter().copied().collect()),
            received: Mutex::default(),
        });
        let app = Router::new().fallback(answer).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            state,
            server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("received lock").clone()
    }

    fn posts(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|request| request.method == Method::POST)
            .collect()
    }
}

/// A port nothing listens on (bound, then released).
async fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local addr")
}

/// Settings for tests: tiny backoffs, no validation unless asked.
fn config(base: &str) -> ForwarderConfig {
    let base_url =
        ForwarderConfig::base_url_for("datadoghq.com", Some(base), VERSION).expect("base url");
    let mut config = ForwarderConfig::new(base_url, API_KEY, VERSION);
    config.backoff_base = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(400);
    config.timeout = Duration::from_secs(3);
    config.validate_api_key = false;
    config.drain_timeout = Duration::from_millis(500);
    config
}

fn transaction(endpoint: Endpoint, body: &[u8]) -> Transaction {
    let (content_type, encoding) = match endpoint {
        Endpoint::Series | Endpoint::Sketches => (CONTENT_TYPE_PROTOBUF, Some("zstd")),
        Endpoint::CheckRun => (CONTENT_TYPE_JSON, Some("deflate")),
        Endpoint::Events => (CONTENT_TYPE_JSON, None),
    };
    Transaction::new(
        endpoint,
        Bytes::copy_from_slice(body),
        content_type,
        encoding,
    )
}

struct Running {
    supervisor: Supervisor,
    status: ForwarderStatus,
    handle: dogd_forwarder::transport::ForwarderHandle,
}

impl Running {
    async fn start(config: ForwarderConfig) -> Self {
        let forwarder = Forwarder::new(config, &Registry::new()).expect("forwarder");
        Self::start_built(forwarder).await
    }

    async fn start_built(forwarder: Forwarder) -> Self {
        let status = forwarder.status();
        let handle = forwarder.handle();
        let mut supervisor = Supervisor::new(
            Duration::from_secs(10),
            HealthRegistry::new(),
            StopRequest::new(),
        );
        supervisor.register(forwarder);
        supervisor.start().await.expect("forwarder starts");
        Self {
            supervisor,
            status,
            handle,
        }
    }

    fn status(&self) -> Value {
        self.status.status()
    }

    async fn stop(mut self) -> Value {
        let report = self.supervisor.stop().await;
        assert!(report.is_clean(), "forwarder stopped cleanly: {report:?}");
        self.status.status()
    }
}

/// Polls until `condition` holds, failing the test after 10 s.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn count(status: &Value, pointer: &str) -> u64 {
    status.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

fn header<'a>(request: &'a Received, name: &str) -> Option<&'a str> {
    request
        .headers
        .get(name)
        .map(|value| value.to_str().expect("ascii header"))
}

fn queue_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test]
async fn headers_and_body_arrive_intact() {
    let intake = Intake::start(&[]).await;
    let running = Running::start(config(&intake.url())).await;
    running.handle.submit(vec![
        transaction(Endpoint::Series, b"\x28\xb5\x2f\xfdseries"),
        transaction(Endpoint::CheckRun, b"check runs"),
        transaction(Endpoint::Events, b"{\"events\":{}}"),
    ]);
    eventually("three requests", || intake.posts().len() == 3).await;

    let posts = intake.posts();
    let by_path = |path: &str| {
        posts
            .iter()
            .find(|request| request.path == path)
            .unwrap_or_else(|| panic!("a request to {path}"))
    };
    let series = by_path("/api/v2/series");
    assert_eq!(&series.body[..], b"\x28\xb5\x2f\xfdseries");
    assert_eq!(header(series, "dd-api-key"), Some(API_KEY));
    assert_eq!(header(series, "content-type"), Some(CONTENT_TYPE_PROTOBUF));
    assert_eq!(header(series, "content-encoding"), Some("zstd"));
    assert_eq!(header(series, "dd-agent-version"), Some(VERSION));
    assert_eq!(header(series, "user-agent"), Some("datadog-agent/7.62.1"));
    assert_eq!(
        header(series, "dd-agent-payload"),
        Some(AGENT_PAYLOAD_VERSION)
    );

    let checks = by_path("/api/v1/check_run");
    assert_eq!(&checks.body[..], b"check runs");
    assert_eq!(header(checks, "content-type"), Some(CONTENT_TYPE_JSON));
    assert_eq!(header(checks, "content-encoding"), Some("deflate"));
    assert_eq!(
        header(checks, "dd-agent-payload"),
        None,
        "JSON payloads carry no DD-Agent-Payload"
    );

    let events = by_path("/intake/");
    assert_eq!(header(events, "content-encoding"), None);
    assert_eq!(header(events, "dd-api-key"), Some(API_KEY));

    let status = running.stop().await;
    assert_eq!(count(&status, "/transactions/sent"), 3);
    assert_eq!(count(&status, "/transactions/dropped"), 0);
}

#[tokio::test]
async fn a_500_is_retried_with_backoff_until_the_intake_accepts_it() {
    let intake = Intake::start(&[500, 500]).await;
    let running = Running::start(config(&intake.url())).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::Series, b"retry me")]);
    eventually("a success", || {
        count(&running.status(), "/transactions/sent") == 1
    })
    .await;

    let posts = intake.posts();
    assert_eq!(posts.len(), 3, "two failures then a success");
    assert!(posts.iter().all(|request| &request.body[..] == b"retry me"));
    // Backoff after n errors is random in [base·2ⁿ/2, base·2ⁿ]: at least 50 ms, then 100 ms.
    let first_wait = posts[1].at - posts[0].at;
    let second_wait = posts[2].at - posts[1].at;
    assert!(first_wait >= Duration::from_millis(50), "{first_wait:?}");
    assert!(second_wait >= Duration::from_millis(100), "{second_wait:?}");

    let status = running.stop().await;
    assert_eq!(count(&status, "/transactions/retried"), 2);
    assert_eq!(count(&status, "/transactions/requeued"), 2);
    assert_eq!(count(&status, "/transactions/http_errors/500"), 2);
    assert_eq!(count(&status, "/transactions/dropped"), 0);
    assert!(
        status["last_error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("500")),
        "{status}"
    );
}

#[tokio::test]
async fn a_403_is_dropped_and_not_retried() {
    let intake = Intake::start(&[403]).await;
    let running = Running::start(config(&intake.url())).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::Series, b"bad key")]);
    eventually("the drop", || {
        count(
            &running.status(),
            "/transactions/dropped_by_reason/invalid_api_key",
        ) == 1
    })
    .await;
    // Several backoff periods: a retry would have happened by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(intake.posts().len(), 1);
    let status = running.stop().await;
    assert_eq!(count(&status, "/transactions/http_errors/403"), 1);
    assert_eq!(count(&status, "/transactions/sent"), 0);
}

#[tokio::test]
async fn a_400_and_a_413_are_dropped_and_not_retried() {
    let intake = Intake::start(&[400, 413]).await;
    let running = Running::start(config(&intake.url())).await;
    running.handle.submit(vec![
        transaction(Endpoint::Series, b"malformed"),
        transaction(Endpoint::Sketches, b"too big"),
    ]);
    eventually("both drops", || {
        count(&running.status(), "/transactions/dropped") == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(intake.posts().len(), 2);
    let status = running.stop().await;
    assert_eq!(
        count(&status, "/transactions/dropped_by_reason/http_400"),
        1
    );
    assert_eq!(
        count(&status, "/transactions/dropped_by_reason/http_413"),
        1
    );
}

#[tokio::test]
async fn a_429_and_a_503_are_retried() {
    let intake = Intake::start(&[429, 503]).await;
    let running = Running::start(config(&intake.url())).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::CheckRun, b"[]")]);
    eventually("a success", || {
        count(&running.status(), "/transactions/sent") == 1
    })
    .await;
    assert_eq!(intake.posts().len(), 3);
    let status = running.stop().await;
    assert_eq!(count(&status, "/transactions/http_errors/429"), 1);
    assert_eq!(count(&status, "/transactions/http_errors/503"), 1);
    assert_eq!(count(&status, "/transactions/dropped"), 0);
}

#[tokio::test]
async fn a_408_is_retried_but_a_404_is_dropped_and_counted() {
    let intake = Intake::start(&[408, 404]).await;
    let running = Running::start(config(&intake.url())).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::Events, b"{}")]);
    eventually("the drop", || {
        count(&running.status(), "/transactions/dropped") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(intake.posts().len(), 2, "408 retried once, 404 final");
    let status = running.stop().await;
    assert_eq!(
        count(&status, "/transactions/dropped_by_reason/http_4xx"),
        1
    );
    assert_eq!(count(&status, "/transactions/sent"), 0);
}

#[tokio::test]
async fn a_refused_connection_is_retried_until_the_intake_comes_up() {
    let addr = free_port().await;
    let running = Running::start(config(&format!("http://{addr}"))).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::Series, b"patience")]);
    // Refused, queued again, and the endpoint blocked for a backoff.
    eventually("a connection failure and a blocked endpoint", || {
        let status = running.status();
        count(&status, "/transactions/errors/connection_failure") >= 1
            && count(&status, "/retry_queue/transactions") == 1
            && status["blocked_endpoints"]["series_v2"].is_object()
    })
    .await;

    let intake = Intake::start_on(addr).await;
    eventually("the delivery", || intake.posts().len() == 1).await;
    assert_eq!(&intake.posts()[0].body[..], b"patience");
    let status = running.stop().await;
    assert_eq!(count(&status, "/transactions/sent"), 1);
    assert_eq!(count(&status, "/retry_queue/transactions"), 0);
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_transactions() {
    let intake = Intake::start(&[]).await;
    let mut config = config(&intake.url());
    config.retry_queue_max_bytes = 250;
    // One request at a time: the order of arrival is the order of dispatch.
    config.max_concurrent_requests = 1;
    let forwarder = Forwarder::new(config, &Registry::new()).expect("forwarder");
    let handle = forwarder.handle();
    let status = forwarder.status();
    // Not started yet: everything waits in the queue.
    let base = SystemTime::now();
    for (age, body) in [(3, [b'a'; 100]), (2, [b'b'; 100]), (1, [b'c'; 100])] {
        let mut tx = transaction(Endpoint::Series, &body);
        tx.created_at = base - Duration::from_secs(age);
        handle.submit(vec![tx]);
    }
    let before = status.status();
    assert_eq!(count(&before, "/retry_queue/transactions"), 2, "{before}");
    assert_eq!(count(&before, "/retry_queue/bytes"), 200);
    assert_eq!(
        count(&before, "/transactions/dropped_by_reason/retry_queue_full"),
        1
    );

    let running = Running::start_built(forwarder).await;
    eventually("two deliveries", || intake.posts().len() == 2).await;
    let bodies: Vec<u8> = intake
        .posts()
        .iter()
        .map(|request| request.body[0])
        .collect();
    assert_eq!(
        bodies,
        [b'c', b'b'],
        "the oldest (a) was dropped, the rest sent newest first"
    );
    running.stop().await;
}

#[tokio::test]
async fn queued_transactions_are_sent_during_stop() {
    let intake = Intake::start(&[]).await;
    let running = Running::start(config(&intake.url())).await;
    running.handle.submit(vec![
        transaction(Endpoint::Series, b"last flush"),
        transaction(Endpoint::Sketches, b"last sketches"),
    ]);
    let status = running.stop().await;
    assert_eq!(intake.posts().len(), 2);
    assert_eq!(count(&status, "/transactions/sent"), 2);
}

#[tokio::test]
async fn without_a_disk_queue_what_cannot_be_sent_on_stop_is_dropped_and_counted() {
    let addr = free_port().await;
    let running = Running::start(config(&format!("http://{addr}"))).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::Series, b"lost")]);
    let status = running.stop().await;
    assert_eq!(
        count(&status, "/transactions/dropped_by_reason/shutdown"),
        1,
        "{status}"
    );
}

fn storage_config(base: &str, dir: &Path) -> ForwarderConfig {
    let mut config = config(base);
    config.storage = StorageConfig::new(dir, 1024 * 1024);
    config.drain_timeout = Duration::from_millis(300);
    config
}

/// Runs a forwarder against a dead intake, submits `bodies`, and stops it: they end up on disk.
async fn leave_on_disk(dir: &Path, bodies: &[&[u8]]) {
    let dead = free_port().await;
    let running = Running::start(storage_config(&format!("http://{dead}"), dir)).await;
    running.handle.submit(
        bodies
            .iter()
            .map(|body| transaction(Endpoint::Series, body))
            .collect(),
    );
    let status = running.stop().await;
    assert_eq!(count(&status, "/disk_queue/files"), 1, "{status}");
    assert_eq!(count(&status, "/transactions/dropped"), 0, "{status}");
}

#[tokio::test]
async fn transactions_unsent_at_stop_go_to_disk_and_the_next_run_sends_them() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("transactions_to_retry");
    leave_on_disk(&dir, &[b"first", b"second"]).await;

    let files = queue_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|ext| ext == "retry"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&files[0]), 0o600);
    }

    let intake = Intake::start(&[]).await;
    let mut config = storage_config(&intake.url(), &dir);
    // One request at a time: the order of arrival is the order of dispatch.
    config.max_concurrent_requests = 1;
    let running = Running::start(config).await;
    eventually("both deliveries", || intake.posts().len() == 2).await;
    let bodies: Vec<Bytes> = intake
        .posts()
        .into_iter()
        .map(|request| request.body)
        .collect();
    // Newest first, as the agent retries.
    assert_eq!(bodies, [&b"second"[..], &b"first"[..]]);
    let status = running.stop().await;
    assert_eq!(count(&status, "/transactions/sent"), 2);
    assert_eq!(count(&status, "/disk_queue/files"), 0);
    assert!(queue_files(&dir).is_empty(), "{:?}", queue_files(&dir));
}

#[tokio::test]
async fn a_corrupt_queue_file_is_set_aside_and_the_others_still_load() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("transactions_to_retry");
    leave_on_disk(&dir, &[b"survivor"]).await;
    // Sorts before the real file, so it is read first.
    let corrupt = dir.join("0000000000000000-000001.retry");
    std::fs::write(
        &corrupt,
        b"DOGDFWQ\n\x01\x00garbage that is not a queue file",
    )
    .expect("write corrupt file");

    let intake = Intake::start(&[]).await;
    let running = Running::start(storage_config(&intake.url(), &dir)).await;
    eventually("the survivor", || intake.posts().len() == 1).await;
    assert_eq!(&intake.posts()[0].body[..], b"survivor");
    let status = running.stop().await;
    assert_eq!(count(&status, "/disk_queue/corrupt_files_set_aside"), 1);
    assert!(!corrupt.exists());
    let aside = dir.join("0000000000000000-000001.retry.corrupt");
    assert!(aside.exists(), "{:?}", queue_files(&dir));
}

async fn validation_status(script: &[u16]) -> (Value, Vec<Received>) {
    let intake = Intake::start(script).await;
    let mut config = config(&intake.url());
    config.validate_api_key = true;
    let running = Running::start(config).await;
    eventually("the validation", || {
        running.status()["api_key"]["validation"]["status"] != "not checked"
    })
    .await;
    let status = running.stop().await;
    (status, intake.received())
}

#[tokio::test]
async fn a_key_the_intake_accepts_is_reported_valid() {
    let (status, received) = validation_status(&[200]).await;
    assert_eq!(
        status["api_key"]["validation"]["status"], "valid",
        "{status}"
    );
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, Method::GET);
    assert_eq!(received[0].path, "/api/v1/validate");
    assert_eq!(header(&received[0], "dd-api-key"), Some(API_KEY));
    // The key is shown redacted.
    assert_eq!(status["api_key"]["key"], format!("{}bcdef", "*".repeat(27)));
}

#[tokio::test]
async fn a_key_the_intake_rejects_is_reported_invalid_without_stopping_the_forwarder() {
    let (status, _) = validation_status(&[403]).await;
    assert_eq!(
        status["api_key"]["validation"]["status"], "invalid",
        "{status}"
    );
}

#[tokio::test]
async fn the_key_is_checked_again_every_interval_and_a_revoked_key_turns_invalid() {
    // Valid at start, revoked afterwards (the scripted intake answers 200 once the script ends,
    // so the script holds enough 403s for the rest of the test).
    let mut script = vec![200];
    script.extend([403; 50]);
    let intake = Intake::start(&script).await;
    let mut config = config(&intake.url());
    config.validate_api_key = true;
    config.api_key_validation_interval = Duration::from_millis(200);
    let running = Running::start(config).await;
    eventually("the first validation", || {
        running.status()["api_key"]["validation"]["status"] == "valid"
    })
    .await;
    eventually("the revocation to be noticed", || {
        running.status()["api_key"]["validation"]["status"] == "invalid"
    })
    .await;
    let status = running.stop().await;
    let checks = intake
        .received()
        .iter()
        .filter(|request| request.path == "/api/v1/validate")
        .count();
    assert!(checks >= 2, "{checks} validation requests; {status}");
}

#[tokio::test]
async fn an_unreachable_validation_endpoint_is_not_fatal() {
    let addr = free_port().await;
    let mut config = config(&format!("http://{addr}"));
    config.validate_api_key = true;
    let running = Running::start(config).await;
    eventually("the validation attempt", || {
        running.status()["api_key"]["validation"]["status"] == "unknown"
    })
    .await;
    let status = running.stop().await;
    assert!(
        status["api_key"]["validation"]["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("unreachable")),
        "{status}"
    );
}

#[tokio::test]
async fn submissions_after_stop_are_dropped_and_counted() {
    let intake = Intake::start(&[]).await;
    let running = Running::start(config(&intake.url())).await;
    let handle = running.handle.clone();
    let status = running.status.clone();
    running.stop().await;
    handle.submit(vec![transaction(Endpoint::Events, b"late")]);
    assert_eq!(
        count(
            &status.status(),
            "/transactions/dropped_by_reason/forwarder_stopped"
        ),
        1
    );
    assert!(intake.posts().is_empty());
}

#[tokio::test]
async fn with_a_disk_queue_a_full_queue_spills_its_oldest_to_disk_instead_of_dropping() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("transactions_to_retry");
    let dead = free_port().await;
    let mut config = storage_config(&format!("http://{dead}"), &dir);
    config.retry_queue_max_bytes = 300;
    let running = Running::start(config).await;
    for body in [b'a', b'b', b'c', b'd', b'e'] {
        running
            .handle
            .submit(vec![transaction(Endpoint::Series, &[body; 100])]);
    }
    eventually("a spill to disk", || {
        count(&running.status(), "/disk_queue/files") >= 1
    })
    .await;
    let status = running.stop().await;
    assert_eq!(count(&status, "/transactions/dropped"), 0, "{status}");

    let intake = Intake::start(&[]).await;
    let mut config = storage_config(&intake.url(), &dir);
    config.retry_queue_max_bytes = 300;
    let running = Running::start(config).await;
    eventually("all five deliveries", || intake.posts().len() == 5).await;
    let mut bodies: Vec<u8> = intake
        .posts()
        .iter()
        .map(|request| request.body[0])
        .collect();
    bodies.sort_unstable();
    assert_eq!(bodies, b"abcde");
    let status = running.stop().await;
    assert_eq!(count(&status, "/disk_queue/files"), 0, "{status}");
}

/// The intake's name as seen through the proxy: only the proxy resolves it (to 127.0.0.1), as a
/// real proxy resolves names the client cannot. Loopback addresses are never proxied.
const PROXIED_INTAKE_HOST: &str = "intake.dogd.test";

/// The fake intake's URL by the name only the proxy knows.
fn proxied_url(intake: &Intake) -> String {
    format!("http://{PROXIED_INTAKE_HOST}:{}", intake.addr.port())
}

/// A CONNECT-only HTTP proxy: records the head of each CONNECT, answers 407 when it wants
/// credentials it did not get, and otherwise relays bytes both ways to the asked-for address
/// (with [`PROXIED_INTAKE_HOST`] resolved to 127.0.0.1).
struct ConnectProxy {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl ConnectProxy {
    async fn start(required_authorization: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        let Ok(byte) = client.read_u8().await else {
                            return;
                        };
                        head.push(byte);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    seen.lock().expect("lock").push(head.clone());
                    if let Some(expected) = required_authorization {
                        let given = head.lines().any(|line| {
                            line.to_ascii_lowercase()
                                .strip_prefix("proxy-authorization: ")
                                .is_some_and(|value| value == expected.to_ascii_lowercase())
                        });
                        if !given {
                            let _ = client
                                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                    let target = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .replace(PROXIED_INTAKE_HOST, "127.0.0.1");
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Self { addr, heads, task }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn proxied(config: &mut ForwarderConfig, proxy: &str, no_proxy: &[&str]) {
    config.proxy = ProxyConfig {
        http: Some(Proxy::parse(proxy).expect("proxy URL")),
        https: None,
        no_proxy: no_proxy.iter().map(|host| (*host).to_owned()).collect(),
    };
}

#[tokio::test]
async fn payloads_go_through_the_proxy_tunnel_with_its_credentials() {
    // base64("dd:s3cret")
    let proxy = ConnectProxy::start(Some("Basic ZGQ6czNjcmV0")).await;
    let intake = Intake::start(&[]).await;
    let mut config = config(&proxied_url(&intake));
    proxied(
        &mut config,
        &format!("http://dd:s3cret@{}", proxy.addr),
        &[],
    );
    let running = Running::start(config).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::Series, b"tunnelled")]);
    eventually("the delivery", || intake.posts().len() == 1).await;
    assert_eq!(&intake.posts()[0].body[..], b"tunnelled");
    // The status names the proxy, never its credentials.
    let status = running.status();
    assert_eq!(
        status["proxy"],
        format!("http://{}", proxy.addr),
        "{status}"
    );
    assert!(!status.to_string().contains("s3cret"), "{status}");
    let intake_authority = proxied_url(&intake)
        .trim_start_matches("http://")
        .to_owned();
    let heads = proxy.heads();
    assert!(
        heads
            .iter()
            .any(|head| head.starts_with(&format!("CONNECT {intake_authority} HTTP/1.1\r\n"))),
        "{heads:?}"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_proxy_that_wants_credentials_is_reported_and_the_payload_kept_for_retry() {
    let proxy = ConnectProxy::start(Some("Basic ZGQ6czNjcmV0")).await;
    let intake = Intake::start(&[]).await;
    let mut config = config(&proxied_url(&intake));
    proxied(&mut config, &proxy.addr.to_string(), &[]);
    let running = Running::start(config).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::Series, b"blocked")]);
    eventually("the proxy's refusal in the status", || {
        running.status()["last_error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("wants credentials"))
    })
    .await;
    assert!(intake.posts().is_empty());
    let status = running.status();
    assert_eq!(count(&status, "/transactions/dropped"), 0, "{status}");
    running.stop().await;
}

#[tokio::test]
async fn hosts_in_no_proxy_are_reached_directly() {
    let proxy = ConnectProxy::start(None).await;
    let intake = Intake::start(&[]).await;
    let mut config = config(&proxied_url(&intake));
    // The name is only resolvable by the proxy: reached directly, the send fails on DNS.
    proxied(&mut config, &proxy.addr.to_string(), &[".dogd.test"]);
    let running = Running::start(config).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::Series, b"direct")]);
    eventually("the direct attempt to fail", || {
        running.status()["last_error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains(PROXIED_INTAKE_HOST))
    })
    .await;
    assert!(proxy.heads().is_empty(), "{:?}", proxy.heads());
    assert!(intake.posts().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn loopback_intakes_are_never_proxied() {
    let proxy = ConnectProxy::start(None).await;
    let intake = Intake::start(&[]).await;
    let mut config = config(&intake.url());
    proxied(&mut config, &proxy.addr.to_string(), &[]);
    let running = Running::start(config).await;
    running
        .handle
        .submit(vec![transaction(Endpoint::Series, b"local")]);
    eventually("the delivery", || intake.posts().len() == 1).await;
    assert!(proxy.heads().is_empty(), "{:?}", proxy.heads());
    running.stop().await;
}
