//! DogStatsD on the API: its status section, `GET /agent/dogstatsd-stats`, and the
//! `dogstatsd_metrics_stats_enable` runtime setting.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use dogd_api::{ApiBuilder, RouteKind, StatusProvider};
use dogd_config::{Config, ConfigSetting};
use http::StatusCode;
use serde_json::{Value, json};

use crate::config::DogStatsdConfig;
use crate::listener::Queues;
use crate::server::DogStatsdAddrs;
use crate::stats::MetricStats;
use crate::telemetry::DsdTelemetry;

/// The `dogstatsd` status section.
pub struct DogStatsdStatus {
    config: DogStatsdConfig,
    telemetry: DsdTelemetry,
    addrs: DogStatsdAddrs,
    queues: Arc<Mutex<Option<Queues>>>,
}

impl std::fmt::Debug for DogStatsdStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DogStatsdStatus").finish_non_exhaustive()
    }
}

impl DogStatsdStatus {
    pub(crate) fn new(
        config: DogStatsdConfig,
        telemetry: DsdTelemetry,
        addrs: DogStatsdAddrs,
        queues: Arc<Mutex<Option<Queues>>>,
    ) -> Self {
        Self {
            config,
            telemetry,
            addrs,
            queues,
        }
    }
}

impl StatusProvider for DogStatsdStatus {
    fn section(&self) -> &str {
        "dogstatsd"
    }

    fn title(&self) -> &str {
        "DogStatsD"
    }

    fn status(&self) -> Value {
        let listener = |counters: &crate::listener::ListenerCounters| {
            json!({
                "packets": counters.packets.get(),
                "bytes": counters.bytes.get(),
                "read_errors": counters.read_errors.get(),
                "dropped_queue_full": counters.dropped.get(),
                "origin_detection_errors": counters.origin_errors.get(),
            })
        };
        let queued = self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, Queues::queued);
        let types: serde_json::Map<String, Value> = self
            .telemetry
            .metric_type_counts()
            .iter()
            .map(|(label, count)| ((*label).to_owned(), json!(count)))
            .collect();
        json!({
            "listeners": {
                "udp": self.addrs.udp().map(|addr| addr.to_string()),
                "unix_datagram": self.config.socket.as_ref().map(|path| path.display().to_string()),
                "unix_stream": self.config.stream_socket.as_ref().map(|path| path.display().to_string()),
            },
            "udp": listener(&self.telemetry.udp),
            "uds": listener(&self.telemetry.uds),
            "uds_stream": listener(&self.telemetry.uds_stream),
            "messages": {
                "metrics": self.telemetry.metrics_ok.get(),
                "events": self.telemetry.events_ok.get(),
                "service_checks": self.telemetry.service_checks_ok.get(),
                "parse_errors": {
                    "metrics": self.telemetry.failed("metrics").get(),
                    "events": self.telemetry.failed("events").get(),
                    "service_checks": self.telemetry.failed("service_checks").get(),
                },
                "unterminated": self.telemetry.unterminated.get(),
            },
            "metric_samples_by_type": types,
            "samples_to_aggregator": self.telemetry.samples.get(),
            "queue": {"batches_waiting": queued, "capacity": self.config.queue_size},
        })
    }
}

/// Registers `GET /agent/dogstatsd-stats`. `stats` is `None` when DogStatsD is disabled (the route
/// then answers as the agent does).
pub fn register_stats_route(builder: &mut ApiBuilder, stats: Option<MetricStats>) {
    builder.agent_route(
        "/dogstatsd-stats",
        RouteKind::Bounded,
        get(dogstatsd_stats).with_state(Arc::new(stats)),
    );
}

async fn dogstatsd_stats(State(stats): State<Arc<Option<MetricStats>>>) -> Response {
    let refuse = |message: &str, kind: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": message, "error_type": kind})),
        )
            .into_response()
    };
    match stats.as_ref() {
        None => refuse(
            "Dogstatsd not enabled in the Agent configuration",
            "no server",
        ),
        Some(stats) if !stats.enabled() => refuse(
            "Dogstatsd metrics stats not enabled in the Agent configuration",
            "not enabled",
        ),
        Some(stats) => Json(stats.to_json()).into_response(),
    }
}

/// The `dogstatsd_metrics_stats_enable` runtime setting, switching `stats` at once.
pub fn stats_setting(config: Arc<Config>, stats: MetricStats) -> ConfigSetting {
    ConfigSetting::new(
        config,
        "dogstatsd_metrics_stats_enable",
        "Count every DogStatsD metric name + tags for dogstatsd-stats.",
        move |value| {
            let enabled = value
                .as_bool()
                .ok_or_else(|| format!("{value} is not true or false"))?;
            stats.set_enabled(enabled);
            Ok(())
        },
    )
}
