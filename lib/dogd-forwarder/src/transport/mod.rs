//! The HTTP forwarder: sends already-serialized, compressed payloads ([`Transaction`]s) to the
//! Datadog intake, with retries, a byte-bounded retry queue, a per-endpoint circuit breaker and an
//! optional disk queue.
//!
//! The behaviour follows the agent's default forwarder (`comp/forwarder/defaultforwarder`):
//!
//! * 2xx is a success; 408, 429, 5xx (and 3xx), network errors and timeouts are retried; every
//!   other 4xx is dropped and counted (403 with one loud log line about the API key). The agent
//!   also retries the other 4xx (404 included); dogd drops them so a wrong `dd_url` cannot pin the
//!   retry queue;
//! * a failing endpoint is blocked for an exponential, randomized backoff (the agent's "blocked
//!   endpoints" circuit breaker); while it is blocked its transactions wait in the queue, and when
//!   the backoff expires one test transaction is sent before the others follow;
//! * the queue is bounded in bytes (`forwarder_retry_queue_payloads_max_size`); the oldest
//!   transactions make room for newer ones, and go to disk instead of being dropped when
//!   `forwarder_storage_max_size_in_bytes` enables the disk queue;
//! * on stop, queued transactions are sent for up to [`ForwarderConfig::drain_timeout`]; what is
//!   left is written to disk (or dropped and counted) and sent first by the next run.
//!
//! Wiring: build a [`ForwarderConfig`], create the [`Forwarder`] (a `dogd_core::Component` named
//! `forwarder`), keep its [`ForwarderHandle`] for producers and its [`ForwarderStatus`] for the
//! status registry, then register the forwarder with the supervisor.

#![warn(missing_docs)]

mod breaker;
mod client;
mod config;
mod disk;
mod error;
mod forwarder;
mod proxy;
mod queue;
mod status;
mod telemetry;

use std::time::SystemTime;

use bytes::Bytes;

pub use config::{ForwarderConfig, StorageConfig};
pub use error::ForwarderError;
pub use forwarder::{Forwarder, ForwarderHandle};
pub use proxy::{Proxy, ProxyConfig};
pub use status::ForwarderStatus;

/// `Content-Type` of protobuf payloads (series v2, sketches).
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";

/// `Content-Type` of JSON payloads (check runs, events).
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The value of the `DD-Agent-Payload` header sent with protobuf payloads: the version of
/// `DataDog/agent-payload` whose protos the payloads follow. The agent sets it from the Go module
/// version at build time (`version.AgentPayloadVersion`, e.g. `v5.0.180` in recent `go.mod` files).
pub const AGENT_PAYLOAD_VERSION: &str = "v5.0.180";

/// The API key the agent never validates (`fakeAPIKey` in the agent's forwarder health check):
/// setups pointing at a fake intake use it.
pub const FAKE_API_KEY: &str = "00000000000000000000000000000000";

/// An intake endpoint, relative to the forwarder's base URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /api/v2/series`: protobuf `MetricPayload`.
    Series,
    /// `POST /api/beta/sketches`: protobuf `SketchPayload`.
    Sketches,
    /// `POST /api/v1/check_run`: JSON array of service checks.
    CheckRun,
    /// `POST /intake/`: JSON events payload.
    Events,
}

impl Endpoint {
    /// Every endpoint, in a fixed order.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Series,
        Endpoint::Sketches,
        Endpoint::CheckRun,
        Endpoint::Events,
    ];

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Series => "/api/v2/series",
            Endpoint::Sketches => "/api/beta/sketches",
            Endpoint::CheckRun => "/api/v1/check_run",
            Endpoint::Events => "/intake/",
        }
    }

    /// The agent's name for the endpoint (`endpoints.go`), used as the `endpoint` telemetry label
    /// and in the status.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Series => "series_v2",
            Endpoint::Sketches => "sketches_v2",
            Endpoint::CheckRun => "check_run_v1",
            Endpoint::Events => "intake",
        }
    }

    /// Position in [`Endpoint::ALL`], for per-endpoint arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Endpoint::Series => 0,
            Endpoint::Sketches => 1,
            Endpoint::CheckRun => 2,
            Endpoint::Events => 3,
        }
    }

    /// The code stored in disk queue files (stable: never renumber).
    pub(crate) fn code(self) -> u8 {
        match self {
            Endpoint::Series => 1,
            Endpoint::Sketches => 2,
            Endpoint::CheckRun => 3,
            Endpoint::Events => 4,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Endpoint::Series),
            2 => Some(Endpoint::Sketches),
            3 => Some(Endpoint::CheckRun),
            4 => Some(Endpoint::Events),
            _ => None,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path())
    }
}

/// One payload for one endpoint, ready to send: the body is already serialized and compressed.
#[derive(Clone, Debug)]
pub struct Transaction {
    /// Where it goes.
    pub endpoint: Endpoint,
    /// The request body, already compressed as `content_encoding` says.
    pub body: Bytes,
    /// `Content-Type`: [`CONTENT_TYPE_PROTOBUF`] or [`CONTENT_TYPE_JSON`]. Protobuf payloads also
    /// get the `DD-Agent-Payload` header. Only these two survive the disk queue.
    pub content_type: &'static str,
    /// `Content-Encoding`: `Some("zstd")`, `Some("deflate")` (zlib framing, as the agent) or
    /// `None` for an uncompressed body.
    pub content_encoding: Option<&'static str>,
    /// When the payload was built. The queue keeps transactions in this order: the oldest are sent
    /// first and dropped first.
    pub created_at: SystemTime,
}

impl Transaction {
    /// A transaction created now.
    pub fn new(
        endpoint: Endpoint,
        body: Bytes,
        content_type: &'static str,
        content_encoding: Option<&'static str>,
    ) -> Self {
        Self {
            endpoint,
            body,
            content_type,
            content_encoding,
            created_at: SystemTime::now(),
        }
    }

    /// The payload size in bytes, as counted against the retry queue budget.
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// Whether the payload is protobuf (and so carries `DD-Agent-Payload`).
    pub fn is_protobuf(&self) -> bool {
        self.content_type == CONTENT_TYPE_PROTOBUF
    }
}

/// Maps a stored `Content-Type` back to the constant a [`Transaction`] holds.
pub(crate) fn known_content_type(value: &str) -> Option<&'static str> {
    [CONTENT_TYPE_PROTOBUF, CONTENT_TYPE_JSON]
        .into_iter()
        .find(|known| *known == value)
}

/// Maps a stored `Content-Encoding` back to a constant.
pub(crate) fn known_content_encoding(value: &str) -> Option<&'static str> {
    ["zstd", "deflate", "gzip", "identity"]
        .into_iter()
        .find(|known| *known == value)
}
