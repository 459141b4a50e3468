//! The one layer in front of every route of a server (and its fallback): authenticate, and tell
//! the observer which route template or gRPC method the request was and how it authenticated, so
//! telemetry labels stay bounded. Running inside the router (after matching) is what lets unknown
//! paths and wrong methods be refused before their 404/405.
//!
//! A hand-written layer rather than `from_fn`: it runs on every request and must not cost a boxed
//! future each time.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use tower::{Layer, Service};

use crate::auth::{AuthMethod, AuthState, verify};
use crate::observe::{
    RouteLabel, grpc_method_label, http_route_label, report_oversized_as_resource_exhausted,
};

/// Adds [`Gate`] to every route of a router.
#[derive(Clone, Debug)]
pub(crate) struct GateLayer {
    pub(crate) auth: Arc<AuthState>,
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service [`GateLayer`] makes.
#[derive(Clone, Debug)]
pub(crate) struct Gate<S> {
    inner: S,
    auth: Arc<AuthState>,
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

    fn call(&mut self, mut request: Request) -> Self::Future {
        let grpc = self.auth.grpc;
        let label = if grpc {
            grpc_method_label(&request)
        } else {
            http_route_label(&request)
        };
        match verify(&self.auth, &request) {
            Ok(method) => {
                request.extensions_mut().insert(method);
                GateFuture::Admitted {
                    inner: self.inner.call(request),
                    observed: Some(Observed {
                        route: label,
                        auth: method,
                    }),
                    grpc,
                }
            }
            Err(mut refusal) => {
                refusal.extensions_mut().insert(Observed {
                    route: label,
                    auth: AuthMethod::Token,
                });
                GateFuture::Refused {
                    response: Some(*refusal),
                }
            }
        }
    }
}

/// What the gate tells the observer, in the response extensions.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    pub(crate) route: RouteLabel,
    pub(crate) auth: AuthMethod,
}

pin_project_lite::pin_project! {
    /// An admitted request in flight, or a refusal ready to send.
    #[project = GateProjection]
    pub(crate) enum GateFuture<F> {
        Admitted {
            #[pin]
            inner: F,
            observed: Option<Observed>,
            grpc: bool,
        },
        Refused {
            response: Option<Response>,
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
                observed,
                grpc,
            } => {
                let Ok(mut response) = std::task::ready!(inner.poll(cx));
                if *grpc {
                    report_oversized_as_resource_exhausted(&mut response);
                }
                if let Some(observed) = observed.take() {
                    response.extensions_mut().insert(observed);
                }
                Poll::Ready(Ok(response))
            }
            GateProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
        }
    }
}
