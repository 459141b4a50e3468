//! Errors of the IPC security layer. Each names the file involved and, where there is one, the fix.

use std::path::PathBuf;

/// Why a token or certificate could not be loaded or created, or a TLS config built.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// The artifact's file (or its directory) could not be read or written.
    #[error("{what} at {path}: {action} failed: {source}")]
    Io {
        /// Which artifact ("auth token", "IPC certificate").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was being done ("read", "create directory", "write temporary file", ...).
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The artifact's file is not found (read-only loading, as the CLI does).
    #[error(
        "{what} not found at {path}: it is created by the first `dogd run`; start the daemon (as this user) or point {key} at the right file"
    )]
    Missing {
        /// Which artifact.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The config key that sets its path.
        key: &'static str,
    },
    /// The artifact's file grants access to group or others.
    #[error(
        "{what} at {path} is accessible by group/others (mode {mode:04o}): run `chmod 600 {path}`"
    )]
    Permissions {
        /// Which artifact.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The auth token file holds something that is not a usable token.
    #[error(
        "auth token at {path} is invalid: {reason}; delete the file and restart dogd to create a new one"
    )]
    InvalidToken {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The certificate file is corrupt. It is never replaced automatically: other processes may
    /// have pinned it.
    #[error(
        "IPC certificate at {path} is corrupt: {reason}; delete the file and restart dogd to create a new one"
    )]
    CorruptCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Generating a token or certificate failed (the OS random source, the key generator).
    #[error("cannot generate {what}: {reason}")]
    Generate {
        /// Which artifact.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A TLS configuration could not be built from the certificate.
    #[error("cannot build the {side} TLS configuration: {source}")]
    Tls {
        /// `server` or `client`.
        side: &'static str,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },
}
