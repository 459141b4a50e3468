//! The API component: binds the CMD server (and the IPC config server when enabled), serves each
//! TLS connection with HTTP/2 and HTTP/1.1, and drains connections on stop.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use dogd_config::{ApiServerConfig, Config};
use dogd_core::{BoxError, Component, StartContext};
use dogd_ipc::{AuthToken, IpcCert, PeerIdentity};
use dogd_proto::datadog::api::v1::agent_secure_server::AgentSecureServer;
use dogd_proto::datadog::api::v1::agent_server::AgentServer;
use dogd_telemetry::{Counter, Registry, TelemetryError};
use http::{HeaderMap, Request, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::auth::AuthState;
use crate::builder::{ApiBuilder, RouteKind};
use crate::conn::{ConnInfo, ServerKind};
use crate::error::ApiError;
use crate::gate::GateLayer;
use crate::grpc::{HostnameService, SecureRouter};
use crate::observe::Observer;
use crate::routes::BuildInfo;
use crate::timeout::RequestTimeout;

/// The agent's gRPC message size limit (`cluster_agent.cluster_tagger.grpc_max_message_size`).
pub const GRPC_MAX_MESSAGE_SIZE: usize = 4 << 20;

/// A TLS handshake that takes longer is abandoned (slow or stuck clients must not pile up).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the API component needs, built by the binary.
#[derive(Debug)]
pub struct ApiSettings {
    /// Listen addresses and timeouts.
    pub api: ApiServerConfig,
    /// The bearer token.
    pub token: AuthToken,
    /// The IPC certificate (server certificate, and the client certificate accepted for mTLS).
    pub cert: IpcCert,
    /// The hostname served by `/agent/hostname` and `GetHostname`.
    pub hostname: String,
    /// Version facts for `/agent/version`.
    pub build: BuildInfo,
    /// Where request telemetry goes.
    pub telemetry: Registry,
    /// The configuration, for the IPC config server.
    pub config: Arc<Config>,
    /// How long open connections may finish in-flight work on stop before being closed.
    pub drain_grace: Duration,
    /// Filled in with the bound addresses when the servers start (others, e.g. the status page,
    /// keep a clone).
    pub listen: ListenAddrs,
}

/// The addresses the servers actually listen on (port 0 picks one), known once started.
#[derive(Clone, Debug, Default)]
pub struct ListenAddrs {
    cmd: Arc<OnceLock<SocketAddr>>,
    ipc: Arc<OnceLock<SocketAddr>>,
}

impl ListenAddrs {
    /// The CMD server's address, once started.
    pub fn cmd(&self) -> Option<SocketAddr> {
        self.cmd.get().copied()
    }

    /// The IPC config server's address, once started (and when enabled).
    pub fn ipc(&self) -> Option<SocketAddr> {
        self.ipc.get().copied()
    }
}

/// One server's request handling: an HTTP router and a gRPC router (each behind its gate).
#[derive(Debug)]
struct App {
    server: ServerKind,
    http: Router,
    grpc: Option<Router>,
}

/// gRPC is told apart from everything else by its content type.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

impl App {
    async fn handle(
        self: Arc<Self>,
        conn: ConnInfo,
        request: Request<Incoming>,
    ) -> Result<axum::response::Response, Infallible> {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(conn);
        let router = match &self.grpc {
            Some(grpc) if is_grpc(request.headers()) => grpc.clone(),
            _ => self.http.clone(),
        };
        // Every route and fallback sits behind the gate, which records the request.
        router.oneshot(request).await
    }
}

/// The API component (`api`).
pub struct ApiServer {
    api: ApiServerConfig,
    cert: IpcCert,
    tls: TlsAcceptor,
    cmd: Arc<App>,
    ipc: Option<Arc<App>>,
    addrs: ListenAddrs,
    handshake_failures: [Counter; 2],
    drain_grace: Duration,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("cmd", &(&self.api.cmd_host, self.api.cmd_port))
            .field("ipc", &self.api.ipc_server)
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// Builds both servers' request handling from the settings and the routes components
    /// registered. Nothing is bound yet.
    pub fn new(settings: ApiSettings, mut builder: ApiBuilder) -> Result<Self, ApiBuildError> {
        let tls = dogd_ipc::server_config(&settings.cert).map_err(ApiBuildError::Tls)?;
        let hostname: Arc<str> = Arc::from(settings.hostname.as_str());
        let hostname_service = Arc::new(HostnameService {
            hostname: hostname.clone(),
        });
        let secure = Arc::new(SecureRouter::new(std::mem::take(&mut builder.secure)));
        crate::routes::register(&mut builder, settings.build.clone(), hostname);
        crate::gateway::register(&mut builder, hostname_service.clone(), secure.clone());

        let observer = Observer::new(&settings.telemetry).map_err(ApiBuildError::Telemetry)?;
        let allowed_hosts = allowed_hosts(&settings.api);
        let http_auth = Arc::new(AuthState {
            token: settings.token.clone(),
            grpc: false,
            allowed_hosts: allowed_hosts.clone(),
        });
        let grpc_auth = Arc::new(AuthState {
            token: settings.token.clone(),
            grpc: true,
            allowed_hosts,
        });

        let server_timeout = settings.api.server_timeout;
        let streaming: Arc<[String]> = builder
            .route_names
            .iter()
            .filter(|(_, kind)| *kind == RouteKind::Streaming)
            .map(|(path, _)| path.clone())
            .collect();
        let http = std::mem::take(&mut builder.bounded)
            .merge(std::mem::take(&mut builder.streaming))
            .fallback(crate::routes::not_found)
            .layer(GateLayer {
                auth: http_auth.clone(),
                timeout: Some(RequestTimeout {
                    limit: server_timeout,
                    exempt: streaming,
                }),
                observer: observer.clone(),
            });

        let grpc = tonic::service::Routes::new(
            AgentServer::from_arc(hostname_service)
                .max_decoding_message_size(GRPC_MAX_MESSAGE_SIZE)
                .max_encoding_message_size(GRPC_MAX_MESSAGE_SIZE),
        )
        .add_service(
            AgentSecureServer::from_arc(secure)
                .max_decoding_message_size(GRPC_MAX_MESSAGE_SIZE)
                .max_encoding_message_size(GRPC_MAX_MESSAGE_SIZE),
        )
        .into_axum_router()
        .layer(GateLayer {
            auth: grpc_auth,
            timeout: None,
            observer: observer.clone(),
        });

        let ipc = settings.api.ipc_server.as_ref().map(|_| {
            let http = crate::ipc_config::router(settings.config.clone())
                .fallback(crate::routes::not_found)
                .layer(GateLayer {
                    auth: http_auth.clone(),
                    timeout: Some(RequestTimeout {
                        limit: server_timeout,
                        exempt: Arc::from([]),
                    }),
                    observer: observer.clone(),
                });
            Arc::new(App {
                server: ServerKind::Ipc,
                http,
                grpc: None,
            })
        });
        let failures = settings
            .telemetry
            .counter(
                "api_server__tls_handshake_errors",
                "TLS handshakes that failed or timed out, by server.",
                &["servername"],
            )
            .map_err(ApiBuildError::Telemetry)?;
        Ok(Self {
            api: settings.api,
            cert: settings.cert,
            tls: TlsAcceptor::from(tls),
            cmd: Arc::new(App {
                server: ServerKind::Cmd,
                http,
                grpc: Some(grpc),
            }),
            ipc,
            addrs: settings.listen,
            handshake_failures: [
                failures.with(&[ServerKind::Cmd.telemetry_name()]),
                failures.with(&[ServerKind::Ipc.telemetry_name()]),
            ],
            drain_grace: settings.drain_grace,
        })
    }

    /// Where the servers listen, filled in by `start`.
    pub fn listen_addrs(&self) -> ListenAddrs {
        self.addrs.clone()
    }
}

/// Why the API could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ApiBuildError {
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(dogd_ipc::IpcError),
    /// A telemetry family clashed.
    #[error("cannot register API telemetry: {0}")]
    Telemetry(TelemetryError),
}

#[async_trait]
impl Component for ApiServer {
    fn name(&self) -> &str {
        "api"
    }

    async fn start(&mut self, ctx: StartContext) -> Result<(), BoxError> {
        // Bind everything first: if the IPC port is taken, the CMD listener is simply dropped.
        let cmd_listener = bind(ServerKind::Cmd, &self.api.cmd_host, self.api.cmd_port).await?;
        let ipc_listener = match (&self.api.ipc_server, &self.ipc) {
            (Some((host, port)), Some(app)) => {
                Some((bind(ServerKind::Ipc, host, *port).await?, app.clone()))
            }
            _ => None,
        };

        let mut servers = vec![(cmd_listener, self.cmd.clone())];
        servers.extend(ipc_listener);
        for (listener, app) in servers {
            let local = listener.local_addr()?;
            let slot = match app.server {
                ServerKind::Cmd => &self.addrs.cmd,
                ServerKind::Ipc => &self.addrs.ipc,
            };
            let _ = slot.set(local);
            tracing::info!("Started HTTP server '{}' on {local}", app.server.log_name());
            let failures = match app.server {
                ServerKind::Cmd => self.handshake_failures[0].clone(),
                ServerKind::Ipc => self.handshake_failures[1].clone(),
            };
            let acceptor = Acceptor {
                app,
                tls: self.tls.clone(),
                cert: self.cert.clone(),
                failures,
                shutdown: ctx.shutdown().clone(),
                tasks: ctx.tasks().clone(),
                drain_grace: self.drain_grace,
            };
            ctx.spawn(acceptor.run(listener));
        }
        ctx.health().report_healthy();
        Ok(())
    }
}

/// The names clients may address: the IPC certificate's defaults, the CMD host and, when enabled,
/// the IPC server host.
fn allowed_hosts(api: &ApiServerConfig) -> Arc<[String]> {
    let mut hosts: Vec<String> = dogd_ipc::DEFAULT_HOSTS
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    hosts.push(api.cmd_host.to_ascii_lowercase());
    if let Some((host, _)) = &api.ipc_server {
        hosts.push(host.to_ascii_lowercase());
    }
    hosts.sort();
    hosts.dedup();
    hosts.into()
}

/// Binds `host:port` after checking the host is a loopback address, as the agent requires.
async fn bind(server: ServerKind, host: &str, port: u16) -> Result<TcpListener, ApiError> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ApiError::Resolve {
            key: server.host_key(),
            host: host.to_owned(),
            source,
        })?
        .collect();
    if resolved.is_empty() || !resolved.iter().all(|addr| addr.ip().is_loopback()) {
        return Err(ApiError::NotLocal {
            key: server.host_key(),
            host: host.to_owned(),
        });
    }
    // `localhost` may resolve to both families; prefer IPv4 like the agent's clients do.
    let addr = resolved
        .iter()
        .find(|addr| matches!(addr.ip(), IpAddr::V4(_)))
        .unwrap_or(&resolved[0]);
    TcpListener::bind(addr)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => ApiError::PortInUse {
                key: server.port_key(),
                host: addr.ip().to_string(),
                port,
            },
            _ => ApiError::Bind {
                key: server.port_key(),
                host: host.to_owned(),
                port,
                source,
            },
        })
}

/// The accept loop of one server.
struct Acceptor {
    app: Arc<App>,
    tls: TlsAcceptor,
    cert: IpcCert,
    failures: Counter,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    drain_grace: Duration,
}

impl Acceptor {
    async fn run(self, listener: TcpListener) {
        let graceful = GracefulShutdown::new();
        // Cancelled when draining takes too long: open connections are then closed.
        let hard_stop = CancellationToken::new();
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let connection = Connection {
                            app: self.app.clone(),
                            tls: self.tls.clone(),
                            cert: self.cert.clone(),
                            failures: self.failures.clone(),
                        };
                        let watcher = graceful.watcher();
                        let hard_stop = hard_stop.clone();
                        self.tasks.spawn(async move {
                            tokio::select! {
                                // The connection first: it is what wakes this task, and a fixed
                                // order skips the random pick on every wake-up.
                                biased;
                                () = connection.serve(tcp, peer, watcher) => {}
                                () = hard_stop.cancelled() => {}
                            }
                        });
                    }
                    Err(error) => {
                        // Usually EMFILE: back off instead of spinning on the error.
                        tracing::warn!("{}: accept failed: {error}", self.app.server.log_name());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        let open = graceful.count();
        if open > 0 {
            tracing::info!(
                "{}: draining {open} open connections",
                self.app.server.log_name()
            );
        }
        if tokio::time::timeout(self.drain_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::info!(
                "{}: connections still open after {:?}; closing them",
                self.app.server.log_name(),
                self.drain_grace
            );
            hard_stop.cancel();
        }
        tracing::info!("Stopped HTTP server '{}'", self.app.server.log_name());
    }
}

/// One accepted TCP connection.
struct Connection {
    app: Arc<App>,
    tls: TlsAcceptor,
    cert: IpcCert,
    failures: Counter,
}

impl Connection {
    async fn serve(
        self,
        tcp: TcpStream,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let _ = tcp.set_nodelay(true);
        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.tls.accept(tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                // Port scanners and plain-HTTP clients end here; the agent's ERROR-level spam for
                // these was a long-standing complaint, so: debug, and a counter.
                self.failures.inc();
                tracing::debug!(
                    "{}: TLS handshake error from {peer}: {error}",
                    self.app.server.log_name()
                );
                return;
            }
            Err(_) => {
                self.failures.inc();
                tracing::debug!(
                    "{}: TLS handshake from {peer} timed out",
                    self.app.server.log_name()
                );
                return;
            }
        };
        let identity = PeerIdentity::of(&self.cert, stream.get_ref().1.peer_certificates());
        let conn = ConnInfo {
            peer,
            identity,
            server: self.app.server,
        };
        let app = self.app.clone();
        // Boxed here, once: hyper moves the service future several times before polling it, and
        // this one (router and middleware state inline) is large enough for those copies to show.
        let service =
            hyper::service::service_fn(move |request| Box::pin(app.clone().handle(conn, request)));
        let builder = auto::Builder::new(TokioExecutor::new());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        if let Err(error) = watcher.watch(connection.into_owned()).await {
            tracing::debug!(
                "{}: connection from {peer} ended: {error}",
                self.app.server.log_name()
            );
        }
    }
}
