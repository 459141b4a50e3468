//! What the fake intake remembers: decoded payloads per endpoint, decoding errors, request counts,
//! injected failures and rejected API keys.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::decode::Kind;

/// The request headers the fake intake records.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestMeta {
    pub(crate) api_key: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) content_encoding: Option<String>,
    pub(crate) agent_version: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) agent_payload: Option<String>,
}

impl RequestMeta {
    /// Reads the headers; `query_key` is the `api_key` query parameter, which the agent uses for
    /// `/api/v1/validate`.
    pub(crate) fn new(headers: &HeaderMap, query_key: Option<String>) -> Self {
        let get = |name: &str| {
            headers
                .get(name)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        };
        Self {
            api_key: get("dd-api-key").or(query_key),
            content_type: get("content-type"),
            content_encoding: get("content-encoding"),
            agent_version: get("dd-agent-version"),
            user_agent: get("user-agent"),
            agent_payload: get("dd-agent-payload"),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "api_key": self.api_key,
            "content_type": self.content_type,
            "content_encoding": self.content_encoding,
            "agent_version": self.agent_version,
            "user_agent": self.user_agent,
            "agent_payload": self.agent_payload,
        })
    }
}

/// Seconds since the Unix epoch, with milliseconds.
pub(crate) fn now_seconds() -> f64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_millis() as f64) / 1000.0
}

#[derive(Debug, Default)]
struct Inner {
    payloads: BTreeMap<Kind, VecDeque<Value>>,
    errors: VecDeque<Value>,
    /// Requests per endpoint, whatever their outcome.
    requests: BTreeMap<Kind, u64>,
    /// Requests answered by an injected failure, per endpoint.
    failed: BTreeMap<Kind, u64>,
    /// Requests refused for their API key, per endpoint.
    rejected: BTreeMap<Kind, u64>,
    /// Payloads dropped because `max_payloads` was reached.
    evicted: u64,
    fail_remaining: u32,
    fail_status: u16,
}

/// The shared store.
#[derive(Debug)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
    rejected_keys: BTreeSet<String>,
    max_payloads: usize,
}

impl Store {
    pub(crate) fn new(
        rejected_keys: BTreeSet<String>,
        fail_next: u32,
        fail_status: u16,
        max_payloads: usize,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                fail_remaining: fail_next,
                fail_status,
                ..Inner::default()
            }),
            rejected_keys,
            max_payloads: max_payloads.max(1),
        }
    }

    // Every update is a single insert or assignment; a panic elsewhere cannot leave it torn.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether requests with this key (or without one) are refused.
    pub(crate) fn key_refused(&self, key: Option<&str>) -> Option<&'static str> {
        match key.map(str::trim) {
            None | Some("") => Some("API key missing: send it in the DD-API-KEY header"),
            Some(key) if self.rejected_keys.contains(key) => Some("Forbidden: invalid API key"),
            Some(_) => None,
        }
    }

    /// Counts a request to an intake endpoint.
    pub(crate) fn count_request(&self, kind: Kind) {
        *self.lock().requests.entry(kind).or_default() += 1;
    }

    pub(crate) fn count_rejected(&self, kind: Kind) {
        *self.lock().rejected.entry(kind).or_default() += 1;
    }

    /// Takes one injected failure, if any are left: its status.
    pub(crate) fn take_failure(&self, kind: Kind) -> Option<u16> {
        let mut inner = self.lock();
        if inner.fail_remaining == 0 {
            return None;
        }
        inner.fail_remaining -= 1;
        *inner.failed.entry(kind).or_default() += 1;
        Some(inner.fail_status)
    }

    /// Makes the next `count` intake requests fail with `status`.
    pub(crate) fn fail_next(&self, count: u32, status: u16) {
        let mut inner = self.lock();
        inner.fail_remaining = count;
        inner.fail_status = status;
    }

    pub(crate) fn add_payload(&self, kind: Kind, record: Value) {
        let mut inner = self.lock();
        let max = self.max_payloads;
        let list = inner.payloads.entry(kind).or_default();
        list.push_back(record);
        let mut evicted = 0;
        while list.len() > max {
            list.pop_front();
            evicted += 1;
        }
        inner.evicted += evicted;
    }

    pub(crate) fn add_error(&self, record: Value) {
        let mut inner = self.lock();
        inner.errors.push_back(record);
        while inner.errors.len() > self.max_payloads {
            inner.errors.pop_front();
        }
    }

    pub(crate) fn payloads(&self, kind: Kind) -> Vec<Value> {
        self.lock()
            .payloads
            .get(&kind)
            .map(|list| list.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn errors(&self) -> Vec<Value> {
        self.lock().errors.iter().cloned().collect()
    }

    pub(crate) fn stats(&self) -> Value {
        let inner = self.lock();
        let per_kind = |map: &BTreeMap<Kind, u64>| -> Value {
            Kind::ALL
                .into_iter()
                .map(|kind| {
                    (
                        kind.name().to_owned(),
                        json!(map.get(&kind).copied().unwrap_or(0)),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let stored: BTreeMap<Kind, u64> = inner
            .payloads
            .iter()
            .map(|(kind, list)| (*kind, list.len() as u64))
            .collect();
        json!({
            "requests": per_kind(&inner.requests),
            "stored": per_kind(&stored),
            "failed_by_injection": per_kind(&inner.failed),
            "rejected_api_key": per_kind(&inner.rejected),
            "errors": inner.errors.len(),
            "evicted": inner.evicted,
            "fail_next": { "remaining": inner.fail_remaining, "status": inner.fail_status },
        })
    }

    /// Forgets payloads, errors and counts (injected failures and rejected keys stay).
    pub(crate) fn flush(&self) {
        let mut inner = self.lock();
        inner.payloads.clear();
        inner.errors.clear();
        inner.requests.clear();
        inner.failed.clear();
        inner.rejected.clear();
        inner.evicted = 0;
    }
}
