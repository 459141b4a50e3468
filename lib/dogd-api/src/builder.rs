//! Where components register their HTTP routes and gRPC handlers before the server starts (the Go
//! agent's `agent_endpoint` group). The API crate itself knows no component by name.

use std::sync::Arc;

use axum::Router;
use axum::routing::MethodRouter;

use crate::grpc::{DynAgentSecure, SecureArea};

/// Whether a route is bounded by `server_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// A request/response route: answered 503 and cancelled past `server_timeout`.
    Bounded,
    /// A long-lived route (streams, flare, diagnose): exempt from the timeout.
    Streaming,
}

/// Collects routes and services from components.
#[derive(Default)]
pub struct ApiBuilder {
    /// Routes bounded by `server_timeout`, with their full paths.
    pub(crate) bounded: Router,
    /// Routes exempt from it.
    pub(crate) streaming: Router,
    pub(crate) secure: Vec<(SecureArea, Arc<DynAgentSecure>)>,
    pub(crate) route_names: Vec<(String, RouteKind)>,
}

impl std::fmt::Debug for ApiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let areas: Vec<SecureArea> = self.secure.iter().map(|(area, _)| *area).collect();
        f.debug_struct("ApiBuilder")
            .field(
                "routes",
                &self
                    .route_names
                    .iter()
                    .map(|(path, _)| path)
                    .collect::<Vec<_>>(),
            )
            .field("secure_areas", &areas)
            .finish()
    }
}

impl ApiBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route under `/agent` (`path` is relative, e.g. `/status`; axum syntax for
    /// parameters, e.g. `/config/{setting}`).
    pub fn agent_route(&mut self, path: &str, kind: RouteKind, route: MethodRouter) -> &mut Self {
        self.route(&format!("/agent{path}"), kind, route)
    }

    /// Adds a route under `/check` (`path` is relative).
    pub fn check_route(&mut self, path: &str, route: MethodRouter) -> &mut Self {
        self.route(&format!("/check{path}"), RouteKind::Bounded, route)
    }

    /// Adds a route at a full path (the REST gateway's `/v1/grpc/...`).
    pub(crate) fn route(&mut self, path: &str, kind: RouteKind, route: MethodRouter) -> &mut Self {
        self.route_names.push((path.to_owned(), kind));
        let router = match kind {
            RouteKind::Bounded => &mut self.bounded,
            RouteKind::Streaming => &mut self.streaming,
        };
        *router = std::mem::take(router).route(path, route);
        self
    }

    /// Hands one area of the `AgentSecure` gRPC service (its methods, and their REST gateway routes)
    /// to a component's implementation. Areas left unset answer `Unimplemented`.
    pub fn secure_grpc(&mut self, area: SecureArea, service: Arc<DynAgentSecure>) -> &mut Self {
        self.secure.retain(|(existing, _)| *existing != area);
        self.secure.push((area, service));
        self
    }
}
