//! `server_timeout` for request/response routes: past it the handler is dropped (cancelled) and
//! the client gets 503. The Go CMD server only sets a write deadline, which truncates the response
//! instead; the agent's IPC server answers 503 as we do.
//!
//! A hand-written layer rather than `from_fn`: it sits on every bounded request and must not cost
//! a boxed future per request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use http::{Method, StatusCode, Uri};
use tower::{Layer, Service};

use crate::response::json_error;

/// Bounds each request of the wrapped routes by `limit`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BoundLayer {
    pub(crate) limit: Duration,
}

impl<S> Layer<S> for BoundLayer {
    type Service = Bound<S>;

    fn layer(&self, inner: S) -> Bound<S> {
        Bound {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`BoundLayer`] makes.
#[derive(Clone, Debug)]
pub(crate) struct Bound<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request> for Bound<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoundFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Cheap clones (the URI shares its buffer): only formatted when the request times out.
        let method = request.method().clone();
        let uri = request.uri().clone();
        BoundFuture {
            inner: tokio::time::timeout(self.limit, self.inner.call(request)),
            limit: self.limit,
            method,
            uri,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request racing its deadline.
    pub(crate) struct BoundFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        limit: Duration,
        method: Method,
        uri: Uri,
    }
}

impl<F> Future for BoundFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_elapsed)) => {
                let limit = *this.limit;
                tracing::warn!(
                    "{} {} did not finish within server_timeout ({limit:?}); cancelled",
                    this.method,
                    this.uri.path()
                );
                Poll::Ready(Ok(json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "timeout: the request did not finish within {}s (server_timeout)",
                        limit.as_secs_f64()
                    ),
                )))
            }
        }
    }
}
