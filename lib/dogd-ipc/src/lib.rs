//! IPC security for dogd's local APIs: the auth token, the IPC certificate, the rustls server and
//! pinned client configurations, and an authenticated client.

#![warn(missing_docs)]

mod artifact;
mod cert;
mod client;
mod error;
mod tls;
mod token;

pub use cert::{DEFAULT_HOSTS, IpcCert};
pub use client::{ClientError, GrpcChannel, IpcClient, IpcResponse};
pub use error::IpcError;
pub use tls::{ClientAuth, PeerIdentity, SERVER_ALPN, client_config, provider, server_config};
pub use token::{AuthToken, MIN_TOKEN_LEN};

/// A short fingerprint of the IPC credentials (first 4 bytes of SHA-256 over token and certificate),
/// logged at start so several processes can be seen to share the same token and certificate without
/// printing either, as the agent does.
pub fn fingerprint(token: &AuthToken, cert: &IpcCert) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(token.expose().as_bytes());
    context.update(cert.cert_der().as_ref());
    context.finish().as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
