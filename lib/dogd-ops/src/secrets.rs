//! The glue between `ENC[]` values in the configuration and the secret backend: resolution at
//! start, refresh at run time, and the debug listing (handles and where they are used, never
//! values).

use std::sync::Arc;
use std::time::Duration;

use dogd_config::{Config, ConfigError, RawConfig, SecretValues};
use dogd_scrubber::Scrubber;
use dogd_secrets::{BackendConfig, SecretBackend, SecretError};
use serde_json::{Value, json};

/// Why secrets could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The configuration names secrets but no backend.
    #[error("datadog.yaml uses ENC[] secrets ({handles}) but secret_backend_command is not set")]
    NoBackend {
        /// The handles, comma-separated.
        handles: String,
    },
    /// A backend setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] SecretError),
}

/// The backend described by the configuration's `secret_backend_*` settings, if any.
pub fn backend_for(raw: &RawConfig) -> Result<Option<SecretBackend>, ConfigError> {
    let Some(command) = raw
        .declared("secret_backend_command")?
        .and_then(|value| value.as_str().map(str::to_owned))
        .filter(|command| !command.is_empty())
    else {
        return Ok(None);
    };
    let arguments = raw
        .declared("secret_backend_arguments")?
        .and_then(|value| serde_json::from_value::<Vec<String>>(value).ok())
        .unwrap_or_default();
    let timeout = raw
        .declared("secret_backend_timeout")?
        .and_then(|value| value.as_f64())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .unwrap_or(Duration::from_secs(30));
    let output_max_size = raw
        .declared("secret_backend_output_max_size")?
        .and_then(|value| value.as_u64())
        .and_then(|size| usize::try_from(size).ok())
        .unwrap_or(1024 * 1024);
    let mut config = BackendConfig::new(command);
    config.arguments = arguments;
    config.timeout = timeout;
    config.output_max_size = output_max_size;
    Ok(Some(SecretBackend::new(config)))
}

/// Resolves every `ENC[]` handle of `raw` (blocking: runs the backend). No handles, no backend run.
pub fn resolve(raw: &RawConfig) -> Result<SecretValues, SecretsError> {
    let handles: Vec<String> = raw.secret_handles().into_keys().collect();
    if handles.is_empty() {
        return Ok(SecretValues::new());
    }
    let backend = backend_for(raw)?.ok_or_else(|| SecretsError::NoBackend {
        handles: handles.join(", "),
    })?;
    Ok(backend.fetch(&handles)?)
}

/// Secrets at run time: listing and refresh.
#[derive(Clone, Debug)]
pub struct SecretsService {
    config: Arc<Config>,
    scrubber: Scrubber,
}

impl SecretsService {
    /// A service over the daemon's configuration; resolved values are given to `scrubber`.
    pub fn new(config: Arc<Config>, scrubber: Scrubber) -> Self {
        Self { config, scrubber }
    }

    /// The handles in use and where, plus the backend command: never values.
    pub fn info(&self) -> Value {
        let command = self
            .config
            .raw()
            .declared("secret_backend_command")
            .ok()
            .flatten();
        let handles: serde_json::Map<String, Value> = self
            .config
            .secret_handles()
            .iter()
            .map(|(handle, used_in)| (handle.clone(), json!({ "used_in": used_in })))
            .collect();
        json!({ "backend_command": command, "handles": handles })
    }

    /// The listing as text, like the agent's `secret` command.
    pub fn info_text(&self) -> String {
        let info = self.info();
        let mut out = String::new();
        match info["backend_command"].as_str() {
            Some(command) => out.push_str(&format!("Secret backend: {command}\n")),
            None => out.push_str("Secret backend: none (secret_backend_command is not set)\n"),
        }
        let handles = self.config.secret_handles();
        out.push_str(&format!("Number of secrets decrypted: {}\n", handles.len()));
        for (handle, used_in) in handles {
            out.push_str(&format!("- '{handle}': used in {}\n", used_in.join(", ")));
        }
        out
    }

    /// Re-runs the backend for every handle and swaps the values in (blocking). Returns how many
    /// secrets were refreshed.
    pub fn refresh(&self) -> Result<usize, SecretsError> {
        let values = resolve(self.config.raw())?;
        self.scrubber.add_known_secrets(values.values().cloned());
        self.config.refresh_secrets(&values)?;
        tracing::info!("refreshed {} secrets", values.len());
        Ok(values.len())
    }
}
