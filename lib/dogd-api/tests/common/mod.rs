//! An API server started in-process on ephemeral ports, and raw clients for it.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dogd_api::{ApiBuilder, ApiServer, ApiSettings, BuildInfo, ListenAddrs};
use dogd_config::{ApiServerConfig, Config, Environment};
use dogd_core::{HealthRegistry, StopRequest, Supervisor};
use dogd_ipc::{AuthToken, ClientAuth, IpcCert, IpcClient, client_config};
use dogd_telemetry::Registry;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub const HOSTNAME: &str = "test-host.example.com";

/// A running API component with its credentials.
pub struct TestServer {
    pub cmd: SocketAddr,
    pub addrs: ListenAddrs,
    pub token: AuthToken,
    pub cert: IpcCert,
    pub telemetry: Registry,
    pub dir: tempfile::TempDir,
    supervisor: Supervisor,
}

/// Knobs tests turn.
pub struct Options {
    pub yaml: String,
    pub drain_grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            yaml: "cmd_port: 0\n".to_owned(),
            drain_grace: Duration::from_secs(2),
        }
    }
}

impl TestServer {
    pub async fn start(register: impl FnOnce(&mut ApiBuilder)) -> Self {
        Self::start_with(Options::default(), register)
            .await
            .expect("API starts")
    }

    pub async fn start_with(
        options: Options,
        register: impl FnOnce(&mut ApiBuilder),
    ) -> Result<Self, dogd_core::StartError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let yaml = format!("run_path: {}\n{}", dir.path().display(), options.yaml);
        let config = Config::from_yaml(
            &dir.path().join("datadog.yaml"),
            &yaml,
            &Environment::default(),
        )
        .expect("config");
        let api = ApiServerConfig::from_config(&config).expect("api config");
        let token = AuthToken::load_or_create(&api.auth_token_path).expect("token");
        let cert = IpcCert::load_or_create(&api.ipc_cert_path, &[]).expect("cert");
        let telemetry = Registry::new();
        let mut builder = ApiBuilder::new();
        register(&mut builder);
        let server = ApiServer::new(
            ApiSettings {
                api,
                token: token.clone(),
                cert: cert.clone(),
                hostname: HOSTNAME.to_owned(),
                build: BuildInfo {
                    version: "1.2.3".to_owned(),
                    commit: "abcdef".to_owned(),
                },
                telemetry: telemetry.clone(),
                config: Arc::new(config),
                drain_grace: options.drain_grace,
                listen: ListenAddrs::default(),
            },
            builder,
        )
        .expect("build API");
        let addrs = server.listen_addrs();
        let mut supervisor = Supervisor::new(
            Duration::from_secs(10),
            HealthRegistry::new(),
            StopRequest::new(),
        );
        supervisor.register(server);
        supervisor.start().await?;
        let cmd = addrs.cmd().expect("CMD address once started");
        Ok(Self {
            cmd,
            addrs,
            token,
            cert,
            telemetry,
            dir,
            supervisor,
        })
    }

    pub async fn stop(mut self) -> dogd_core::StopReport {
        self.supervisor.stop().await
    }

    /// The CLI's client: IPC certificate and token.
    pub fn client(&self) -> IpcClient {
        IpcClient::new("127.0.0.1", self.cmd.port(), self.token.clone(), &self.cert)
            .expect("client")
    }

    /// A client sending `token` without presenting a client certificate.
    pub fn token_client(&self, token: &AuthToken) -> IpcClient {
        let tls = client_config(&self.cert, ClientAuth::TokenOnly, &[b"h2"]).expect("tls");
        IpcClient::with_tls("127.0.0.1", self.cmd.port(), token.clone(), tls)
    }

    /// A TLS client configuration pinned to the server, presenting `auth`.
    pub fn tls(&self, auth: ClientAuth, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        client_config(&self.cert, auth, alpn).expect("tls")
    }

    /// A stranger's certificate (self-signed, not the IPC one).
    pub fn stranger(&self) -> IpcCert {
        IpcCert::load_or_create(&self.dir.path().join("stranger.pem"), &[]).expect("stranger cert")
    }

    pub fn wrong_token() -> AuthToken {
        AuthToken::from_value(&"f".repeat(64)).expect("token")
    }

    /// Renders the telemetry registry.
    pub fn metrics(&self) -> String {
        self.telemetry.render_prometheus()
    }
}

/// A raw HTTP exchange with full control of headers and protocol.
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {}", self.text()))
    }

    /// The gRPC status from headers (trailers-only) or trailers.
    pub fn grpc_status(&self) -> Option<String> {
        self.headers
            .get("grpc-status")
            .or_else(|| self.trailers.as_ref()?.get("grpc-status"))
            .map(|value| value.to_str().unwrap_or("?").to_owned())
    }
}

pub async fn raw_request(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    request: Request<Full<Bytes>>,
) -> RawResponse {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let h2 = tls.alpn_protocols.first().is_some_and(|p| p == b"h2");
    let stream = TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let io = TokioIo::new(stream);
    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2");
        tokio::spawn(conn);
        sender.send_request(request).await.expect("h2 request")
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("http1");
        tokio::spawn(conn);
        sender.send_request(request).await.expect("http1 request")
    };
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    RawResponse {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

/// A request builder with optional Authorization.
pub fn request(
    method: Method,
    addr: SocketAddr,
    path: &str,
    authorization: Option<&str>,
) -> http::request::Builder {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("https://{addr}{path}"));
    if let Some(value) = authorization {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    builder
}

pub fn bearer(token: &AuthToken) -> String {
    format!("Bearer {}", token.expose())
}
