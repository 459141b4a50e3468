//! Operability over the API: the `/agent/` routes people use every day to run an agent (health,
//! status, config and runtime settings, secrets, flare, stop, telemetry), the status section
//! registry, flares, and the plain-HTTP telemetry endpoint.

#![warn(missing_docs)]

mod core_status;
pub mod flare;
mod recent_logs;
mod routes;
pub mod secrets;
mod telemetry_server;

use std::path::PathBuf;
use std::sync::Arc;

use dogd_config::{Config, RuntimeSettings};
use dogd_core::{HealthRegistry, StopRequest};
use dogd_scrubber::Scrubber;
use dogd_telemetry::Registry;
use serde_json::{Value, json};

pub use core_status::{BuildFacts, CoreStatus, format_uptime};
pub use dogd_api::{StatusProvider, StatusRegistry, render_section};
pub use flare::{FlareEntry, FlareError, write_flare};
pub use recent_logs::RecentLogs;
pub use routes::register;
pub use secrets::SecretsService;
pub use telemetry_server::TelemetryServer;

/// How much of the log file a flare takes.
pub const FLARE_LOG_BYTES: u64 = 10 * 1024 * 1024;

/// Everything the operability routes work with, handed over by the binary.
#[derive(Debug)]
pub struct Ops {
    /// The configuration.
    pub config: Arc<Config>,
    /// Runtime-settable settings.
    pub runtime: RuntimeSettings,
    /// Component health.
    pub health: HealthRegistry,
    /// Status sections.
    pub status: StatusRegistry,
    /// Internal telemetry.
    pub telemetry: Registry,
    /// Asks the daemon to stop.
    pub stop: StopRequest,
    /// Scrubs everything that leaves the process.
    pub scrubber: Scrubber,
    /// Secrets listing and refresh.
    pub secrets: SecretsService,
    /// Where flares are written.
    pub flare_dir: PathBuf,
    /// The log file, if logging to one.
    pub log_file: Option<PathBuf>,
    /// Recent log lines (for flares without a log file).
    pub recent_logs: RecentLogs,
    /// The reported hostname.
    pub hostname: String,
    /// Build facts.
    pub build: BuildFacts,
}

impl Ops {
    /// `{"Healthy": [...], "Unhealthy": [...]}`, the agent's shape.
    pub fn health_json(&self) -> Value {
        let report = self.health.report();
        json!({
            "Healthy": report.healthy,
            "Unhealthy": report.unhealthy.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            "Reasons": report.unhealthy.iter().map(|c| (c.name.clone(), Value::String(c.reason.clone()))).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// The effective configuration as YAML, scrubbed.
    pub fn config_yaml(&self) -> Result<String, String> {
        config_yaml(&self.config, &self.scrubber)
    }

    /// `{setting: {"description", "value", "source"}}` for every runtime setting.
    pub fn runtime_json(&self) -> Value {
        Value::Object(
            self.runtime
                .list()
                .iter()
                .map(|setting| {
                    let (value, source) = setting.current();
                    (
                        setting.name().to_owned(),
                        json!({"description": setting.description(), "value": value, "source": source.layer()}),
                    )
                })
                .collect(),
        )
    }

    /// Everything a daemon flare holds.
    pub fn flare_entries(&self) -> Vec<FlareEntry> {
        let mut entries = vec![
            FlareEntry::text(
                "config/datadog.yaml",
                self.config_yaml()
                    .unwrap_or_else(|reason| format!("# {reason}\n")),
            ),
            FlareEntry::text("runtime_settings.json", pretty(&self.runtime_json())),
            FlareEntry::text("status.log", self.status.render_all()),
            FlareEntry::text("status.json", pretty(&self.status.collect())),
            FlareEntry::text("health.json", pretty(&self.health_json())),
            FlareEntry::text("telemetry.txt", self.telemetry.render_prometheus()),
            FlareEntry::text("secrets.txt", self.secrets.info_text()),
        ];
        entries.extend(common_entries(
            &self.build,
            self.log_file.as_deref(),
            &self.recent_logs.snapshot(),
        ));
        entries
    }

    /// Writes a flare to the flare directory (blocking) and returns its path.
    pub fn write_flare(&self) -> Result<PathBuf, FlareError> {
        write_flare(
            &self.flare_dir,
            &self.hostname,
            &self.flare_entries(),
            &self.scrubber,
        )
    }
}

/// The effective configuration of `config` as YAML, scrubbed.
pub fn config_yaml(config: &Config, scrubber: &Scrubber) -> Result<String, String> {
    let yaml = serde_saphyr::to_string(&config.effective_tree())
        .map_err(|error| format!("cannot render the configuration as YAML: {error}"))?;
    Ok(scrubber.scrub_yaml(&yaml))
}

/// Flare entries both the daemon and the CLI's local flare include: version, environment, logs.
pub fn common_entries(
    build: &BuildFacts,
    log_file: Option<&std::path::Path>,
    recent: &[String],
) -> Vec<FlareEntry> {
    let mut entries = vec![
        FlareEntry::text(
            "version.json",
            pretty(
                &json!({"version": build.version, "commit": build.commit, "rustc": build.rustc}),
            ),
        ),
        FlareEntry::text("envvars.txt", dd_environment()),
    ];
    match log_file {
        Some(path) => match flare::tail_file(path, FLARE_LOG_BYTES) {
            Ok(bytes) => entries.push(FlareEntry {
                name: "logs/dogd.log".to_owned(),
                contents: bytes,
            }),
            Err(error) => entries.push(FlareEntry::text(
                "logs/README.txt",
                format!("cannot read log_file {}: {error}\n", path.display()),
            )),
        },
        None if !recent.is_empty() => {
            let mut lines = recent.join("\n");
            lines.push('\n');
            entries.push(FlareEntry::text("logs/recent.log", lines));
        }
        None => {}
    }
    entries
}

/// The `DD_*` environment variables (values scrubbed later with the whole flare).
fn dd_environment() -> String {
    let mut vars: Vec<String> = std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.starts_with("DD_")
                .then(|| format!("{name}={}", value.to_string_lossy()))
        })
        .collect();
    vars.sort();
    let mut out = vars.join("\n");
    out.push('\n');
    out
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|error| format!("cannot render: {error}"))
}
