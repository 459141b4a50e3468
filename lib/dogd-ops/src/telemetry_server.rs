//! The opt-in plain-HTTP `/telemetry` endpoint (`telemetry.port`): Prometheus text for scrapers,
//! on localhost, without TLS or auth, like the agent's expvar port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use dogd_core::{BoxError, Component, StartContext};
use dogd_telemetry::Registry;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The component serving `GET /telemetry` on `127.0.0.1:<telemetry.port>`.
#[derive(Debug)]
pub struct TelemetryServer {
    port: u16,
    registry: Registry,
    bound: Arc<OnceLock<SocketAddr>>,
}

impl TelemetryServer {
    /// A server for `registry` on `port` (0 picks a free one).
    pub fn new(port: u16, registry: Registry) -> Self {
        Self {
            port,
            registry,
            bound: Arc::default(),
        }
    }

    /// The bound address, once started.
    pub fn addr_handle(&self) -> Arc<OnceLock<SocketAddr>> {
        self.bound.clone()
    }
}

fn answer(registry: &Registry, request: &Request<Incoming>) -> Response<String> {
    let response = if request.method() == Method::GET && request.uri().path() == "/telemetry" {
        Response::builder()
            .header(
                header::CONTENT_TYPE,
                dogd_telemetry::PROMETHEUS_CONTENT_TYPE,
            )
            .body(registry.render_prometheus())
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body("only GET /telemetry is served here\n".to_owned())
    };
    response.unwrap_or_default()
}

#[async_trait]
impl Component for TelemetryServer {
    fn name(&self) -> &str {
        "telemetry-http"
    }

    async fn start(&mut self, ctx: StartContext) -> Result<(), BoxError> {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(|error| {
                format!(
                    "cannot listen on 127.0.0.1:{} (telemetry.port): {error}",
                    self.port
                )
            })?;
        let addr = listener.local_addr()?;
        let _ = self.bound.set(addr);
        tracing::info!("serving internal telemetry on http://{addr}/telemetry");
        let registry = self.registry.clone();
        let shutdown = ctx.shutdown().clone();
        let tasks = ctx.tasks().clone();
        ctx.spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = shutdown.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let registry = registry.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let response = answer(&registry, &request);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service);
                    tokio::select! {
                        _ = connection => {}
                        () = shutdown.cancelled() => {}
                    }
                });
            }
        });
        Ok(())
    }
}
