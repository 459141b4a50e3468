//! The HTTP routes: the intake's (what the forwarder talks to) and `/fakeintake/*` (what tests use
//! to read payloads back and to inject failures).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::decode::{Kind, check_content_type, decode, decompress};
use crate::store::{RequestMeta, Store, now_seconds};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) store: Store,
    /// Largest accepted request body, compressed and decompressed.
    pub(crate) max_body_bytes: usize,
}

type Shared = State<Arc<App>>;
type Params = Query<HashMap<String, String>>;

pub(crate) fn router(app: Arc<App>) -> Router {
    let body_limit = app.max_body_bytes;
    let intake = |kind: Kind| {
        post(
            move |state: Shared, query: Params, headers: HeaderMap, body: Bytes| {
                receive(state, kind, query, headers, body)
            },
        )
    };
    Router::new()
        .route(Kind::Series.path(), intake(Kind::Series))
        .route(Kind::Sketches.path(), intake(Kind::Sketches))
        .route(Kind::CheckRun.path(), intake(Kind::CheckRun))
        .route(Kind::Events.path(), intake(Kind::Events))
        .route("/intake", intake(Kind::Events))
        .route("/api/v1/validate", get(validate))
        .route("/fakeintake/payloads", get(payloads))
        .route("/fakeintake/errors", get(errors))
        .route("/fakeintake/stats", get(stats))
        .route("/fakeintake/flush", get(flush).post(flush))
        .route("/fakeintake/fail", post(fail))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "errors": [message] }))).into_response()
}

async fn receive(
    State(app): Shared,
    kind: Kind,
    Query(query): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = now_seconds();
    let meta = RequestMeta::new(&headers, query.get("api_key").cloned());
    app.store.count_request(kind);
    if let Some(refusal) = app.store.key_refused(meta.api_key.as_deref()) {
        app.store.count_rejected(kind);
        tracing::info!("{}: 403 ({refusal})", kind.path());
        return answer(StatusCode::FORBIDDEN, refusal);
    }
    if let Some(status) = app.store.take_failure(kind) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        tracing::info!("{}: injected failure {status}", kind.path());
        return answer(status, "injected failure (fake intake --fail-next)");
    }
    let decoded = check_content_type(kind, meta.content_type.as_deref())
        .and_then(|()| decompress(meta.content_encoding.as_deref(), &body, app.max_body_bytes))
        .and_then(|data| decode(kind, &data).map(|payload| (payload, data.len())));
    match decoded {
        Ok((payload, uncompressed_bytes)) => {
            tracing::debug!(
                "{}: stored a payload of {} bytes ({uncompressed_bytes} uncompressed)",
                kind.path(),
                body.len()
            );
            app.store.add_payload(
                kind,
                json!({
                    "received_at": received_at,
                    "headers": meta.to_json(),
                    "compressed_bytes": body.len(),
                    "uncompressed_bytes": uncompressed_bytes,
                    "payload": payload,
                }),
            );
            (StatusCode::ACCEPTED, Json(json!({ "errors": [] }))).into_response()
        }
        Err(message) => {
            tracing::warn!("{}: 400: {message}", kind.path());
            app.store.add_error(json!({
                "received_at": received_at,
                "endpoint": kind.name(),
                "message": message,
                "headers": meta.to_json(),
                "compressed_bytes": body.len(),
            }));
            answer(StatusCode::BAD_REQUEST, &message)
        }
    }
}

async fn validate(State(app): Shared, Query(query): Params, headers: HeaderMap) -> Response {
    let meta = RequestMeta::new(&headers, query.get("api_key").cloned());
    match app.store.key_refused(meta.api_key.as_deref()) {
        Some(refusal) => answer(StatusCode::FORBIDDEN, refusal),
        None => Json(json!({ "valid": true })).into_response(),
    }
}

/// The `?endpoint=` parameter, or the message explaining the accepted values.
fn kind_param(query: &HashMap<String, String>) -> Result<Kind, String> {
    let wanted = query.get("endpoint").map(String::as_str).unwrap_or("");
    Kind::from_name(wanted).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|kind| kind.name()).collect();
        format!(
            "unknown endpoint {wanted:?}: use ?endpoint= with one of {}",
            names.join(", ")
        )
    })
}

async fn payloads(State(app): Shared, Query(query): Params) -> Response {
    match kind_param(&query) {
        Ok(kind) => Json(Value::Array(app.store.payloads(kind))).into_response(),
        Err(message) => answer(StatusCode::BAD_REQUEST, &message),
    }
}

async fn errors(State(app): Shared) -> Json<Value> {
    Json(Value::Array(app.store.errors()))
}

async fn stats(State(app): Shared) -> Json<Value> {
    Json(app.store.stats())
}

async fn flush(State(app): Shared) -> Json<Value> {
    app.store.flush();
    Json(json!({ "flushed": true }))
}

async fn fail(State(app): Shared, Query(query): Params) -> Response {
    let count = match query.get("count").map(|count| count.parse::<u32>()) {
        None => 1,
        Some(Ok(count)) => count,
        Some(Err(_)) => {
            return answer(
                StatusCode::BAD_REQUEST,
                "count must be a non-negative integer",
            );
        }
    };
    let status = match query.get("status").map(|status| status.parse::<u16>()) {
        None => 500,
        Some(Ok(status)) if (100..=599).contains(&status) => status,
        Some(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                "status must be an HTTP status code (100-599)",
            );
        }
    };
    app.store.fail_next(count, status);
    tracing::info!("the next {count} intake requests will fail with {status}");
    Json(json!({ "fail_next": count, "status": status })).into_response()
}

async fn unknown(uri: axum::http::Uri) -> Response {
    let paths: Vec<&str> = Kind::ALL.iter().map(|kind| kind.path()).collect();
    answer(
        StatusCode::NOT_FOUND,
        &format!(
            "no route for {}: the fake intake serves {}, /api/v1/validate and /fakeintake/{{payloads,errors,stats,flush,fail}}",
            uri.path(),
            paths.join(", ")
        ),
    )
}
