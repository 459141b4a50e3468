//! The `/agent/` routes for running an agent day to day: health, status, config and runtime
//! settings, secrets, flare, stop, telemetry. Paths, methods and bodies follow the Go agent.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use dogd_api::{ApiBuilder, RouteKind, json_error};
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Ops;

/// Registers every route on the API builder.
pub fn register(builder: &mut ApiBuilder, ops: Arc<Ops>) {
    let bounded = RouteKind::Bounded;
    builder.agent_route(
        "/status/health",
        bounded,
        get(health).with_state(ops.clone()),
    );
    builder.agent_route("/status", bounded, get(status).with_state(ops.clone()));
    builder.agent_route(
        "/{component}/status",
        bounded,
        get(component_status).with_state(ops.clone()),
    );
    builder.agent_route("/config", bounded, get(full_config).with_state(ops.clone()));
    builder.agent_route(
        "/config/list-runtime",
        bounded,
        get(list_runtime).with_state(ops.clone()),
    );
    builder.agent_route(
        "/config/{setting}",
        bounded,
        get(get_setting).post(set_setting).with_state(ops.clone()),
    );
    builder.agent_route("/secrets", bounded, get(secrets).with_state(ops.clone()));
    // The agent's CLI uses GET; POST is accepted as the documented way to change state.
    builder.agent_route(
        "/secret/refresh",
        RouteKind::Streaming,
        get(refresh_secrets)
            .post(refresh_secrets)
            .with_state(ops.clone()),
    );
    // A flare collects for longer than a request should take: exempt from server_timeout.
    builder.agent_route(
        "/flare",
        RouteKind::Streaming,
        post(flare).with_state(ops.clone()),
    );
    builder.agent_route("/stop", bounded, post(stop).with_state(ops.clone()));
    builder.agent_route("/telemetry", bounded, get(telemetry).with_state(ops));
}

/// `?format=` of status routes.
#[derive(Debug, Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Text,
}

fn format_of(query: &FormatQuery) -> Result<Format, Box<Response>> {
    match query.format.as_deref() {
        None | Some("json") => Ok(Format::Json),
        Some("text") => Ok(Format::Text),
        Some(other) => Err(Box::new(json_error(
            StatusCode::BAD_REQUEST,
            format!("unknown format {other:?}: use format=json or format=text"),
        ))),
    }
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn health(State(ops): State<Arc<Ops>>) -> Response {
    Json(ops.health_json()).into_response()
}

async fn status(State(ops): State<Arc<Ops>>, Query(query): Query<FormatQuery>) -> Response {
    match format_of(&query) {
        Ok(Format::Json) => Json(ops.status.collect()).into_response(),
        Ok(Format::Text) => text(ops.status.render_all()),
        Err(response) => *response,
    }
}

async fn component_status(
    State(ops): State<Arc<Ops>>,
    Path(component): Path<String>,
    Query(query): Query<FormatQuery>,
) -> Response {
    let format = match format_of(&query) {
        Ok(format) => format,
        Err(response) => return *response,
    };
    let missing = || {
        json_error(
            StatusCode::NOT_FOUND,
            format!(
                "no status section {component:?}: sections are {}",
                ops.status.sections().join(", ")
            ),
        )
    };
    match format {
        Format::Json => ops
            .status
            .section(&component)
            .map_or_else(missing, |value| Json(value).into_response()),
        Format::Text => ops.status.render_one(&component).map_or_else(missing, text),
    }
}

async fn full_config(State(ops): State<Arc<Ops>>) -> Response {
    match ops.config_yaml() {
        Ok(yaml) => ([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response(),
        Err(reason) => json_error(StatusCode::INTERNAL_SERVER_ERROR, reason),
    }
}

async fn list_runtime(State(ops): State<Arc<Ops>>) -> Response {
    Json(ops.runtime_json()).into_response()
}

fn unknown_setting(ops: &Ops, setting: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        format!(
            "unknown runtime setting {setting:?}: runtime settings are {}",
            ops.runtime.names().join(", ")
        ),
    )
}

async fn get_setting(State(ops): State<Arc<Ops>>, Path(setting): Path<String>) -> Response {
    let Some(found) = ops.runtime.get(&setting) else {
        return unknown_setting(&ops, &setting);
    };
    let (value, source) = found.current();
    Json(json!({ "value": value, "source": source.layer() })).into_response()
}

async fn set_setting(
    State(ops): State<Arc<Ops>>,
    Path(setting): Path<String>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(found) = ops.runtime.get(&setting) else {
        return unknown_setting(&ops, &setting);
    };
    let Ok(Form(fields)) = form else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected a form body (application/x-www-form-urlencoded) with a `value` field",
        );
    };
    let Some(value) = fields.get("value") else {
        return json_error(StatusCode::BAD_REQUEST, "missing form field `value`");
    };
    match found.set(value) {
        Ok(()) => {
            let (value, source) = found.current();
            tracing::info!("runtime setting {setting} changed to {value}");
            Json(json!({ "value": value, "source": source.layer() })).into_response()
        }
        Err(reason) => json_error(StatusCode::BAD_REQUEST, reason),
    }
}

async fn secrets(State(ops): State<Arc<Ops>>, Query(query): Query<FormatQuery>) -> Response {
    match format_of(&query) {
        Ok(Format::Json) => Json(ops.secrets.info()).into_response(),
        Ok(Format::Text) => text(ops.secrets.info_text()),
        Err(response) => *response,
    }
}

async fn refresh_secrets(State(ops): State<Arc<Ops>>) -> Response {
    let service = ops.secrets.clone();
    match tokio::task::spawn_blocking(move || service.refresh()).await {
        Ok(Ok(count)) => Json(json!({ "refreshed": count })).into_response(),
        Ok(Err(error)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        Err(join) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("refresh task failed: {join}"),
        ),
    }
}

async fn flare(State(ops): State<Arc<Ops>>) -> Response {
    let builder = ops.clone();
    match tokio::task::spawn_blocking(move || builder.write_flare()).await {
        Ok(Ok(path)) => {
            tracing::info!("flare written to {}", path.display());
            Json(Value::String(path.display().to_string())).into_response()
        }
        Ok(Err(error)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        Err(join) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("flare task failed: {join}"),
        ),
    }
}

async fn stop(State(ops): State<Arc<Ops>>) -> Response {
    ops.stop
        .request("stop requested through the API (POST /agent/stop)");
    Json(Value::String(String::new())).into_response()
}

async fn telemetry(State(ops): State<Arc<Ops>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            dogd_telemetry::PROMETHEUS_CONTENT_TYPE,
        )],
        ops.telemetry.render_prometheus(),
    )
        .into_response()
}
