//! Per-request telemetry (the agent's `api_server__request_duration_seconds` histogram) and the
//! request log line.

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use dogd_telemetry::{DEFAULT_BUCKETS, HistogramVec, Registry, TelemetryError};
use http::{Method, StatusCode};

use crate::auth::AuthMethod;
use crate::conn::{ConnInfo, ServerKind};

/// The agent's metric name (subsystem `api_server`, name `request_duration_seconds`, joined with
/// the double underscore its telemetry component uses).
pub const REQUEST_DURATION_METRIC: &str = "api_server__request_duration_seconds";

/// The `path` label of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "<unmatched>";

/// The route template a request matched (never the raw path, so label cardinality stays bounded),
/// carried from the router back to the observer in the response extensions. Neither variant
/// allocates per request.
#[derive(Clone, Debug)]
pub(crate) enum RouteLabel {
    /// A fixed label (a gRPC method path, or the unmatched marker).
    Static(&'static str),
    /// An HTTP route template, shared with the router.
    Matched(MatchedPath),
}

impl RouteLabel {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Static(label) => label,
            Self::Matched(path) => path.as_str(),
        }
    }
}

/// The matched HTTP route template of a request (set by the router before route layers run).
pub(crate) fn http_route_label(request: &Request) -> RouteLabel {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or(RouteLabel::Static(UNMATCHED_ROUTE), |path| {
            RouteLabel::Matched(path.clone())
        })
}

/// The gRPC method of a request: the full method path when it is one of ours, else a fixed label
/// (a client could otherwise invent unbounded paths).
pub(crate) fn grpc_method_label(request: &Request) -> RouteLabel {
    let path = request.uri().path();
    match dogd_proto::GRPC_METHODS
        .iter()
        .find(|method| **method == path)
    {
        Some(method) => RouteLabel::Static(method),
        None => RouteLabel::Static("<unknown grpc method>"),
    }
}

/// tonic reports a request over the size limit as `OutOfRange`; grpc-go, which the agent's
/// clients are written against, says `ResourceExhausted`. Such a request is refused before its
/// handler runs, with a trailers-only answer whose status tonic also leaves in the extensions.
pub(crate) fn report_oversized_as_resource_exhausted(response: &mut Response) {
    let Some(status) = response.extensions().get::<tonic::Status>() else {
        return;
    };
    if status.code() != tonic::Code::OutOfRange
        || !status.message().contains("message length too large")
    {
        return;
    }
    let replacement = tonic::Status::resource_exhausted(format!(
        "grpc: received message larger than max ({})",
        status.message()
    ));
    let headers = response.headers_mut();
    headers.remove("grpc-message");
    if replacement.add_header(headers).is_ok() {
        response.extensions_mut().insert(replacement);
    }
}

/// Records every request of one server.
#[derive(Clone, Debug)]
pub(crate) struct Observer {
    durations: HistogramVec,
}

impl Observer {
    pub(crate) fn new(registry: &Registry) -> Result<Self, TelemetryError> {
        let durations = registry.histogram(
            REQUEST_DURATION_METRIC,
            "Request duration distribution by server, method, path, and status (in seconds).",
            &["servername", "status_code", "method", "path", "auth"],
            DEFAULT_BUCKETS,
        )?;
        Ok(Self { durations })
    }

    /// Records a finished request and logs it. `route` is the matched template (or a fixed
    /// label), never the raw path.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        conn: Option<&ConnInfo>,
        method: &Method,
        raw_path: &str,
        route: &str,
        auth: AuthMethod,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let server = conn.map_or(ServerKind::Cmd, |conn| conn.server);
        self.durations
            .with(&[
                server.telemetry_name(),
                status.as_str(),
                method.as_str(),
                route,
                auth.label(),
            ])
            .observe(elapsed.as_secs_f64());
        let millis = elapsed.as_secs_f64() * 1e3;
        let server = server.log_name();
        let peer = Peer(conn.map(|conn| conn.peer));
        // A handler failure is worth a warning; refusals, timeouts and unimplemented routes are not.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(
                "{server}: {method} {raw_path} {} {millis:.1}ms from {peer}",
                status.as_u16()
            );
        } else {
            tracing::debug!(
                "{server}: {method} {raw_path} {} {millis:.1}ms from {peer}",
                status.as_u16()
            );
        }
    }
}

/// The client's address in log lines, `?` when the connection is unknown; formatted only when
/// the line is logged.
struct Peer(Option<std::net::SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("?"),
        }
    }
}
