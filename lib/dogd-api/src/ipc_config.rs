//! The IPC config server's `/config/v1/` routes: other agent processes read a fixed set of settings
//! from the core (the agent's "config sync").

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use dogd_config::Config;
use http::StatusCode;

use crate::response::json_error;

/// Settings other processes may read, and everything below them (the agent's
/// `AuthorizedConfigPathsCore`).
pub const AUTHORIZED_PATHS: &[&str] = &[
    "api_key",
    "app_key",
    "site",
    "dd_url",
    "additional_endpoints",
    "external_metrics_provider.api_key",
    "external_metrics_provider.app_key",
    "logs_config.additional_endpoints",
    "apm_config.additional_endpoints",
    "apm_config.profiling_additional_endpoints",
    "database_monitoring.samples.additional_endpoints",
    "database_monitoring.metrics.additional_endpoints",
    "database_monitoring.activity.additional_endpoints",
    "network_devices.metadata.additional_endpoints",
    "network_devices.snmp_traps.forwarder.additional_endpoints",
    "network_devices.netflow.forwarder.additional_endpoints",
    "network_path.forwarder.additional_endpoints",
    "container_lifecycle.additional_endpoints",
    "container_image.additional_endpoints",
    "sbom.additional_endpoints",
    "service_discovery.forwarder.additional_endpoints",
    "runtime_security_config.endpoints.additional_endpoints",
];

/// Whether `path` is an authorized setting or below one.
pub fn is_authorized(path: &str) -> bool {
    AUTHORIZED_PATHS.iter().any(|allowed| {
        path == *allowed
            || path
                .strip_prefix(allowed)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// The router served on `agent_ipc.port`.
pub(crate) fn router(config: Arc<Config>) -> Router {
    Router::new()
        .route("/config/v1/", get(all_authorized))
        .route("/config/v1/{*path}", get(one_setting))
        .with_state(config)
}

async fn all_authorized(State(config): State<Arc<Config>>) -> Response {
    let values: serde_json::Map<String, serde_json::Value> = AUTHORIZED_PATHS
        .iter()
        .filter_map(|path| {
            config
                .get(path)
                .map(|setting| ((*path).to_owned(), setting.value))
        })
        .collect();
    Json(values).into_response()
}

async fn one_setting(State(config): State<Arc<Config>>, Path(path): Path<String>) -> Response {
    if !is_authorized(&path) {
        return json_error(
            StatusCode::FORBIDDEN,
            format!("querying config value '{path}' is not allowed"),
        );
    }
    match config.get(&path) {
        Some(setting) => Json(setting.value).into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            format!("config value '{path}' does not exist"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorized_paths_include_children_but_not_lookalikes() {
        assert!(is_authorized("api_key"));
        assert!(is_authorized("logs_config.additional_endpoints"));
        assert!(is_authorized("logs_config.additional_endpoints.0.host"));
        assert!(!is_authorized("api_key_extra"));
        assert!(!is_authorized("logs_config"));
        assert!(!is_authorized("hostname"));
    }
}
