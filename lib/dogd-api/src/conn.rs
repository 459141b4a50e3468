//! What a request knows about the connection it arrived on.

use std::net::SocketAddr;

use dogd_ipc::PeerIdentity;

/// Per-connection facts, put into every request's extensions by the server (axum handlers read it
/// with `Extension<ConnInfo>`, tonic handlers with `request.extensions()`).
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the client presented the IPC certificate.
    pub identity: PeerIdentity,
    /// Which server accepted it.
    pub server: ServerKind,
}

/// The two local API servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// The CMD server (`cmd_port`): gRPC + `/agent`, `/check`, REST gateway.
    Cmd,
    /// The IPC config server (`agent_ipc.port`): `/config/v1/`.
    Ipc,
}

impl ServerKind {
    /// The telemetry `servername` label, as the agent uses.
    pub fn telemetry_name(self) -> &'static str {
        match self {
            Self::Cmd => "CMD",
            Self::Ipc => "IPC",
        }
    }

    /// The name in log lines, as the agent uses.
    pub fn log_name(self) -> &'static str {
        match self {
            Self::Cmd => "CMD API Server",
            Self::Ipc => "IPC API Server",
        }
    }

    /// The config key of the port, for messages.
    pub(crate) fn port_key(self) -> &'static str {
        match self {
            Self::Cmd => "cmd_port",
            Self::Ipc => "agent_ipc.port",
        }
    }

    /// The config key of the host, for messages.
    pub(crate) fn host_key(self) -> &'static str {
        match self {
            Self::Cmd => "cmd_host",
            Self::Ipc => "agent_ipc.host",
        }
    }
}
