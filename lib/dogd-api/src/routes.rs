//! The routes the API server itself serves: `/agent/version`, `/agent/hostname`, `/check/…`, and
//! the 404 fallback.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, Uri, header};

use crate::builder::{ApiBuilder, RouteKind};
use crate::response::json_error;

/// What `dogd` was built from, for `/agent/version`.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    /// Semantic version (`0.1.0`).
    pub version: String,
    /// Git commit.
    pub commit: String,
}

impl BuildInfo {
    /// The agent's version object: `{"Major","Minor","Patch","Pre","Meta","Commit"}`.
    pub fn version_json(&self) -> serde_json::Value {
        let (core, meta) = self.version.split_once('+').unwrap_or((&self.version, ""));
        let (core, pre) = core.split_once('-').unwrap_or((core, ""));
        let mut numbers = core.split('.').map(|part| part.parse::<u64>().unwrap_or(0));
        serde_json::json!({
            "Major": numbers.next().unwrap_or(0),
            "Minor": numbers.next().unwrap_or(0),
            "Patch": numbers.next().unwrap_or(0),
            "Pre": pre,
            "Meta": meta,
            "Commit": self.commit,
        })
    }
}

/// Registers the server's own routes.
pub(crate) fn register(builder: &mut ApiBuilder, build: BuildInfo, hostname: Arc<str>) {
    // Both answers never change: serialize them once.
    let version = json_bytes(&build.version_json());
    builder.agent_route(
        "/version",
        RouteKind::Bounded,
        get(|State(body): State<Bytes>| async move { json_response(body) }).with_state(version),
    );
    let hostname = json_bytes(&serde_json::Value::String(hostname.to_string()));
    builder.agent_route(
        "/hostname",
        RouteKind::Bounded,
        get(|State(body): State<Bytes>| async move { json_response(body) }).with_state(hostname),
    );
    // The agent answers its check routes with a fixed text: checks are not run through the API.
    builder.check_route("/", get(not_yet_implemented));
    builder.check_route(
        "/{name}",
        get(not_yet_implemented).delete(not_yet_implemented),
    );
    builder.check_route("/{name}/reload", post(not_yet_implemented));
}

fn json_bytes(value: &serde_json::Value) -> Bytes {
    Bytes::from(value.to_string())
}

fn json_response(body: Bytes) -> Response {
    // Built directly: `(headers, bytes).into_response()` first sets an octet-stream content type
    // and then replaces it, on the hottest route.
    let mut response = Response::new(axum::body::Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn not_yet_implemented() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not yet implemented.",
    )
        .into_response()
}

/// The answer for a path no route matches (reached only with valid credentials).
pub(crate) async fn not_found(uri: Uri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_json_has_the_agents_fields() {
        let build = BuildInfo {
            version: "7.62.1-rc.2+git.5".to_owned(),
            commit: "abc123".to_owned(),
        };
        assert_eq!(
            build.version_json(),
            serde_json::json!({"Major": 7, "Minor": 62, "Patch": 1, "Pre": "rc.2", "Meta": "git.5", "Commit": "abc123"})
        );
    }
}
