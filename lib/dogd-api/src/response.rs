//! Small helpers for JSON responses.

use axum::Json;
use axum::response::{IntoResponse as _, Response};
use http::StatusCode;

/// `{"error": message}` with `status`, the agent's `setJSONError` shape.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}
