//! The forwarder component: the shared queue, the producers' handle, and the dispatcher task that
//! sends, classifies answers, backs off, spills to disk and drains on stop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dogd_core::{BoxError, Component, HealthHandle, StartContext};
use dogd_telemetry::Registry;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::Full;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::breaker::{BackoffPolicy, Breaker, Rng};
use super::client::{Answer, IntakeClient, SendFailure, tls_config};
use super::config::{ForwarderConfig, validation_base};
use super::disk::DiskStore;
use super::error::ForwarderError;
use super::queue::{Queue, Queued};
use super::status::{ApiKeyState, Blocked, ForwarderStatus, Stats, lock};
use super::telemetry::Metrics;
use super::{AGENT_PAYLOAD_VERSION, Endpoint, FAKE_API_KEY, Transaction};

const DD_API_KEY: HeaderName = HeaderName::from_static("dd-api-key");
const DD_AGENT_VERSION: HeaderName = HeaderName::from_static("dd-agent-version");
const DD_AGENT_PAYLOAD: HeaderName = HeaderName::from_static("dd-agent-payload");

/// The agent's `validateAPIKeyTimeout`.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Drop reasons (the `reason` label of `transactions__dropped` and the status).
mod reason {
    pub(super) const HTTP_400: &str = "http_400";
    pub(super) const HTTP_413: &str = "http_413";
    pub(super) const HTTP_4XX: &str = "http_4xx";
    pub(super) const INVALID_API_KEY: &str = "invalid_api_key";
    pub(super) const RETRY_QUEUE_FULL: &str = "retry_queue_full";
    pub(super) const TOO_LARGE: &str = "too_large";
    pub(super) const DISK_FULL: &str = "disk_full";
    pub(super) const DISK_ERROR: &str = "disk_error";
    pub(super) const DISK_UNREADABLE: &str = "disk_unreadable_record";
    pub(super) const SHUTDOWN: &str = "shutdown";
    pub(super) const STOPPED: &str = "forwarder_stopped";
    pub(super) const INVALID_REQUEST: &str = "invalid_request";
}

/// The queue and what goes with it, shared by the handle and the dispatcher.
#[derive(Debug)]
pub(crate) struct State {
    queue: Queue,
    /// Transactions evicted from the full queue, waiting for the dispatcher to write them to disk.
    spill: VecDeque<Transaction>,
    spill_bytes: usize,
    /// False once the forwarder has stopped: later submissions are dropped.
    accepting: bool,
}

/// Everything the handle, the status and the dispatcher share.
pub(crate) struct Shared {
    /// The base URL without trailing slash (the `domain` label, as the agent's).
    pub(crate) domain: String,
    /// The proxy the intake is reached through (credentials left out), for the status.
    pub(crate) proxy: Option<String>,
    pub(crate) api_key_redacted: String,
    pub(crate) max_bytes: usize,
    /// Set once the disk queue is open: a full queue then spills instead of dropping.
    spill_to_disk: AtomicBool,
    state: Mutex<State>,
    wake: Notify,
    pub(crate) metrics: Metrics,
    pub(crate) stats: Stats,
}

impl Shared {
    pub(crate) fn queue_figures(&self) -> (usize, usize) {
        let state = lock(&self.state);
        (state.queue.len(), state.queue.bytes())
    }

    fn drop_counted(&self, endpoint: Endpoint, reason: &'static str, count: u64) {
        self.drop_counted_named(endpoint.name(), reason, count);
    }

    fn drop_counted_named(&self, endpoint: &str, reason: &'static str, count: u64) {
        if count == 0 {
            return;
        }
        self.metrics.dropped(endpoint, reason, count);
        self.stats.add_dropped(reason, count);
    }

    /// Queues a transaction within the byte budget: the oldest transactions make room, spilling
    /// to disk when the disk queue is on (down to half the budget, as the agent's
    /// `forwarder_flush_to_disk_mem_ratio` of 0.5, so that one file takes many of them), dropped
    /// otherwise. Returns how many were dropped for room (for [`Shared::log_evictions`]).
    fn admit(&self, state: &mut State, item: Queued) -> usize {
        let size = item.tx.size();
        if size > self.max_bytes {
            self.drop_counted(item.tx.endpoint, reason::TOO_LARGE, 1);
            tracing::error!(
                "forwarder: dropping a {} transaction of {size} bytes: it is larger than the whole retry queue (forwarder_retry_queue_payloads_max_size = {} bytes)",
                item.tx.endpoint.name(),
                self.max_bytes
            );
            return 0;
        }
        state.queue.push(item);
        if state.queue.bytes() <= self.max_bytes {
            return 0;
        }
        let spill = self.spill_to_disk.load(Ordering::Relaxed);
        let limit = if spill {
            self.max_bytes / 2
        } else {
            self.max_bytes
        };
        let evicted = state.queue.evict_down_to(limit);
        self.metrics.retry_queue_evicted.add(evicted.len() as u64);
        let mut dropped = 0;
        if spill {
            for item in evicted {
                state.spill_bytes += item.tx.size();
                state.spill.push_back(item.tx);
            }
            // The disk writer is behind: keep its backlog within one budget too.
            while state.spill_bytes > self.max_bytes {
                let Some(tx) = state.spill.pop_front() else {
                    break;
                };
                state.spill_bytes -= tx.size();
                self.drop_counted(tx.endpoint, reason::RETRY_QUEUE_FULL, 1);
                dropped += 1;
            }
        } else {
            for item in &evicted {
                self.drop_counted(item.tx.endpoint, reason::RETRY_QUEUE_FULL, 1);
            }
            dropped = evicted.len();
        }
        dropped
    }

    /// One log line for the transactions a batch of `admit`s dropped for room.
    fn log_evictions(&self, dropped: usize) {
        if dropped == 0 {
            return;
        }
        let last_error = lock(&self.stats.last_error)
            .as_ref()
            .map_or_else(|| "none".to_owned(), |(_, message)| message.clone());
        tracing::error!(
            "forwarder: the retry queue is full (forwarder_retry_queue_payloads_max_size = {} bytes): dropped the {dropped} oldest transactions. The intake is unreachable or too slow (last error: {last_error})",
            self.max_bytes
        );
    }

    fn publish_queue(&self, state: &State) {
        self.metrics.retry_queue_size.set(state.queue.len() as f64);
        self.metrics
            .retry_queue_bytes
            .set(state.queue.bytes() as f64);
    }
}

/// What producers use to hand payloads to the forwarder. Cheap to clone.
#[derive(Clone)]
pub struct ForwarderHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ForwarderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwarderHandle")
            .field("endpoint", &self.shared.domain)
            .finish_non_exhaustive()
    }
}

impl ForwarderHandle {
    /// Queues transactions for sending. Never blocks (beyond a short lock): when the queue is over
    /// its byte budget the oldest transactions are dropped (or moved to disk) and counted. After
    /// the forwarder has stopped, transactions are dropped and counted.
    pub fn submit(&self, transactions: Vec<Transaction>) {
        if transactions.is_empty() {
            return;
        }
        let shared = &self.shared;
        {
            let mut state = lock(&shared.state);
            if !state.accepting {
                drop(state);
                for tx in &transactions {
                    shared.drop_counted(tx.endpoint, reason::STOPPED, 1);
                }
                tracing::warn!(
                    "forwarder: dropping {} transactions submitted after the forwarder stopped",
                    transactions.len()
                );
                return;
            }
            let mut dropped = 0;
            for tx in transactions {
                let metrics = shared.metrics.endpoint(tx.endpoint);
                metrics.input_count.inc();
                metrics.input_bytes.add(tx.size() as u64);
                dropped += shared.admit(&mut state, Queued::new(tx));
            }
            shared.publish_queue(&state);
            drop(state);
            shared.log_evictions(dropped);
        }
        shared.wake.notify_one();
    }
}

/// What `new` prepares and `start` consumes.
struct Prepared {
    config: ForwarderConfig,
    client: IntakeClient,
    validate_client: IntakeClient,
    targets: [Uri; 4],
    validate_url: Uri,
    headers: HeaderMap,
}

/// The forwarder: a `dogd_core::Component` named `forwarder`.
///
/// Take its [`ForwarderHandle`] and [`ForwarderStatus`] before registering it with the
/// supervisor. Register it before the components that submit to it, so that it stops after them
/// and their last payloads are still sent (or written to disk).
pub struct Forwarder {
    shared: Arc<Shared>,
    prepared: Option<Prepared>,
    finished: Option<oneshot::Receiver<Result<(), ForwarderError>>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("endpoint", &self.shared.domain)
            .field("started", &self.prepared.is_none())
            .finish_non_exhaustive()
    }
}

fn header_value(key: &'static str, value: &str) -> Result<HeaderValue, ForwarderError> {
    HeaderValue::from_str(value).map_err(|_| ForwarderError::InvalidSetting {
        key,
        reason: format!("{value:?} cannot be sent in an HTTP header"),
    })
}

impl Forwarder {
    /// Builds the forwarder: checks the settings, prepares the HTTP client (and the TLS
    /// configuration for an https intake) and registers the telemetry. Nothing is sent before
    /// `start`; transactions submitted earlier wait in the queue.
    ///
    /// # Errors
    ///
    /// Invalid settings, an API key or version that cannot be sent as a header, a TLS setup
    /// failure, or a telemetry name clash.
    pub fn new(config: ForwarderConfig, registry: &Registry) -> Result<Self, ForwarderError> {
        config.validate()?;
        let base = config.base_url.to_string();
        let domain = base.trim_end_matches('/').to_owned();
        let target = |path: &str| -> Result<Uri, ForwarderError> {
            format!("{domain}{path}")
                .parse()
                .map_err(|error: http::uri::InvalidUri| ForwarderError::InvalidUrl {
                    key: "dd_url",
                    value: domain.clone(),
                    reason: error.to_string(),
                })
        };
        let targets = [
            target(Endpoint::Series.path())?,
            target(Endpoint::Sketches.path())?,
            target(Endpoint::CheckRun.path())?,
            target(Endpoint::Events.path())?,
        ];
        let validate_url = format!("{}/api/v1/validate", validation_base(&config.base_url))
            .parse()
            .map_err(|error: http::uri::InvalidUri| ForwarderError::InvalidUrl {
                key: "dd_url",
                value: domain.clone(),
                reason: error.to_string(),
            })?;

        if config.api_key.trim().is_empty() {
            return Err(ForwarderError::InvalidSetting {
                key: "api_key",
                reason: "it is empty; set api_key (without one, flushes go to the local sink)"
                    .to_owned(),
            });
        }
        let mut api_key = HeaderValue::from_str(config.api_key.trim())
            .map_err(|_| ForwarderError::InvalidApiKey)?;
        api_key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(DD_API_KEY, api_key);
        headers.insert(
            DD_AGENT_VERSION,
            header_value("agent_version", &config.agent_version)?,
        );
        headers.insert(
            USER_AGENT,
            header_value(
                "agent_version",
                &format!("datadog-agent/{}", config.agent_version),
            )?,
        );

        let tls = if config.base_url.scheme_str() == Some("https") {
            Some(tls_config()?)
        } else {
            None
        };
        let proxy = Arc::new(config.proxy.clone());
        let client = IntakeClient::new(tls.clone(), config.timeout, proxy.clone());
        let validate_client = IntakeClient::new(tls, config.timeout.min(VALIDATE_TIMEOUT), proxy);

        let metrics = Metrics::register(registry, &domain)?;
        let stats = Stats::default();
        if let Some(storage) = &config.storage {
            let mut disk = lock(&stats.disk);
            disk.path = Some(storage.path.clone());
            disk.max_bytes = storage.max_bytes;
        }
        let shared = Arc::new(Shared {
            proxy: config
                .proxy
                .for_target(&config.base_url)
                .map(ToString::to_string),
            domain,
            api_key_redacted: dogd_config::redact(config.api_key.trim()),
            max_bytes: config.retry_queue_max_bytes,
            spill_to_disk: AtomicBool::new(false),
            state: Mutex::new(State {
                queue: Queue::default(),
                spill: VecDeque::new(),
                spill_bytes: 0,
                accepting: true,
            }),
            wake: Notify::new(),
            metrics,
            stats,
        });
        Ok(Self {
            shared,
            prepared: Some(Prepared {
                config,
                client,
                validate_client,
                targets,
                validate_url,
                headers,
            }),
            finished: None,
        })
    }

    /// The handle producers submit transactions through.
    pub fn handle(&self) -> ForwarderHandle {
        ForwarderHandle {
            shared: self.shared.clone(),
        }
    }

    /// The `forwarder` status section.
    pub fn status(&self) -> ForwarderStatus {
        ForwarderStatus {
            shared: self.shared.clone(),
        }
    }
}

#[async_trait]
impl Component for Forwarder {
    fn name(&self) -> &str {
        "forwarder"
    }

    fn health_interval(&self) -> Option<Duration> {
        Some(HEALTH_CHECK_IN * 3)
    }

    async fn start(&mut self, ctx: StartContext) -> Result<(), BoxError> {
        let prepared = self.prepared.take().ok_or(ForwarderError::AlreadyStarted)?;
        let config = prepared.config;
        let shared = self.shared.clone();

        let disk = match config.storage.clone() {
            Some(storage) => {
                // Reading back a file must never overflow the queue: half of it per file.
                let chunk = (config.retry_queue_max_bytes / 2).max(1);
                let opened = tokio::task::spawn_blocking(move || DiskStore::open(&storage, chunk))
                    .await
                    .map_err(|join| join.to_string());
                match opened {
                    Ok(Ok((store, opened))) => {
                        if opened.files > 0 {
                            tracing::info!(
                                "forwarder: found {} queue files ({} bytes) from an earlier run in {}; sending them first",
                                opened.files,
                                opened.bytes,
                                store.dir().display()
                            );
                        }
                        shared.metrics.disk_reloaded_files.set(opened.files as f64);
                        shared.spill_to_disk.store(true, Ordering::Relaxed);
                        let disk = Arc::new(Mutex::new(store));
                        publish_disk(&shared, &disk);
                        Some(disk)
                    }
                    Ok(Err(error)) => {
                        // The agent goes on without its disk queue too: sending matters more.
                        tracing::error!("{error}; continuing without the disk queue");
                        lock(&shared.stats.disk).error = Some(error.to_string());
                        None
                    }
                    Err(panic) => {
                        tracing::error!(
                            "forwarder: opening the disk queue failed ({panic}); continuing without it"
                        );
                        lock(&shared.stats.disk).error = Some(panic);
                        None
                    }
                }
            }
            None => None,
        };

        if config.validate_api_key {
            if config.api_key.trim() == FAKE_API_KEY {
                *lock(&shared.stats.api_key) = ApiKeyState::Skipped("fake API key");
            } else {
                ctx.spawn(validate_api_key(
                    prepared.validate_client,
                    prepared.validate_url,
                    prepared.headers.clone(),
                    shared.clone(),
                    ctx.shutdown().clone(),
                    config.api_key_validation_interval,
                ));
            }
        } else {
            *lock(&shared.stats.api_key) = ApiKeyState::Skipped("validation disabled");
        }

        let policy = BackoffPolicy::new(
            config.backoff_base,
            config.backoff_factor,
            config.backoff_max,
            config.recovery_interval,
            config.recovery_reset,
        );
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher {
            shared,
            client: prepared.client,
            targets: prepared.targets,
            headers: prepared.headers,
            breakers: Default::default(),
            policy,
            rng: Rng::new(),
            disk,
            tasks: ctx.tasks().clone(),
            abort_requests: CancellationToken::new(),
            results_tx,
            results_rx,
            in_flight: 0,
            max_in_flight: config.max_concurrent_requests,
            drain_timeout: config.drain_timeout,
            refill_limit: (config.retry_queue_max_bytes / 2).max(1),
            invalid_key_logged: false,
            key_rejected: false,
            delivered: false,
            health: ctx.health().clone(),
        };
        let (done_tx, done_rx) = oneshot::channel();
        self.finished = Some(done_rx);
        let shutdown = ctx.shutdown().clone();
        ctx.spawn(async move {
            let _ = done_tx.send(dispatcher.run(shutdown).await);
        });
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), BoxError> {
        // The supervisor cancelled our token: the dispatcher drains, persists, and reports here.
        match self.finished.take() {
            Some(finished) => match finished.await {
                Ok(result) => result.map_err(Into::into),
                // The dispatcher task is gone without a word: nothing left to wait for.
                Err(_) => Ok(()),
            },
            None => Ok(()),
        }
    }
}

fn publish_disk(shared: &Shared, disk: &Mutex<DiskStore>) {
    let (files, bytes) = {
        let store = lock(disk);
        (store.files(), store.bytes())
    };
    shared.metrics.disk_files.set(files as f64);
    shared.metrics.disk_bytes.set(bytes as f64);
    let mut stats = lock(&shared.stats.disk);
    stats.files = files;
    stats.bytes = bytes;
}

/// Runs a disk operation on the blocking pool (the files can be megabytes).
async fn with_disk<R: Send + 'static>(
    disk: &Arc<Mutex<DiskStore>>,
    operation: impl FnOnce(&mut DiskStore) -> R + Send + 'static,
) -> Option<R> {
    let disk = disk.clone();
    tokio::task::spawn_blocking(move || operation(&mut lock(&disk)))
        .await
        .ok()
}

/// Checks the API key at start and then every `interval` until shutdown, publishing each verdict
/// in the status (and the health check). A verdict is logged when it differs from the previous
/// one, so an hourly check does not repeat the same line.
async fn validate_api_key(
    client: IntakeClient,
    url: Uri,
    headers: HeaderMap,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    interval: Duration,
) {
    let mut previous: Option<ApiKeyState> = None;
    loop {
        let Some(state) = validate_once(&client, &url, &headers, &shutdown).await else {
            return;
        };
        if previous.as_ref() != Some(&state) {
            log_api_key_state(&state, &shared.api_key_redacted, &url);
        }
        *lock(&shared.stats.api_key) = state.clone();
        previous = Some(state);
        // The dispatcher re-checks its health with the verdict.
        shared.wake.notify_one();
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One `GET /api/v1/validate`; `None` when cut short by shutdown or impossible to build.
async fn validate_once(
    client: &IntakeClient,
    url: &Uri,
    headers: &HeaderMap,
    shutdown: &CancellationToken,
) -> Option<ApiKeyState> {
    let mut request = Request::get(url.clone());
    if let Some(request_headers) = request.headers_mut() {
        // The key travels in the header, not in the `api_key` query parameter the agent uses, so
        // that it never appears in a URL (proxy logs, our own error messages).
        request_headers.extend(headers.clone());
    }
    let request = match request.body(Full::new(Bytes::new())) {
        Ok(request) => request,
        Err(error) => {
            tracing::info!("forwarder: cannot build the API key validation request: {error}");
            return None;
        }
    };
    let result = tokio::select! {
        () = shutdown.cancelled() => return None,
        result = client.send(request) => result,
    };
    Some(match result {
        Ok(Answer { status, .. }) if status == StatusCode::OK => ApiKeyState::Valid,
        Ok(Answer { status, .. }) if status == StatusCode::FORBIDDEN => ApiKeyState::Invalid,
        Ok(Answer { status, .. }) => ApiKeyState::UnexpectedStatus(status.as_u16()),
        Err(SendFailure { message, .. }) => ApiKeyState::Unreachable(message),
    })
}

fn log_api_key_state(state: &ApiKeyState, key: &str, url: &Uri) {
    match state {
        ApiKeyState::Valid => {
            tracing::info!("forwarder: API key {key} is valid ({url} answered 200)");
        }
        ApiKeyState::Invalid => tracing::warn!(
            "forwarder: API key {key} is INVALID: {url} answered 403. The intake will reject every payload sent with it; check api_key, and that site is the Datadog site the key belongs to"
        ),
        ApiKeyState::UnexpectedStatus(status) => tracing::info!(
            "forwarder: could not validate API key {key}: {url} answered {status}; continuing"
        ),
        ApiKeyState::Unreachable(message) => tracing::info!(
            "forwarder: could not validate API key {key}: {url} is unreachable ({message}); continuing"
        ),
        ApiKeyState::NotChecked | ApiKeyState::Skipped(_) => {}
    }
}

/// A request's end, reported to the dispatcher.
struct Finished {
    item: Queued,
    result: Attempt,
}

enum Attempt {
    Sent(Result<Answer, SendFailure>),
    /// Cut short by the end of the drain.
    Aborted,
}

/// How one answer is handled.
enum Verdict {
    Success,
    Drop(&'static str),
    Retry(String),
}

struct Dispatcher {
    shared: Arc<Shared>,
    client: IntakeClient,
    targets: [Uri; 4],
    headers: HeaderMap,
    breakers: [Breaker; 4],
    policy: BackoffPolicy,
    rng: Rng,
    disk: Option<Arc<Mutex<DiskStore>>>,
    tasks: TaskTracker,
    /// Cancelled when the drain time is over, to cut requests still in flight.
    abort_requests: CancellationToken,
    results_tx: mpsc::UnboundedSender<Finished>,
    results_rx: mpsc::UnboundedReceiver<Finished>,
    in_flight: usize,
    max_in_flight: usize,
    drain_timeout: Duration,
    /// Files are read back from disk while the queue holds less than this.
    refill_limit: usize,
    invalid_key_logged: bool,
    /// The intake's latest word on the API key was a 403 (cleared by the next accepted payload).
    key_rejected: bool,
    /// Whether any payload was accepted since the start.
    delivered: bool,
    health: HealthHandle,
}

/// How often the dispatcher checks in on its health handle; it is reported stale after three
/// missed check-ins.
const HEALTH_CHECK_IN: Duration = Duration::from_secs(10);

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Dispatcher {
    async fn run(mut self, shutdown: CancellationToken) -> Result<(), ForwarderError> {
        let mut drain_until: Option<Instant> = None;
        let mut health_ticker = tokio::time::interval(HEALTH_CHECK_IN);
        loop {
            while let Ok(finished) = self.results_rx.try_recv() {
                self.on_finished(finished);
            }
            self.flush_spill().await;
            if drain_until.is_none() {
                self.refill().await;
            }
            self.dispatch();
            self.publish_breakers();
            self.check_in();
            if let Some(deadline) = drain_until
                && (Instant::now() >= deadline || self.drained_or_stuck(deadline))
            {
                break;
            }
            let next_unblock = self.next_unblock();
            tokio::select! {
                Some(finished) = self.results_rx.recv() => self.on_finished(finished),
                () = self.shared.wake.notified() => {}
                () = sleep_until(next_unblock) => {}
                () = shutdown.cancelled(), if drain_until.is_none() => {
                    let (queued, bytes) = self.shared.queue_figures();
                    tracing::info!(
                        "forwarder: stopping; sending the {} queued transactions ({bytes} bytes) for up to {:?}",
                        queued + self.in_flight,
                        self.drain_timeout
                    );
                    drain_until = Some(Instant::now() + self.drain_timeout);
                }
                () = sleep_until(drain_until) => {}
                // Checks in (at the top of the loop) even when there is nothing to send.
                _ = health_ticker.tick() => {}
            }
        }
        self.finish().await
    }

    /// Healthy while the loop runs, unless the intake refuses the API key (the agent's forwarder
    /// health check fails on an invalid key too): every payload would be dropped.
    fn check_in(&self) {
        let validated_invalid = matches!(*lock(&self.shared.stats.api_key), ApiKeyState::Invalid);
        if self.key_rejected {
            self.health
                .report_unhealthy("the intake rejects the API key (403): payloads are dropped");
        } else if validated_invalid && !self.delivered {
            self.health
                .report_unhealthy("the API key failed validation (403 from /api/v1/validate)");
        } else {
            self.health.report_healthy();
        }
    }

    /// Sends the newest transaction of the endpoints the breaker lets through, up to the
    /// concurrency limit. Newest first, as the agent orders its retries: after an outage the
    /// current data reaches dashboards first and the backlog follows.
    fn dispatch(&mut self) {
        let now = Instant::now();
        while self.in_flight < self.max_in_flight {
            let next = {
                let mut state = lock(&self.shared.state);
                let pick = Endpoint::ALL
                    .into_iter()
                    .filter(|endpoint| self.breakers[endpoint.index()].can_send(now))
                    .filter_map(|endpoint| {
                        state
                            .queue
                            .back_created(endpoint)
                            .map(|created| (endpoint, created))
                    })
                    .max_by_key(|(_, created)| *created)
                    .map(|(endpoint, _)| endpoint);
                let item = pick.and_then(|endpoint| state.queue.pop_back(endpoint));
                if item.is_some() {
                    self.shared.publish_queue(&state);
                }
                item
            };
            let Some(item) = next else { break };
            let endpoint = item.tx.endpoint;
            self.breakers[endpoint.index()].on_send(now);
            if item.attempts > 0 {
                self.shared.metrics.endpoint(endpoint).retries.inc();
                self.shared.stats.retried.fetch_add(1, Ordering::Relaxed);
            }
            self.start_send(item);
        }
    }

    fn request(&self, tx: &Transaction) -> Result<Request<Full<Bytes>>, String> {
        let mut request = Request::post(self.targets[tx.endpoint.index()].clone());
        let headers = request
            .headers_mut()
            .ok_or_else(|| "invalid request".to_owned())?;
        headers.extend(self.headers.clone());
        let value = |name: &str, value: &str| {
            HeaderValue::from_str(value).map_err(|_| format!("invalid {name} {value:?}"))
        };
        headers.insert(CONTENT_TYPE, value("Content-Type", tx.content_type)?);
        if let Some(encoding) = tx.content_encoding {
            headers.insert(CONTENT_ENCODING, value("Content-Encoding", encoding)?);
        }
        if tx.is_protobuf() {
            headers.insert(
                DD_AGENT_PAYLOAD,
                HeaderValue::from_static(AGENT_PAYLOAD_VERSION),
            );
        }
        request
            .body(Full::new(tx.body.clone()))
            .map_err(|error| error.to_string())
    }

    fn start_send(&mut self, item: Queued) {
        let request = match self.request(&item.tx) {
            Ok(request) => request,
            Err(error) => {
                let endpoint = item.tx.endpoint;
                tracing::error!(
                    "forwarder: cannot build the request for a {} transaction ({error}); dropping it",
                    endpoint.name()
                );
                self.shared
                    .drop_counted(endpoint, reason::INVALID_REQUEST, 1);
                self.breakers[endpoint.index()].on_abandoned(Instant::now());
                return;
            }
        };
        let client = self.client.clone();
        let abort = self.abort_requests.clone();
        let results = self.results_tx.clone();
        self.in_flight += 1;
        self.shared.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        self.tasks.spawn(async move {
            let result = tokio::select! {
                biased;
                () = abort.cancelled() => Attempt::Aborted,
                sent = client.send(request) => Attempt::Sent(sent),
            };
            // The receiver lives as long as the dispatcher, which waits for every request.
            let _ = results.send(Finished { item, result });
        });
    }

    fn on_finished(&mut self, finished: Finished) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.shared.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        let Finished { item, result } = finished;
        let endpoint = item.tx.endpoint;
        let url = &self.targets[endpoint.index()].clone();
        let now = Instant::now();
        let verdict = match result {
            Attempt::Aborted => {
                self.breakers[endpoint.index()].on_abandoned(now);
                self.requeue(item, false);
                return;
            }
            Attempt::Sent(Err(failure)) => {
                self.shared.metrics.error(endpoint, failure.kind);
                self.shared.stats.add_error(failure.kind);
                Verdict::Retry(format!("{url}: {}", failure.message))
            }
            Attempt::Sent(Ok(answer)) => self.classify(endpoint, url, &answer),
        };
        let stats = &self.shared.stats;
        let breaker = &mut self.breakers[endpoint.index()];
        match verdict {
            Verdict::Success => {
                self.key_rejected = false;
                self.delivered = true;
                let size = item.tx.size() as u64;
                let metrics = self.shared.metrics.endpoint(endpoint);
                metrics.success.inc();
                metrics.success_bytes.add(size);
                stats.sent.fetch_add(1, Ordering::Relaxed);
                stats.sent_bytes.fetch_add(size, Ordering::Relaxed);
                breaker.on_success(now, &self.policy, &mut self.rng);
            }
            Verdict::Drop(reason) => {
                self.shared.drop_counted(endpoint, reason, 1);
                // A final answer means the endpoint works (the agent's `Process` returns nil).
                breaker.on_success(now, &self.policy, &mut self.rng);
            }
            Verdict::Retry(message) => {
                tracing::warn!(
                    "forwarder: sending a {} transaction failed, it will be retried: {message}",
                    endpoint.name()
                );
                stats.set_last_error(message);
                breaker.on_error(now, &self.policy, &mut self.rng);
                self.requeue(item, true);
            }
        }
        self.publish_breakers();
    }

    /// Which answers are final. Like the agent's `HTTPTransaction.internalProcess`, 400 and 413
    /// are dropped (the payload would never be accepted) and 403 is dropped (the key is invalid).
    /// Unlike the agent, which retries every other 4xx, only 408 and 429 are retried: any other
    /// client error (404 from a wrong `dd_url` path, 401, 422, ...) is dropped and counted, so a
    /// misconfigured intake cannot pin the retry queue; 5xx, 3xx and network errors are retried.
    fn classify(&mut self, endpoint: Endpoint, url: &Uri, answer: &Answer) -> Verdict {
        let status = answer.status;
        if status.is_success() {
            return Verdict::Success;
        }
        let code = status.as_u16();
        let body = truncated(&answer.body);
        if code >= 400 {
            self.shared.metrics.http_error(endpoint, code);
            self.shared.stats.add_http_error(code);
        }
        match code {
            400..=499 if !matches!(code, 403 | 408 | 429) => {
                tracing::error!(
                    "forwarder: the intake answered {status} to a {} transaction at {url}: {body:?}; dropping it (it would never be accepted)",
                    endpoint.name()
                );
                self.shared
                    .stats
                    .set_last_error(format!("{url}: {status}: {body}"));
                Verdict::Drop(match code {
                    400 => reason::HTTP_400,
                    413 => reason::HTTP_413,
                    _ => reason::HTTP_4XX,
                })
            }
            403 => {
                // Every payload fails the same way: say it once, loudly, then quietly count.
                if !self.invalid_key_logged {
                    self.invalid_key_logged = true;
                    tracing::error!(
                        "forwarder: the intake rejected API key {} (403 at {url}); dropping the transactions sent with it. Check api_key, and that site is the Datadog site the key belongs to",
                        self.shared.api_key_redacted
                    );
                } else {
                    tracing::debug!(
                        "forwarder: 403 for a {} transaction; dropped",
                        endpoint.name()
                    );
                }
                self.shared
                    .stats
                    .set_last_error(format!("{url}: {status} (invalid API key)"));
                self.key_rejected = true;
                Verdict::Drop(reason::INVALID_API_KEY)
            }
            _ => {
                let error_type = if code >= 400 {
                    "gt_400"
                } else {
                    "unexpected_status"
                };
                self.shared.metrics.error(endpoint, error_type);
                self.shared.stats.add_error(error_type);
                let hint = if status.is_redirection() {
                    " (a redirect: dd_url probably points at the wrong place)"
                } else {
                    ""
                };
                Verdict::Retry(format!("{url}: {status}{hint}: {body}"))
            }
        }
    }

    fn requeue(&mut self, mut item: Queued, failed: bool) {
        let endpoint = item.tx.endpoint;
        if failed {
            item.attempts = item.attempts.saturating_add(1);
            self.shared.metrics.endpoint(endpoint).requeued.inc();
            self.shared.stats.requeued.fetch_add(1, Ordering::Relaxed);
        }
        let mut state = lock(&self.shared.state);
        let dropped = self.shared.admit(&mut state, item);
        self.shared.publish_queue(&state);
        drop(state);
        self.shared.log_evictions(dropped);
    }

    /// Whether draining can end before its deadline: nothing is in flight, and nothing queued can
    /// be sent before the deadline (the queue is empty, or every endpoint with transactions is
    /// blocked beyond it, so waiting would only delay writing them to disk).
    fn drained_or_stuck(&self, deadline: Instant) -> bool {
        if self.in_flight > 0 {
            return false;
        }
        let state = lock(&self.shared.state);
        Endpoint::ALL
            .into_iter()
            .filter(|endpoint| state.queue.has(*endpoint))
            .all(|endpoint| {
                self.breakers[endpoint.index()]
                    .blocked_until()
                    .is_some_and(|until| until >= deadline)
            })
    }

    /// The earliest time a blocked endpoint with queued transactions may send again. `None` when
    /// the concurrency limit is reached: a finishing request wakes the loop then, and a deadline
    /// already past would only make it spin. (Below the limit, a past deadline means the
    /// endpoint unblocked since `dispatch` ran: waking at once sends its transaction.)
    fn next_unblock(&self) -> Option<Instant> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        let state = lock(&self.shared.state);
        Endpoint::ALL
            .into_iter()
            .filter(|endpoint| state.queue.has(*endpoint))
            .filter_map(|endpoint| self.breakers[endpoint.index()].blocked_until())
            .min()
    }

    fn publish_breakers(&self) {
        let mut blocked = lock(&self.shared.stats.blocked);
        for (slot, breaker) in blocked.iter_mut().zip(&self.breakers) {
            *slot = breaker.is_blocked().then(|| Blocked {
                errors: breaker.errors(),
                until: breaker.blocked_until(),
            });
        }
    }

    /// Writes transactions evicted from the full queue to disk.
    async fn flush_spill(&mut self) {
        let batch: Vec<Transaction> = {
            let mut state = lock(&self.shared.state);
            state.spill_bytes = 0;
            state.spill.drain(..).collect()
        };
        if batch.is_empty() {
            return;
        }
        let Some(disk) = &self.disk else {
            for tx in &batch {
                self.shared
                    .drop_counted(tx.endpoint, reason::RETRY_QUEUE_FULL, 1);
            }
            return;
        };
        let count = batch.len();
        let endpoints: Vec<Endpoint> = batch.iter().map(|tx| tx.endpoint).collect();
        match with_disk(disk, move |store| store.store(batch)).await {
            Some(Ok(stored)) => {
                tracing::info!(
                    "forwarder: the retry queue is full; moved its {} oldest transactions to disk",
                    stored.written
                );
                self.count_disk_drops(stored.dropped);
            }
            Some(Err(error)) => {
                tracing::error!("forwarder: dropping {count} transactions: {error}");
                for endpoint in endpoints {
                    self.shared.drop_counted(endpoint, reason::DISK_ERROR, 1);
                }
            }
            None => {
                for endpoint in endpoints {
                    self.shared.drop_counted(endpoint, reason::DISK_ERROR, 1);
                }
            }
        }
        publish_disk(&self.shared, disk);
    }

    fn count_disk_drops(&self, dropped: usize) {
        if dropped > 0 {
            // Files removed to make room are not read: their endpoints are unknown.
            self.shared
                .drop_counted_named("unknown", reason::DISK_FULL, dropped as u64);
            self.shared.metrics.disk_files_removed.inc();
        }
    }

    /// Reads queue files back, oldest first, while the queue has room.
    async fn refill(&mut self) {
        let Some(disk) = self.disk.clone() else {
            return;
        };
        loop {
            let Some(next_size) = lock(&disk).next_size() else {
                break;
            };
            let queued = self.shared.queue_figures().1;
            let fits = usize::try_from(next_size)
                .is_ok_and(|size| queued.saturating_add(size) <= self.refill_limit);
            if queued > 0 && !fits {
                break;
            }
            let Some(loaded) = with_disk(&disk, DiskStore::take_newest).await else {
                break;
            };
            if !loaded.corrupt.is_empty() {
                self.shared
                    .metrics
                    .disk_corrupt_files
                    .add(loaded.corrupt.len() as u64);
                lock(&self.shared.stats.disk).corrupt_files += loaded.corrupt.len() as u64;
            }
            if loaded.skipped > 0 {
                tracing::warn!(
                    "forwarder: skipped {} queued transactions with a content type or encoding this version does not send",
                    loaded.skipped
                );
                self.shared.drop_counted_named(
                    "unknown",
                    reason::DISK_UNREADABLE,
                    loaded.skipped as u64,
                );
            }
            if !loaded.transactions.is_empty() {
                let count = loaded.transactions.len();
                let mut state = lock(&self.shared.state);
                let mut dropped = 0;
                for tx in loaded.transactions {
                    // They were queued before: sending them again is a retry.
                    dropped += self.shared.admit(&mut state, Queued { tx, attempts: 1 });
                }
                self.shared.publish_queue(&state);
                drop(state);
                self.shared.log_evictions(dropped);
                tracing::debug!("forwarder: loaded {count} transactions from the disk queue");
            }
            publish_disk(&self.shared, &disk);
        }
    }

    /// After the drain: cut what is still in flight, then persist or drop what is left.
    async fn finish(mut self) -> Result<(), ForwarderError> {
        self.abort_requests.cancel();
        while self.in_flight > 0 {
            match self.results_rx.recv().await {
                Some(finished) => self.on_finished(finished),
                None => break,
            }
        }
        let leftovers: Vec<Transaction> = {
            let mut state = lock(&self.shared.state);
            state.accepting = false;
            state.spill_bytes = 0;
            let mut all: Vec<Transaction> = state.spill.drain(..).collect();
            all.extend(state.queue.drain_all().into_iter().map(|item| item.tx));
            self.shared.publish_queue(&state);
            all
        };
        self.publish_breakers();
        if leftovers.is_empty() {
            tracing::info!("forwarder: stopped; every queued transaction was sent");
            return Ok(());
        }
        let count = leftovers.len();
        let bytes: usize = leftovers.iter().map(Transaction::size).sum();
        let endpoints: Vec<Endpoint> = leftovers.iter().map(|tx| tx.endpoint).collect();
        let Some(disk) = self.disk.clone() else {
            for endpoint in endpoints {
                self.shared.drop_counted(endpoint, reason::SHUTDOWN, 1);
            }
            tracing::warn!(
                "forwarder: stopped with {count} unsent transactions ({bytes} bytes) after trying for {:?}; dropping them. Set forwarder_storage_max_size_in_bytes to keep them on disk across restarts",
                self.drain_timeout
            );
            return Ok(());
        };
        let result = with_disk(&disk, move |store| store.store(leftovers)).await;
        publish_disk(&self.shared, &disk);
        match result {
            Some(Ok(stored)) => {
                self.count_disk_drops(stored.dropped);
                tracing::info!(
                    "forwarder: stopped; wrote {} unsent transactions ({bytes} bytes) to {}; the next start sends them first",
                    stored.written,
                    lock(&disk).dir().display()
                );
                Ok(())
            }
            Some(Err(error)) => {
                for endpoint in endpoints {
                    self.shared.drop_counted(endpoint, reason::SHUTDOWN, 1);
                }
                tracing::error!(
                    "forwarder: stopped; dropping {count} unsent transactions ({bytes} bytes): {error}"
                );
                Err(error)
            }
            None => {
                for endpoint in endpoints {
                    self.shared.drop_counted(endpoint, reason::SHUTDOWN, 1);
                }
                Ok(())
            }
        }
    }
}

fn truncated(body: &[u8]) -> String {
    const LIMIT: usize = 1000;
    let text = String::from_utf8_lossy(&body[..body.len().min(LIMIT)]).into_owned();
    if body.len() > LIMIT {
        format!("{text}...")
    } else {
        text
    }
}
