//! Everyday commands against the running daemon: status, health, config, secret, flare, stop.
//! Human text by default, JSON with `--json`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use dogd_config::{Config, GeneralConfig, LogConfig};
use dogd_ipc::IpcClient;
use serde_json::Value;

use super::remote::{self, RemoteError};

/// `--json`.
#[derive(Debug, clap::Args)]
pub(crate) struct JsonArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `dogd status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// One section (`core`, `dogstatsd`, ...); all when omitted.
    section: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `dogd config`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    action: Option<ConfigAction>,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigAction {
    /// Validate the local configuration and print every effective setting with its source,
    /// without asking the daemon.
    Check(super::config::CheckArgs),
    /// Print a runtime setting's current value.
    Get {
        /// The setting (e.g. `log_level`).
        setting: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a runtime setting; it takes effect at once.
    Set {
        /// The setting (e.g. `log_level`).
        setting: String,
        /// The new value.
        value: String,
    },
    /// List the runtime settings with their values and sources.
    ListRuntime(JsonArgs),
}

/// Arguments of `dogd secret`.
#[derive(Debug, clap::Args)]
pub(crate) struct SecretArgs {
    #[command(subcommand)]
    action: Option<SecretAction>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum SecretAction {
    /// Re-run secret_backend_command and use the new values.
    Refresh,
}

/// Runs one exchange with the daemon and prints what `render` makes of the answer.
fn exchange(
    config: &Config,
    call: impl AsyncFnOnce(IpcClient) -> Result<dogd_ipc::IpcResponse, dogd_ipc::ClientError>,
    render: impl FnOnce(&dogd_ipc::IpcResponse) -> Result<String, RemoteError>,
) -> ExitCode {
    let answered = remote::block_on(async {
        let client = remote::client(config)?;
        remote::success(call(client).await?)
    });
    match answered.and_then(|response| render(&response)) {
        Ok(text) => {
            super::emit(&text);
            ExitCode::SUCCESS
        }
        Err(error) => remote::fail(&error),
    }
}

fn body_text(response: &dogd_ipc::IpcResponse) -> Result<String, RemoteError> {
    let mut text = response.text();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

fn body_json(response: &dogd_ipc::IpcResponse) -> Result<String, RemoteError> {
    remote::json::<Value>(response).map(|value| pretty(&value))
}

pub(crate) fn status(config: &Config, args: &StatusArgs) -> ExitCode {
    let format = if args.json { "json" } else { "text" };
    let path = match &args.section {
        Some(section) => format!("/agent/{section}/status?format={format}"),
        None => format!("/agent/status?format={format}"),
    };
    let render = if args.json { body_json } else { body_text };
    exchange(config, async move |client| client.get(&path).await, render)
}

pub(crate) fn health(config: &Config, args: &JsonArgs) -> ExitCode {
    let answered = remote::block_on(async {
        let client = remote::client(config)?;
        let response = remote::success(client.get("/agent/status/health").await?)?;
        remote::json::<Value>(&response)
    });
    let report = match answered {
        Ok(report) => report,
        Err(error) => return remote::fail(&error),
    };
    let names = |key: &str| -> Vec<String> {
        report[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (healthy, unhealthy) = (names("Healthy"), names("Unhealthy"));
    if args.json {
        super::emit(&pretty(&report));
    } else {
        let mut text = String::from("Agent health: ");
        text.push_str(if unhealthy.is_empty() {
            "PASS\n"
        } else {
            "FAIL\n"
        });
        text.push_str(&format!(
            "=== {} healthy components ===\n{}\n",
            healthy.len(),
            healthy.join(", ")
        ));
        if !unhealthy.is_empty() {
            text.push_str(&format!(
                "=== {} unhealthy components ===\n",
                unhealthy.len()
            ));
            for name in &unhealthy {
                let reason = report["Reasons"][name.as_str()].as_str().unwrap_or("");
                text.push_str(&format!("{name}: {reason}\n"));
            }
        }
        super::emit(&text);
    }
    if unhealthy.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub(crate) fn config(config: &Config, args: &ConfigArgs) -> ExitCode {
    match &args.action {
        None => exchange(
            config,
            async |client| client.get("/agent/config").await,
            body_text,
        ),
        Some(ConfigAction::Check(check)) => super::config::check(config, check),
        Some(ConfigAction::Get { setting, json }) => {
            let path = format!("/agent/config/{setting}");
            let json = *json;
            exchange(
                config,
                async move |client| client.get(&path).await,
                move |response| {
                    let value: Value = remote::json(response)?;
                    Ok(if json {
                        pretty(&value)
                    } else {
                        format!(
                            "{setting} is set to: {} (source: {})\n",
                            shown(&value["value"]),
                            shown(&value["source"])
                        )
                    })
                },
            )
        }
        Some(ConfigAction::Set { setting, value }) => {
            let path = format!("/agent/config/{setting}");
            let value = value.clone();
            exchange(
                config,
                async move |client| client.post_form(&path, &[("value", &value)]).await,
                |response| {
                    let value: Value = remote::json(response)?;
                    Ok(format!(
                        "{setting} is now set to: {}\n",
                        shown(&value["value"])
                    ))
                },
            )
        }
        Some(ConfigAction::ListRuntime(json)) => {
            let json = json.json;
            exchange(
                config,
                async |client| client.get("/agent/config/list-runtime").await,
                move |response| {
                    let value: Value = remote::json(response)?;
                    if json {
                        return Ok(pretty(&value));
                    }
                    let mut text =
                        String::from("=== Settings that can be changed at runtime ===\n");
                    for (name, setting) in value.as_object().into_iter().flatten() {
                        text.push_str(&format!(
                            "{name:<32} {:<12} ({})  {}\n",
                            shown(&setting["value"]),
                            shown(&setting["source"]),
                            shown(&setting["description"])
                        ));
                    }
                    Ok(text)
                },
            )
        }
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn secret(config: &Config, args: &SecretArgs) -> ExitCode {
    match args.action {
        Some(SecretAction::Refresh) => exchange(
            config,
            async |client| client.post_form("/agent/secret/refresh", &[]).await,
            |response| {
                let value: Value = remote::json(response)?;
                Ok(format!(
                    "Refreshed {} secrets\n",
                    shown(&value["refreshed"])
                ))
            },
        ),
        None if args.json => exchange(
            config,
            async |client| client.get("/agent/secrets?format=json").await,
            body_json,
        ),
        None => exchange(
            config,
            async |client| client.get("/agent/secrets?format=text").await,
            body_text,
        ),
    }
}

pub(crate) fn flare(config: &Config) -> ExitCode {
    let answered = remote::block_on(async {
        let client = remote::client(config)?.timeout(Duration::from_secs(300));
        let response = remote::success(client.post_form("/agent/flare", &[]).await?)?;
        remote::json::<String>(&response)
    });
    match answered {
        Ok(path) => {
            super::emit(&format!("Flare written by the daemon: {path}\n"));
            ExitCode::SUCCESS
        }
        Err(error) if error.is_not_running() || matches!(error, RemoteError::Setup(_)) => {
            eprintln!(
                "dogd: {error}\ndogd: building a local flare instead (no status, health or telemetry)"
            );
            local_flare(config)
        }
        Err(error) => remote::fail(&error),
    }
}

/// A flare from what is on disk: the configuration, the log file, the environment.
fn local_flare(config: &Config) -> ExitCode {
    let (Ok(general), Ok(log)) = (
        GeneralConfig::from_config(config),
        LogConfig::from_config(config),
    ) else {
        eprintln!("dogd: cannot read the configuration for a local flare");
        return ExitCode::FAILURE;
    };
    let scrubber = dogd_scrubber::Scrubber::new();
    scrubber.add_known_secrets(config.secret_values());
    let mut entries = vec![
        dogd_ops::FlareEntry::text(
            "config/datadog.yaml",
            dogd_ops::config_yaml(config, &scrubber)
                .unwrap_or_else(|reason| format!("# {reason}\n")),
        ),
        dogd_ops::FlareEntry::text(
            "FLARE_NOTE.txt",
            "dogd was not running when this flare was made: it has no status, health or telemetry.\n",
        ),
    ];
    entries.extend(dogd_ops::common_entries(
        &crate::run::build_facts(),
        log.file.as_deref(),
        &[],
    ));
    let hostname = general
        .hostname
        .clone()
        .unwrap_or_else(|| "local".to_owned());
    match dogd_ops::write_flare(
        &general.run_path.join("flares"),
        &hostname,
        &entries,
        &scrubber,
    ) {
        Ok(path) => {
            super::emit(&format!(
                "Local flare written (dogd is not running): {}\n",
                path.display()
            ));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dogd: {error}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn stop(config: &Config) -> ExitCode {
    let Ok(general) = GeneralConfig::from_config(config) else {
        eprintln!("dogd: cannot read the configuration");
        return ExitCode::FAILURE;
    };
    let pid_file = general.run_path.join(crate::run::PID_FILE);
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok());
    let asked = remote::block_on(async {
        let client = remote::client(config)?;
        remote::success(client.post_form("/agent/stop", &[]).await?)
    });
    if let Err(error) = asked {
        return remote::fail(&error);
    }
    // Wait for the process itself to exit, not just for the request to be accepted.
    let Some(pid) = pid else {
        super::emit("dogd is stopping (no pid file to wait on)\n");
        return ExitCode::SUCCESS;
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while process_exists(pid) {
        if Instant::now() > deadline {
            eprintln!("dogd: process {pid} is still running after 120 s");
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    super::emit(&format!("dogd (pid {pid}) stopped\n"));
    ExitCode::SUCCESS
}

fn process_exists(pid: i32) -> bool {
    // A process that has exited but not been reaped by its parent yet (a zombie) has finished.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        return !matches!(state, Some("Z" | "X"));
    }
    // Signal 0 checks existence without sending anything; EPERM still means it exists.
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

pub(crate) fn dogstatsd_stats(config: &Config, args: &JsonArgs) -> ExitCode {
    let answered = remote::block_on(async {
        let client = remote::client(config)?;
        Ok(client.get("/agent/dogstatsd-stats").await?)
    });
    let response = match answered {
        Ok(response) => response,
        Err(error) => return remote::fail(&error),
    };
    let Ok(value) = remote::json::<Value>(&response) else {
        return remote::fail(&RemoteError::Decode(response.text()));
    };
    if !response.status.is_success() {
        let reason = value["error"].as_str().unwrap_or("unexpected answer");
        eprintln!("dogd: {reason}");
        if value["error_type"] == "not enabled" {
            eprintln!(
                "dogd: turn it on with `dogd config set dogstatsd_metrics_stats_enable true`"
            );
        }
        return ExitCode::FAILURE;
    }
    if args.json {
        super::emit(&pretty(&value));
        return ExitCode::SUCCESS;
    }
    let mut rows: Vec<(&str, &str, u64, &str)> = value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, entry)| {
            (
                entry["name"].as_str().unwrap_or(""),
                entry["tags"].as_str().unwrap_or(""),
                entry["count"].as_u64().unwrap_or(0),
                entry["last_seen"].as_str().unwrap_or(""),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    let name_width = rows.iter().map(|row| row.0.len()).max().unwrap_or(0).max(6);
    let tags_width = rows.iter().map(|row| row.1.len()).max().unwrap_or(0).max(4);
    let mut text = format!(
        "{:<name_width$} | {:<tags_width$} | {:>8} | Last Seen\n",
        "Metric", "Tags", "Count"
    );
    text.push_str(&format!("{}\n", "-".repeat(name_width + tags_width + 36)));
    for (name, tags, count, seen) in rows {
        text.push_str(&format!(
            "{name:<name_width$} | {tags:<tags_width$} | {count:>8} | {seen}\n"
        ));
    }
    super::emit(&text);
    ExitCode::SUCCESS
}
