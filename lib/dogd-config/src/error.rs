//! Errors from loading or changing configuration.

use std::path::PathBuf;

/// Why the configuration could not be loaded or changed. Every message names the key, the value and
/// where the value came from, so the user can find and fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid YAML.
    #[error("config file {path} is not valid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The config file's top level is not a mapping of keys to values.
    #[error("config file {path} must hold a mapping of settings at its top level, found {found}")]
    NotAMapping {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        found: &'static str,
    },
    /// A value does not fit its key.
    #[error("invalid value for {key}: {value} (from {origin}): {reason}")]
    InvalidValue {
        /// The dotted key.
        key: String,
        /// The offending value as written (scrubbed for secret keys).
        value: String,
        /// Where it came from: the file path, `environment variable DD_X`, or `runtime`.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `ENC[handle]` value has no resolved secret.
    #[error(
        "secret ENC[{handle}] (used in {used_in}) was not resolved: set secret_backend_command to a backend that knows it"
    )]
    UnresolvedSecret {
        /// The handle.
        handle: String,
        /// Where it is used.
        used_in: String,
    },
    /// A runtime change named a key dogd does not declare.
    #[error("unknown setting {key}")]
    UnknownKey {
        /// The key.
        key: String,
    },
}
