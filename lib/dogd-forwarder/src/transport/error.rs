//! Errors of the forwarder. Each names the setting or file involved and, where there is one, the
//! fix.

use std::path::PathBuf;

/// Why the forwarder could not be built, or could not persist its queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForwarderError {
    /// The intake URL (from `dd_url` or `site`) is not a usable http(s) URL.
    #[error(
        "invalid {key} {value:?}: {reason}; set {key} to an http(s) URL such as https://app.datadoghq.com (dd_url) or a site such as datadoghq.com (site)"
    )]
    InvalidUrl {
        /// The setting the URL came from (`dd_url` or `site`).
        key: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The agent version does not look like `MAJOR.MINOR.PATCH`; the intake host is derived from it.
    #[error(
        "invalid agent version {version:?}: expected MAJOR.MINOR.PATCH (for example 7.62.1); the intake host name is derived from it"
    )]
    InvalidAgentVersion {
        /// The version as given.
        version: String,
    },
    /// The API key cannot be sent as an HTTP header value.
    #[error(
        "api_key contains characters that cannot be sent in an HTTP header (control characters or non-ASCII); check api_key for stray whitespace, quotes or newlines"
    )]
    InvalidApiKey,
    /// A forwarder setting is out of range.
    #[error("invalid forwarder setting {key}: {reason}")]
    InvalidSetting {
        /// The setting.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Registering the forwarder's metrics failed (a name clash with another component).
    #[error("cannot register the forwarder's telemetry: {0}")]
    Telemetry(#[from] dogd_telemetry::TelemetryError),
    /// The TLS client configuration could not be built.
    #[error("cannot build the forwarder's TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// A disk queue operation failed.
    #[error(
        "forwarder disk queue at {path}: {action} failed: {source}; make the directory writable by dogd, or set forwarder_storage_max_size_in_bytes to 0 to disable the disk queue"
    )]
    Storage {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`create directory`, `write file`, ...).
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `start` was called twice.
    #[error("the forwarder was already started; build a new Forwarder to start again")]
    AlreadyStarted,
}
