//! An authenticated client for dogd's CMD API: HTTP/2 over TLS pinned to the IPC certificate, with
//! the bearer token (and the IPC certificate for mTLS). Used by the CLI and by tests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::cert::IpcCert;
use crate::error::IpcError;
use crate::tls::{ClientAuth, client_config};
use crate::token::AuthToken;

/// Why a request to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the address: the daemon is not running (or listens elsewhere).
    #[error(
        "dogd is not running: nothing accepts connections on {addr} ({source}); start it with `dogd run` or check cmd_host/cmd_port"
    )]
    NotRunning {
        /// `host:port`.
        addr: String,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection failed for another reason.
    #[error("cannot connect to dogd at {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (e.g. the server's certificate is not the IPC certificate).
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        /// `host:port`.
        addr: String,
        /// The handshake error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("request to {addr} failed: {source}")]
    Http {
        /// `host:port`.
        addr: String,
        /// The HTTP error.
        #[source]
        source: hyper::Error,
    },
    /// The request could not be built (bad path).
    #[error("invalid request {path}: {reason}")]
    InvalidRequest {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// No answer within the client's timeout.
    #[error("dogd at {addr} did not answer within {timeout:?}")]
    Timeout {
        /// `host:port`.
        addr: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// A response from the daemon, body fully read.
#[derive(Debug)]
pub struct IpcResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl IpcResponse {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The client. Each request uses its own connection, which suits the CLI's one-shot commands.
#[derive(Clone, Debug)]
pub struct IpcClient {
    host: String,
    port: u16,
    token: AuthToken,
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl IpcClient {
    /// A client presenting the IPC certificate (mTLS) and the token, as the CLI does.
    pub fn new(host: &str, port: u16, token: AuthToken, cert: &IpcCert) -> Result<Self, IpcError> {
        let tls = client_config(cert, ClientAuth::IpcCertificate, &[b"h2"])?;
        Ok(Self::with_tls(host, port, token, tls))
    }

    /// A client over a given TLS configuration (tests use one without a client certificate).
    pub fn with_tls(host: &str, port: u16, token: AuthToken, tls: Arc<ClientConfig>) -> Self {
        Self {
            host: connectable_host(host),
            port,
            token,
            tls,
            timeout: Duration::from_secs(60),
        }
    }

    /// A client for the daemon described by `api`, reading the token and certificate read-only.
    pub fn from_config(api: &dogd_config::ApiServerConfig) -> Result<Self, IpcError> {
        let token = AuthToken::load(&api.auth_token_path)?;
        let cert = IpcCert::load(&api.ipc_cert_path)?;
        Self::new(&api.cmd_host, api.cmd_port, token, &cert)
    }

    /// Changes how long a request may take (default 60 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `host:port` of the daemon.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The token this client sends.
    pub fn token(&self) -> &AuthToken {
        &self.token
    }

    /// Opens a TLS connection to the daemon (for callers layering their own protocol, e.g. gRPC).
    pub async fn connect_tls(&self) -> Result<TlsStream<TcpStream>, ClientError> {
        let addr = self.addr();
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                    addr: addr.clone(),
                    source,
                },
                _ => ClientError::Connect {
                    addr: addr.clone(),
                    source,
                },
            })?;
        let _ = tcp.set_nodelay(true);
        // The pinned verifier ignores the name; it only has to be syntactically valid.
        let name = ServerName::try_from(self.host.clone())
            .unwrap_or_else(|_| ServerName::try_from("localhost").expect("static name is valid"));
        TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|source| ClientError::Tls { addr, source })
    }

    /// Sends a request with the bearer token and returns the whole response.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<IpcResponse, ClientError> {
        let addr = self.addr();
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout { addr, timeout })?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Bytes)>,
    ) -> Result<IpcResponse, ClientError> {
        let addr = self.addr();
        let invalid = |reason: String| ClientError::InvalidRequest {
            path: path.to_owned(),
            reason,
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("https://{addr}{path}"))
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.token.expose()),
            );
        let payload = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|error| invalid(error.to_string()))?;

        let tls = self.connect_tls().await?;
        let http = |source| ClientError::Http {
            addr: addr.clone(),
            source,
        };
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(http)?;
        let exchange = async {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>(IpcResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        // Drive the connection on this task alongside the exchange: nothing is left running after.
        tokio::pin!(connection);
        tokio::select! {
            result = exchange => result.map_err(http),
            result = &mut connection => match result {
                Err(error) => Err(http(error)),
                Ok(()) => Err(invalid("the connection closed before the response".to_owned())),
            },
        }
    }

    /// Opens an HTTP/2 connection for gRPC: the returned channel is a tower service that tonic's
    /// generated clients accept (`AgentClient::new(channel)`). Requests still need the
    /// `authorization` metadata unless the client presents the IPC certificate.
    pub async fn grpc_channel<B>(&self) -> Result<GrpcChannel<B>, ClientError>
    where
        B: http_body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let addr = self.addr();
        let tls = self.connect_tls().await?;
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|source| ClientError::Http { addr, source })?;
        // The connection task ends when the channel (every clone of the sender) is dropped.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("IPC gRPC connection ended: {error}");
            }
        });
        Ok(GrpcChannel { sender })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<IpcResponse, ClientError> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a form body (`application/x-www-form-urlencoded`).
    pub async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<IpcResponse, ClientError> {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.request(
            Method::POST,
            path,
            Some(("application/x-www-form-urlencoded", Bytes::from(body))),
        )
        .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        json: &serde_json::Value,
    ) -> Result<IpcResponse, ClientError> {
        let body = Bytes::from(json.to_string());
        self.request(Method::POST, path, Some(("application/json", body)))
            .await
    }
}

/// An HTTP/2 connection to the daemon usable by tonic clients.
#[derive(Debug)]
pub struct GrpcChannel<B> {
    sender: hyper::client::conn::http2::SendRequest<B>,
}

impl<B> Clone for GrpcChannel<B> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
        }
    }
}

impl<B> tower_service::Service<Request<B>> for GrpcChannel<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        Box::pin(self.sender.send_request(request))
    }
}

/// A listening address like `0.0.0.0` is not connectable; the loopback of the same family is.
fn connectable_host(host: &str) -> String {
    match host {
        "" | "0.0.0.0" => "127.0.0.1".to_owned(),
        "::" | "[::]" => "::1".to_owned(),
        other => other
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    }
}

fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn wildcard_listen_addresses_connect_over_loopback() {
        assert_eq!(connectable_host("0.0.0.0"), "127.0.0.1");
        assert_eq!(connectable_host("::"), "::1");
        assert_eq!(connectable_host("[::1]"), "::1");
        assert_eq!(connectable_host("localhost"), "localhost");
    }

    #[tokio::test]
    async fn connection_refused_says_dogd_is_not_running() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = free.local_addr().expect("addr").port();
        drop(free);
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = IpcCert::load_or_create(&dir.path().join("cert.pem"), &[]).expect("cert");
        let token = AuthToken::from_value(&"t".repeat(64)).expect("token");
        let client = IpcClient::new("127.0.0.1", port, token, &cert).expect("client");
        let error = client
            .get("/agent/version")
            .await
            .expect_err("nothing listens");
        assert!(matches!(error, ClientError::NotRunning { .. }), "{error}");
        assert!(
            error.to_string().starts_with("dogd is not running"),
            "{error}"
        );
    }
}
