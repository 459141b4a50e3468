//! Talking to the running daemon: the IPC client, a one-shot runtime, and error reporting.

use std::future::Future;
use std::process::ExitCode;

use dogd_config::{ApiServerConfig, Config};
use dogd_ipc::{ClientError, IpcClient, IpcResponse};

/// Why a remote command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The client could not be set up (token or certificate missing or invalid).
    #[error(transparent)]
    Setup(#[from] dogd_ipc::IpcError),
    /// The request failed.
    #[error(transparent)]
    Request(#[from] ClientError),
    /// The daemon answered with an error status.
    #[error("dogd answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: http::StatusCode,
        /// The body, as text.
        body: String,
    },
    /// The daemon's answer could not be read.
    #[error("unexpected answer from dogd: {0}")]
    Decode(String),
    /// The local runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl RemoteError {
    /// Whether the daemon is simply not running.
    pub(crate) fn is_not_running(&self) -> bool {
        matches!(self, Self::Request(ClientError::NotRunning { .. }))
    }
}

/// A client for the daemon the configuration describes.
pub(crate) fn client(config: &Config) -> Result<IpcClient, RemoteError> {
    let api = ApiServerConfig::from_config(config)
        .map_err(|error| RemoteError::Decode(error.to_string()))?;
    Ok(IpcClient::from_config(&api)?)
}

/// Runs a future to completion on a small runtime (CLI commands do one exchange).
pub(crate) fn block_on<T>(
    future: impl Future<Output = Result<T, RemoteError>>,
) -> Result<T, RemoteError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RemoteError::Runtime)?
        .block_on(future)
}

/// Fails on a non-2xx answer.
pub(crate) fn success(response: IpcResponse) -> Result<IpcResponse, RemoteError> {
    if response.status.is_success() {
        Ok(response)
    } else {
        Err(RemoteError::Status {
            status: response.status,
            body: response.text(),
        })
    }
}

/// Parses a JSON answer.
pub(crate) fn json<T: serde::de::DeserializeOwned>(
    response: &IpcResponse,
) -> Result<T, RemoteError> {
    serde_json::from_slice(&response.body)
        .map_err(|error| RemoteError::Decode(format!("{error}: {}", response.text())))
}

/// Prints the error and returns a failing exit code.
pub(crate) fn fail(error: &RemoteError) -> ExitCode {
    eprintln!("dogd: {error}");
    ExitCode::FAILURE
}
