//! Typed views of the configuration, one struct per consumer. Each field documents its key and
//! default; `from_config` is the only place those keys are read.

use std::path::PathBuf;
use std::time::Duration;

use crate::Secret;
use crate::config::Config;
use crate::error::ConfigError;
use crate::value::LogLevel;

/// Settings every part of the daemon shares.
#[derive(Clone, Debug)]
pub struct GeneralConfig {
    /// `api_key` (unset by default): the Datadog API key; unset means "write to the local sink".
    pub api_key: Option<Secret>,
    /// `site` (default `datadoghq.com`).
    pub site: String,
    /// `dd_url` (unset): overrides the intake URL derived from `site`.
    pub dd_url: Option<String>,
    /// `hostname` (unset: resolved from the OS).
    pub hostname: Option<String>,
    /// `tags` (empty): host tags.
    pub tags: Vec<String>,
    /// `env` (unset): the `env` tag.
    pub env: Option<String>,
    /// `run_path` (default: a per-user state directory).
    pub run_path: PathBuf,
    /// `shutdown_timeout` (default 30 s): per-component stop deadline.
    pub shutdown_timeout: Duration,
}

impl GeneralConfig {
    /// Reads the general settings.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            api_key: config.get_string("api_key")?.map(Secret::new),
            site: config
                .get_string("site")?
                .unwrap_or_else(|| "datadoghq.com".to_owned()),
            dd_url: config.get_string("dd_url")?,
            hostname: config.get_string("hostname")?,
            tags: config.get_string_list("tags")?,
            env: config.get_string("env")?,
            run_path: config
                .get_path("run_path")?
                .unwrap_or_else(|| std::env::temp_dir().join("dogd-state")),
            shutdown_timeout: config.get_duration("shutdown_timeout")?,
        })
    }
}

/// Logging settings.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `log_level` (default `info`).
    pub level: LogLevel,
    /// `log_file` (unset): also append logs to this file.
    pub file: Option<PathBuf>,
    /// `log_to_console` (default true): write logs to stderr.
    pub to_console: bool,
}

impl LogConfig {
    /// Reads the logging settings.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            level: config.get_log_level("log_level")?,
            file: config.get_path("log_file")?,
            to_console: config.get_bool("log_to_console")?,
        })
    }
}

/// Settings of the local API servers and their IPC credentials.
#[derive(Clone, Debug)]
pub struct ApiServerConfig {
    /// `cmd_host` (default `127.0.0.1`), or the deprecated `ipc_address` when that is set.
    pub cmd_host: String,
    /// `cmd_port` (default 5001; 0 picks a free port).
    pub cmd_port: u16,
    /// `agent_ipc.host` (default `localhost`) and `agent_ipc.port` (default 0): the IPC config server
    /// address, `None` when the port is 0 (disabled).
    pub ipc_server: Option<(String, u16)>,
    /// `agent_ipc.config_refresh_interval` (default 0 = clients do not poll).
    pub config_refresh_interval: Duration,
    /// `server_timeout` (default 30 s): deadline of each non-streaming request.
    pub server_timeout: Duration,
    /// `auth_token_file_path` (default `<run_path>/auth_token`).
    pub auth_token_path: PathBuf,
    /// `ipc_cert_file_path` (default: next to a configured `auth_token_file_path`, else
    /// `<run_path>/ipc_cert.pem`, as the agent resolves it).
    pub ipc_cert_path: PathBuf,
}

impl ApiServerConfig {
    /// Reads the API server settings; `run_path` anchors the default credential paths.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let general = GeneralConfig::from_config(config)?;
        let cmd_host = match config.get_string("ipc_address")? {
            Some(deprecated) => deprecated,
            None => config
                .get_string("cmd_host")?
                .unwrap_or_else(|| "127.0.0.1".to_owned()),
        };
        let ipc_port = config.get_port("agent_ipc.port")?;
        let ipc_server = if ipc_port == 0 {
            None
        } else {
            let host = config
                .get_string("agent_ipc.host")?
                .unwrap_or_else(|| "localhost".to_owned());
            Some((host, ipc_port))
        };
        let configured_token = config.get_path("auth_token_file_path")?;
        let ipc_cert_path = match (config.get_path("ipc_cert_file_path")?, &configured_token) {
            (Some(path), _) => path,
            (None, Some(token)) => token.parent().map_or_else(
                || PathBuf::from("ipc_cert.pem"),
                |dir| dir.join("ipc_cert.pem"),
            ),
            (None, None) => general.run_path.join("ipc_cert.pem"),
        };
        Ok(Self {
            cmd_host,
            cmd_port: config.get_port("cmd_port")?,
            ipc_server,
            config_refresh_interval: config.get_duration("agent_ipc.config_refresh_interval")?,
            server_timeout: config.get_duration("server_timeout")?,
            auth_token_path: configured_token
                .unwrap_or_else(|| general.run_path.join("auth_token")),
            ipc_cert_path,
        })
    }
}
