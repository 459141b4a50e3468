//! The one layer in front of every route of a server (and its fallback): authenticate, bound
//! request/response routes by `server_timeout`, and record the request (duration histogram and
//! log line) under the route template or gRPC method it matched, so telemetry labels stay
//! bounded. Running inside the router (after matching) is what lets unknown paths and wrong
//! methods be refused before their 404/405.
//!
//! A hand-written layer rather than `from_fn`, and one layer rather than one per concern: it runs
//! on every request, and each boxed future or route layer showed in the per-request cost.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::response::Response;
use http::{Method, Uri};
use tokio::time::Sleep;
use tower::{Layer, Service};

use crate::auth::{AuthMethod, AuthState, verify};
use crate::conn::ConnInfo;
use crate::observe::{
    Observer, RouteLabel, grpc_method_label, http_route_label,
    report_oversized_as_resource_exhausted,
};
use crate::timeout::{RequestTimeout, timed_out};

/// Adds [`Gate`] to every route of a router.
#[derive(Clone, Debug)]
pub(crate) struct GateLayer {
    pub(crate) auth: Arc<AuthState>,
    /// `None`: no request is bounded (gRPC, whose deadlines are the client's).
    pub(crate) timeout: Option<RequestTimeout>,
    pub(crate) observer: Observer,
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`GateLayer`] makes.
#[derive(Clone, Debug)]
pub(crate) struct Gate<S> {
    inner: S,
    layer: GateLayer,
}

impl<S> Service<Request> for Gate<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let grpc = self.layer.auth.grpc;
        let route = if grpc {
            grpc_method_label(&request)
        } else {
            http_route_label(&request)
        };
        let verdict = verify(&self.layer.auth, &request);
        let record = Record {
            observer: self.layer.observer.clone(),
            conn: request.extensions().get::<ConnInfo>().copied(),
            // Cheap clones (the URI shares its buffer), for the log line.
            method: request.method().clone(),
            uri: request.uri().clone(),
            auth: verdict.as_ref().map_or(AuthMethod::Token, |method| *method),
            route,
            started,
        };
        match verdict {
            Ok(_) => {
                let limit = self
                    .layer
                    .timeout
                    .as_ref()
                    .filter(|timeout| timeout.bounds(&record.route))
                    .map(|timeout| timeout.limit);
                GateFuture::Admitted {
                    inner: self.inner.call(request),
                    sleep: None,
                    limit,
                    record: Some(record),
                    grpc,
                }
            }
            Err(refusal) => GateFuture::Refused {
                response: Some((*refusal, record)),
            },
        }
    }
}

/// What the observer needs once the response is ready.
#[derive(Debug)]
struct Record {
    observer: Observer,
    conn: Option<ConnInfo>,
    method: Method,
    uri: Uri,
    auth: AuthMethod,
    route: RouteLabel,
    started: Instant,
}

impl Record {
    fn finish(self, response: Response) -> Response {
        self.observer.record(
            self.conn.as_ref(),
            &self.method,
            self.uri.path(),
            self.route.as_str(),
            self.auth,
            response.status(),
            self.started.elapsed(),
        );
        response
    }
}

pin_project_lite::pin_project! {
    /// An admitted request in flight (racing its deadline when bounded), or a refusal ready to
    /// send.
    #[project = GateProjection]
    pub(crate) enum GateFuture<F> {
        Admitted {
            #[pin]
            inner: F,
            // Created only once the handler has not answered on its first poll: most answer at
            // once and never touch the clock or the timer wheel for it.
            #[pin]
            sleep: Option<Sleep>,
            limit: Option<Duration>,
            record: Option<Record>,
            grpc: bool,
        },
        Refused {
            response: Option<(Response, Record)>,
        },
    }
}

impl<F> Future for GateFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GateProjection::Admitted {
                inner,
                mut sleep,
                limit,
                record,
                grpc,
            } => {
                let mut response = match inner.poll(cx) {
                    Poll::Ready(Ok(response)) => response,
                    Poll::Pending => {
                        let Some(limit) = *limit else {
                            return Poll::Pending;
                        };
                        if sleep.is_none() {
                            sleep.set(Some(tokio::time::sleep(limit)));
                        }
                        let expired = sleep
                            .as_pin_mut()
                            .is_some_and(|sleep| sleep.poll(cx).is_ready());
                        match record.as_ref().filter(|_| expired) {
                            Some(record) => timed_out(&record.method, &record.uri, limit),
                            None => return Poll::Pending,
                        }
                    }
                };
                if *grpc {
                    report_oversized_as_resource_exhausted(&mut response);
                }
                Poll::Ready(Ok(match record.take() {
                    Some(record) => record.finish(response),
                    None => response,
                }))
            }
            GateProjection::Refused { response } => Poll::Ready(Ok(match response.take() {
                Some((response, record)) => record.finish(response),
                None => Response::default(),
            })),
        }
    }
}
