//! A fake Datadog intake for tests and local runs.
//!
//! It accepts what the forwarder sends (series v2 and sketches in protobuf, check runs and events
//! in JSON; `zstd`, `deflate` (zlib), `gzip` or no compression), decodes and stores every payload
//! with its headers, and serves them back as JSON:
//!
//! * `GET /fakeintake/payloads?endpoint=series|sketches|check_run|events`: the decoded payloads;
//! * `GET /fakeintake/errors`: requests that could not be decoded (answered 400);
//! * `GET /fakeintake/stats`: request counts per endpoint;
//! * `GET|POST /fakeintake/flush`: forgets everything received;
//! * `POST /fakeintake/fail?count=N&status=CODE`: the next N intake requests fail with CODE.
//!
//! `GET /api/v1/validate` answers 200 `{"valid":true}`, or 403 for a rejected key (such keys are
//! refused on every route).
//!
//! The `dogd-fakeintake` binary serves it on a port; tests of other crates embed it with
//! [`FakeIntake::start`] and read payloads straight from it.

#![warn(missing_docs)]

mod decode;
mod routes;
mod store;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::decode::Kind;
use crate::routes::App;
use crate::store::Store;

/// How the fake intake behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// API keys refused with 403 on every route.
    pub reject_api_keys: BTreeSet<String>,
    /// The first N intake requests fail with `fail_status`.
    pub fail_next: u32,
    /// The status injected failures answer with.
    pub fail_status: u16,
    /// Payloads kept per endpoint; the oldest are forgotten beyond it.
    pub max_payloads: usize,
    /// Largest request body accepted, compressed or decompressed, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            reject_api_keys: BTreeSet::new(),
            fail_next: 0,
            fail_status: 500,
            max_payloads: 10_000,
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

fn app(options: Options) -> Arc<App> {
    Arc::new(App {
        store: Store::new(
            options.reject_api_keys,
            options.fail_next,
            options.fail_status,
            options.max_payloads,
        ),
        max_body_bytes: options.max_body_bytes,
    })
}

/// Serves the fake intake on `listener` until `shutdown` resolves.
///
/// # Errors
///
/// The server's accept loop failed.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes::router(app(options)))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A fake intake running in this process, on the caller's runtime.
#[derive(Debug)]
pub struct FakeIntake {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl FakeIntake {
    /// Starts serving on `listen` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(listen: SocketAddr, options: Options) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = app(options);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            axum::serve(listener, routes::router(app.clone()))
                .with_graceful_shutdown(async move {
                    // A dropped sender also stops the server.
                    let _ = stopped.await;
                })
                .into_future(),
        );
        Ok(Self {
            addr,
            app,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, for `dd_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The decoded payloads received on `kind`'s endpoint, oldest first, each as served by
    /// `/fakeintake/payloads` (`{received_at, headers, payload, ...}`).
    pub fn payloads(&self, kind: Kind) -> Vec<Value> {
        self.app.store.payloads(kind)
    }

    /// Request counts, as served by `/fakeintake/stats`.
    pub fn stats(&self) -> Value {
        self.app.store.stats()
    }

    /// Makes the next `count` intake requests fail with `status`.
    pub fn fail_next(&self, count: u32, status: u16) {
        self.app.store.fail_next(count, status);
    }

    /// Stops serving and waits for open connections to finish.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!("the fake intake failed: {error}"),
                Err(error) => tracing::error!("the fake intake task failed: {error}"),
            }
        }
    }
}

impl Drop for FakeIntake {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The total a decoded series carries: the sum of its points, each multiplied by the series'
/// interval. For a rate (a DogStatsD counter) that is the count the client sent; gauges and
/// other types without an interval count 0.
pub fn series_total(serie: &Value) -> f64 {
    let interval = serie["interval"].as_f64().unwrap_or(0.0);
    serie["points"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|point| point[1].as_f64().unwrap_or(0.0) * interval)
        .sum()
}
