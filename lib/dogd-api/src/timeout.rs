//! `server_timeout` for request/response routes: past it the handler is dropped (cancelled) and
//! the client gets 503. The Go CMD server only sets a write deadline, which truncates the response
//! instead; the agent's IPC server answers 503 as we do.
//!
//! Enforced by the gate (one layer per request instead of two): it already knows the matched
//! route, and a second boxed route layer showed up in the per-request cost.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use http::{Method, StatusCode, Uri};

use crate::observe::RouteLabel;
use crate::response::json_error;

/// Which requests of a server are bounded, and by how much.
#[derive(Clone, Debug)]
pub(crate) struct RequestTimeout {
    /// `server_timeout`.
    pub(crate) limit: Duration,
    /// Route templates exempt from it (streams, flare, diagnose).
    pub(crate) exempt: Arc<[String]>,
}

impl RequestTimeout {
    /// Whether a request that matched `route` is bounded. Unmatched requests (answered 404 at
    /// once) are not.
    pub(crate) fn bounds(&self, route: &RouteLabel) -> bool {
        match route {
            RouteLabel::Matched(path) => !self.exempt.iter().any(|exempt| exempt == path.as_str()),
            RouteLabel::Static(_) => false,
        }
    }
}

/// Logs a request that overran `limit` and builds its 503.
pub(crate) fn timed_out(method: &Method, uri: &Uri, limit: Duration) -> Response {
    tracing::warn!(
        "{method} {} did not finish within server_timeout ({limit:?}); cancelled",
        uri.path()
    );
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "timeout: the request did not finish within {}s (server_timeout)",
            limit.as_secs_f64()
        ),
    )
}
