//! What the forwarder has done, for its status section (`GET /agent/forwarder/status` and the
//! `forwarder` part of `dogd status`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::time::Instant;

use super::Endpoint;
use super::forwarder::Shared;

/// Locks a mutex whose data stays consistent even if a holder panicked (each update is a single
/// assignment or insert).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The outcome of the API key check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum ApiKeyState {
    #[default]
    NotChecked,
    Skipped(&'static str),
    Valid,
    Invalid,
    Unreachable(String),
    UnexpectedStatus(u16),
}

impl ApiKeyState {
    fn to_json(&self) -> Value {
        let (status, detail) = match self {
            ApiKeyState::NotChecked => ("not checked", None),
            ApiKeyState::Skipped(why) => ("not checked", Some((*why).to_owned())),
            ApiKeyState::Valid => ("valid", None),
            ApiKeyState::Invalid => (
                "invalid",
                Some("the intake answered 403: check api_key and site".to_owned()),
            ),
            ApiKeyState::Unreachable(error) => ("unknown", Some(format!("unreachable: {error}"))),
            ApiKeyState::UnexpectedStatus(code) => {
                ("unknown", Some(format!("unexpected status {code}")))
            }
        };
        json!({ "status": status, "detail": detail })
    }
}

#[derive(Debug, Default)]
pub(crate) struct DiskStats {
    pub(crate) path: Option<PathBuf>,
    pub(crate) max_bytes: u64,
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    pub(crate) corrupt_files: u64,
    pub(crate) error: Option<String>,
}

/// A blocked endpoint: its error steps, and until when (none while its test transaction is out).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocked {
    pub(crate) errors: u32,
    pub(crate) until: Option<Instant>,
}

/// Counters kept for the status; telemetry has the same figures with labels.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) sent: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) requeued: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) dropped: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) http_errors: Mutex<BTreeMap<u16, u64>>,
    pub(crate) errors: Mutex<BTreeMap<&'static str, u64>>,
    pub(crate) last_error: Mutex<Option<(SystemTime, String)>>,
    pub(crate) api_key: Mutex<ApiKeyState>,
    pub(crate) disk: Mutex<DiskStats>,
    /// Per endpoint, while its breaker is not closed.
    pub(crate) blocked: Mutex<[Option<Blocked>; 4]>,
}

impl Stats {
    pub(crate) fn add_dropped(&self, reason: &'static str, count: u64) {
        *lock(&self.dropped).entry(reason).or_default() += count;
    }

    pub(crate) fn add_http_error(&self, code: u16) {
        *lock(&self.http_errors).entry(code).or_default() += 1;
    }

    pub(crate) fn add_error(&self, kind: &'static str) {
        *lock(&self.errors).entry(kind).or_default() += 1;
    }

    pub(crate) fn set_last_error(&self, message: String) {
        *lock(&self.last_error) = Some((SystemTime::now(), message));
    }
}

/// The forwarder's status section. Cheap to clone; register it with the status registry.
#[derive(Clone)]
pub struct ForwarderStatus {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for ForwarderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwarderStatus")
            .field("endpoint", &self.shared.domain)
            .finish_non_exhaustive()
    }
}

impl dogd_api::StatusProvider for ForwarderStatus {
    fn section(&self) -> &str {
        "forwarder"
    }

    fn title(&self) -> &str {
        "Forwarder"
    }

    fn status(&self) -> Value {
        let shared = &self.shared;
        let stats = &shared.stats;
        let (queued, queued_bytes) = shared.queue_figures();
        let dropped = lock(&stats.dropped).clone();
        let dropped_total: u64 = dropped.values().sum();
        let http_errors: BTreeMap<String, u64> = lock(&stats.http_errors)
            .iter()
            .map(|(code, count)| (code.to_string(), *count))
            .collect();
        let errors = lock(&stats.errors).clone();
        let last_error = lock(&stats.last_error).as_ref().map(|(at, message)| {
            let ago = SystemTime::now()
                .duration_since(*at)
                .unwrap_or(Duration::ZERO);
            json!({ "message": message, "seconds_ago": ago.as_secs() })
        });
        let now = Instant::now();
        let blocked: serde_json::Map<String, Value> = Endpoint::ALL
            .iter()
            .zip(lock(&stats.blocked).iter())
            .filter_map(|(endpoint, state)| {
                let Blocked { errors, until } = (*state)?;
                let retry_in = until.map_or(0.0, |until| {
                    until.saturating_duration_since(now).as_secs_f64()
                });
                Some((
                    endpoint.name().to_owned(),
                    json!({ "errors": errors, "retry_in_seconds": (retry_in * 10.0).round() / 10.0 }),
                ))
            })
            .collect();
        let disk = {
            let disk = lock(&stats.disk);
            json!({
                "enabled": disk.path.is_some() && disk.error.is_none(),
                "path": disk.path.as_ref().map(|path| path.display().to_string()),
                "files": disk.files,
                "bytes": disk.bytes,
                "max_bytes": disk.max_bytes,
                "corrupt_files_set_aside": disk.corrupt_files,
                "error": disk.error,
            })
        };
        json!({
            "endpoint": shared.domain,
            "proxy": shared.proxy,
            "api_key": {
                "key": shared.api_key_redacted,
                "validation": lock(&stats.api_key).to_json(),
            },
            "transactions": {
                "sent": stats.sent.load(Ordering::Relaxed),
                "sent_bytes": stats.sent_bytes.load(Ordering::Relaxed),
                "retried": stats.retried.load(Ordering::Relaxed),
                "requeued": stats.requeued.load(Ordering::Relaxed),
                "in_flight": stats.in_flight.load(Ordering::Relaxed),
                "dropped": dropped_total,
                "dropped_by_reason": dropped,
                "http_errors": http_errors,
                "errors": errors,
            },
            "retry_queue": {
                "transactions": queued,
                "bytes": queued_bytes,
                "max_bytes": shared.max_bytes,
            },
            "disk_queue": disk,
            "blocked_endpoints": blocked,
            "last_error": last_error,
        })
    }
}
