//! `server_timeout` for request/response routes: past it the handler is dropped (cancelled) and
//! the client gets 503. The Go CMD server only sets a write deadline, which truncates the response
//! instead; the agent's IPC server answers 503 as we do.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;

use crate::response::json_error;

pub(crate) async fn bound_request(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let what = format!("{} {}", request.method(), request.uri().path());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_elapsed) => {
            tracing::warn!("{what} did not finish within server_timeout ({limit:?}); cancelled");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "timeout: the request did not finish within {}s (server_timeout)",
                    limit.as_secs_f64()
                ),
            )
        }
    }
}
