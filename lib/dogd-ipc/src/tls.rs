//! rustls configurations for the IPC servers and clients, all built on the IPC certificate.
//!
//! Trust is by pinning, not by a CA: a client accepts exactly the IPC certificate (byte for byte),
//! and a server identifies a client as the IPC peer when it presents exactly that certificate. The
//! TLS handshake still proves possession of the key (CertificateVerify signatures are checked).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::cert::IpcCert;
use crate::error::IpcError;

/// ALPN protocols the servers offer: gRPC needs `h2`; `http/1.1` lets plain HTTP clients negotiate.
pub const SERVER_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The one crypto provider dogd uses (ring), passed explicitly rather than installed globally.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The server configuration: the IPC certificate, TLS 1.2 minimum, ALPN `h2` + `http/1.1`. Client
/// certificates are requested but not required; [`crate::PeerIdentity`] tells whether the one
/// presented (if any) is the IPC certificate.
pub fn server_config(cert: &IpcCert) -> Result<Arc<ServerConfig>, IpcError> {
    let provider = provider();
    let tls = |source| IpcError::Tls {
        side: "server",
        source,
    };
    let verifier = Arc::new(AnyClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.cert_der().clone()], cert.key_der())
        .map_err(tls)?;
    config.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// How an IPC client authenticates at the TLS level.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// Present the IPC certificate (mTLS), as the CLI does.
    IpcCertificate,
    /// Present no client certificate; requests carry only the bearer token.
    TokenOnly,
    /// Present some other certificate (a stranger's; tests use it to check it grants nothing).
    OtherCertificate(IpcCert),
}

/// A client configuration that trusts exactly the IPC certificate, optionally presenting it.
pub fn client_config(
    cert: &IpcCert,
    auth: ClientAuth,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, IpcError> {
    let provider = provider();
    let tls = |source| IpcError::Tls {
        side: "client",
        source,
    };
    let verifier = Arc::new(PinnedServerCert {
        pinned: cert.cert_der().clone(),
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let presented = match &auth {
        ClientAuth::IpcCertificate => Some(cert),
        ClientAuth::OtherCertificate(other) => Some(other),
        ClientAuth::TokenOnly => None,
    };
    let mut config = match presented {
        Some(presented) => builder
            .with_client_auth_cert(vec![presented.cert_der().clone()], presented.key_der())
            .map_err(tls)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Accepts a server only if its certificate is byte-for-byte the pinned one. Host names and expiry
/// are deliberately not checked: the pin is stronger than both, and the file may come from an agent
/// that wrote a CA-flagged certificate WebPKI would refuse as an end entity.
#[derive(Debug)]
struct PinnedServerCert {
    pinned: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Requests a client certificate without requiring one, and accepts any certificate whose key the
/// client proves it holds. Authorization happens per request by comparing the certificate with the
/// IPC certificate; anyone else still needs the bearer token, and gets 401 rather than a failed
/// handshake.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What the server learned about a peer from the TLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerIdentity {
    /// The peer presented the IPC certificate (mTLS): authenticated without a token.
    IpcCertificate,
    /// The peer presented another certificate, or none: it must send the token.
    Anonymous,
}

impl PeerIdentity {
    /// Classifies a peer by the certificates it presented.
    pub fn of(cert: &IpcCert, presented: Option<&[CertificateDer<'_>]>) -> Self {
        match presented.and_then(<[_]>::first) {
            Some(leaf) if cert.is_this_cert(leaf) => Self::IpcCertificate,
            _ => Self::Anonymous,
        }
    }
}
