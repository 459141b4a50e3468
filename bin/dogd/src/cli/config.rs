//! `dogd config check`: the effective configuration, with the source of each value.

use std::fmt::Write as _;
use std::process::ExitCode;

use dogd_config::{Config, schema};
use dogd_scrubber::Scrubber;
use serde_json::Value;

/// Arguments of `dogd config check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn is_secret(key: &str) -> bool {
    schema::find(key).is_some_and(|spec| spec.secret)
}

/// A value as shown in JSON: credentials redacted, everything else as it is.
fn shown_json(key: &str, value: &Value) -> Value {
    if is_secret(key) {
        Value::String(shown(key, value))
    } else {
        value.clone()
    }
}

/// A value as shown in text: credentials redacted, strings bare.
fn shown(key: &str, value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if is_secret(key) {
        dogd_config::redact(&text)
    } else {
        text
    }
}

pub(crate) fn check(config: &Config, args: &CheckArgs) -> ExitCode {
    // What leaves the process goes through the scrubber, like every other config dump: keys not
    // marked secret can still hold credentials (`http://user:password@proxy`).
    let scrubber = Scrubber::new();
    scrubber.add_known_secrets(config.secret_values());
    let settings = config.settings();
    if args.json {
        let entries: serde_json::Map<String, Value> = settings
            .iter()
            .map(|(key, setting)| {
                let entry = serde_json::json!({
                    "value": shown_json(key, &setting.value),
                    "source": setting.source.layer(),
                    "origin": setting.source.to_string(),
                });
                (key.clone(), entry)
            })
            .collect();
        let doc = serde_json::json!({
            "config_file": config.file_path().map(|path| path.display().to_string()),
            "settings": entries,
        });
        super::emit(&scrubber.scrub_str(&format!("{doc:#}\n")));
        return ExitCode::SUCCESS;
    }
    let mut out = String::new();
    match config.file_path() {
        Some(path) => {
            let _ = writeln!(out, "Config file: {}", path.display());
        }
        None => out.push_str("Config file: none (built-in defaults and environment)\n"),
    }
    for warning in config.warnings() {
        let _ = writeln!(out, "Warning: {warning}");
    }
    out.push_str("Configuration is valid.\n\n");
    let width = settings.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    for (key, setting) in &settings {
        let _ = writeln!(
            out,
            "{key:<width$}  {:<40}  {}",
            shown(key, &setting.value),
            setting.source
        );
    }
    super::emit(&scrubber.scrub_str(&out));
    ExitCode::SUCCESS
}
