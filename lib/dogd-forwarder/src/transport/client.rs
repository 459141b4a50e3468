//! The HTTP client: hyper-util's pooled client over a connector that speaks TLS (rustls with the
//! ring provider; system roots, Mozilla's as a fallback; ALPN h2 then http/1.1) for `https` and
//! plain TCP for `http` (fake intakes, tests).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::error::ForwarderError;
use super::proxy::{ProxyConfig, open_tunnel};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Response bodies beyond this are not read: the intake answers with a few bytes of JSON, and
/// only the first 1000 bytes are logged anyway.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The rustls client configuration for the intake: ring, TLS 1.2 and 1.3, the system's roots (or
/// Mozilla's when none load), ALPN `h2` then `http/1.1`.
pub(crate) fn tls_config() -> Result<Arc<ClientConfig>, ForwarderError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("forwarder: skipping a system CA certificate source: {error}");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        tracing::info!(
            "forwarder: no system CA certificates found; using the bundled Mozilla roots (webpki-roots) to verify the intake"
        );
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ForwarderError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Opens TCP connections (directly, or a tunnel through the configured proxy), and TLS over them
/// for `https` URLs.
#[derive(Clone)]
pub(crate) struct IntakeConnector {
    http: HttpConnector,
    tls: Option<TlsConnector>,
    proxy: Arc<ProxyConfig>,
}

impl IntakeConnector {
    pub(crate) fn new(
        tls: Option<Arc<ClientConfig>>,
        connect_timeout: Duration,
        proxy: Arc<ProxyConfig>,
    ) -> Self {
        let mut http = HttpConnector::new();
        // We decide the scheme; HttpConnector alone would refuse https URLs.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(20)));
        Self {
            http,
            tls: tls.map(TlsConnector::from),
            proxy,
        }
    }
}

impl tower_service::Service<Uri> for IntakeConnector {
    type Response = IntakeStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<IntakeStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme_str() == Some("https");
        let tls = self.tls.clone();
        let proxy = self.proxy.for_target(&uri).cloned();
        let first_hop = proxy
            .as_ref()
            .map_or_else(|| uri.clone(), |proxy| proxy.uri().clone());
        let connecting = tower_service::Service::call(&mut self.http, first_hop);
        Box::pin(async move {
            let mut tcp = connecting.await?;
            if let Some(proxy) = proxy {
                let host = uri.host().ok_or("URL without a host")?;
                let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
                let mut stream = tcp.into_inner();
                open_tunnel(&mut stream, &proxy, &format!("{host}:{port}")).await?;
                tcp = TokioIo::new(stream);
            }
            if !https {
                return Ok(IntakeStream::Plain(tcp));
            }
            let tls = tls.ok_or("https URL but the forwarder has no TLS configuration")?;
            let host = uri.host().ok_or("URL without a host")?;
            // IPv6 literals come bracketed in URIs; server names do not carry brackets.
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(host.to_owned())?;
            let stream = tls.connect(name, tcp.into_inner()).await?;
            Ok(IntakeStream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

/// A connection to the intake, plain or TLS (boxed: the TLS state is over a kilobyte).
pub(crate) enum IntakeStream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for IntakeStream {
    fn connected(&self) -> Connected {
        match self {
            IntakeStream::Plain(stream) => stream.connected(),
            IntakeStream::Tls(stream) => {
                let (tcp, session) = stream.inner().get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl hyper::rt::Read for IntakeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            IntakeStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            IntakeStream::Tls(stream) => Pin::new(&mut **stream).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for IntakeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            IntakeStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            IntakeStream::Tls(stream) => Pin::new(&mut **stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            IntakeStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            IntakeStream::Tls(stream) => Pin::new(&mut **stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            IntakeStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            IntakeStream::Tls(stream) => Pin::new(&mut **stream).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            IntakeStream::Plain(stream) => stream.is_write_vectored(),
            IntakeStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            IntakeStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            IntakeStream::Tls(stream) => Pin::new(&mut **stream).poll_write_vectored(cx, bufs),
        }
    }
}

/// Why a request got no HTTP answer.
#[derive(Clone, Debug)]
pub(crate) struct SendFailure {
    /// The agent's `error_type` label: `connection_failure`, `timeout` or `cant_send`.
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

/// An HTTP answer, body read (truncated).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// The pooled client with the forwarder's timeout.
#[derive(Clone)]
pub(crate) struct IntakeClient {
    client: Client<IntakeConnector, Full<Bytes>>,
    timeout: Duration,
}

impl IntakeClient {
    pub(crate) fn new(
        tls: Option<Arc<ClientConfig>>,
        timeout: Duration,
        proxy: Arc<ProxyConfig>,
    ) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(IntakeConnector::new(tls, timeout, proxy));
        Self { client, timeout }
    }

    /// Sends a request and reads the answer, all within the timeout.
    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, SendFailure> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| {
                let kind = if error.is_connect() {
                    "connection_failure"
                } else {
                    "cant_send"
                };
                SendFailure {
                    kind,
                    message: error_chain(&error),
                }
            })?;
            let status = response.status();
            // A body that fails to arrive does not change the verdict the status gave.
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            Ok(Answer { status, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_elapsed) => Err(SendFailure {
                kind: "timeout",
                message: format!("no answer within {:?} (forwarder_timeout)", self.timeout),
            }),
        }
    }
}

/// `error: cause: cause`, as hyper's errors hide the useful part in their sources.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::Response;
    use hyper_util::server::conn::auto;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    use super::*;

    /// A self-signed certificate for `localhost` and rustls configs trusting it.
    fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<ClientConfig>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        let cert = params.self_signed(&key).expect("certificate");
        let cert_der: CertificateDer<'static> = cert.der().clone();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert_der.clone()], key_der)
            .expect("server config");
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert_der).expect("root");
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The same ALPN list as the production config.
        client.alpn_protocols = tls_config().expect("tls config").alpn_protocols.clone();
        (Arc::new(server), Arc::new(client))
    }

    #[tokio::test]
    async fn https_requests_go_over_tls_and_negotiate_http2() {
        let (server_config, client_config) = tls_pair();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let acceptor = TlsAcceptor::from(server_config);
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let tls = acceptor.accept(tcp).await.expect("handshake");
            let service = hyper::service::service_fn(|request: Request<hyper::body::Incoming>| {
                let version = format!("{:?}", request.version());
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(version)))) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });

        let client = IntakeClient::new(Some(client_config), Duration::from_secs(5), Arc::default());
        let request = Request::post(format!("https://localhost:{port}/api/v2/series"))
            .body(Full::new(Bytes::from_static(b"payload")))
            .expect("request");
        let answer = client.send(request).await.expect("answer");
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], b"HTTP/2.0");
        server.abort();
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_retryable_connection_failure() {
        let (server_config, _) = tls_pair();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let acceptor = TlsAcceptor::from(server_config);
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let _ = acceptor.accept(tcp).await;
        });
        // The production config: system or Mozilla roots, which do not include our certificate.
        let client = IntakeClient::new(
            Some(tls_config().expect("tls")),
            Duration::from_secs(5),
            Arc::default(),
        );
        let request = Request::post(format!("https://localhost:{port}/api/v2/series"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let failure = client.send(request).await.expect_err("untrusted");
        assert_eq!(failure.kind, "connection_failure", "{}", failure.message);
        assert!(
            failure.message.contains("certificate"),
            "{}",
            failure.message
        );
        server.abort();
    }
}
