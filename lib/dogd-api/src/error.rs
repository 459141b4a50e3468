//! Errors of the API servers.

/// Why an API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The port is taken by another process.
    #[error(
        "{key} {port} ({host}) already in use: another process (maybe another dogd or agent) listens there; stop it or change {key}"
    )]
    PortInUse {
        /// The config key of the port (`cmd_port`, `agent_ipc.port`).
        key: &'static str,
        /// The host.
        host: String,
        /// The port.
        port: u16,
    },
    /// The host is not a loopback address, which the agent refuses for its local APIs.
    #[error(
        "{key} is set to {host}, which is not a local address: the API must listen on localhost or a loopback IP"
    )]
    NotLocal {
        /// The config key of the host.
        key: &'static str,
        /// The host.
        host: String,
    },
    /// The host name does not resolve.
    #[error("cannot resolve {key} {host}: {source}")]
    Resolve {
        /// The config key of the host.
        key: &'static str,
        /// The host.
        host: String,
        /// The resolver error.
        #[source]
        source: std::io::Error,
    },
    /// Binding failed for another reason.
    #[error("cannot listen on {host}:{port} ({key}): {source}")]
    Bind {
        /// The config key of the port.
        key: &'static str,
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
