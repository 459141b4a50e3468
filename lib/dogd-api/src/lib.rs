//! The CMD API server (gRPC `datadog.api.v1` + HTTP `/agent`, `/check` and the REST gateway on one
//! TLS port) and the IPC config server (`/config/v1/`), with authentication, telemetry, request
//! logging and timeouts.

#![warn(missing_docs)]

mod auth;
mod builder;
mod conn;
mod error;
mod gate;
mod gateway;
mod grpc;
pub mod ipc_config;
mod observe;
mod response;
mod routes;
mod server;
pub mod status;
mod timeout;

pub use auth::AuthMethod;
pub use builder::{ApiBuilder, RouteKind};
pub use conn::{ConnInfo, ServerKind};
pub use error::ApiError;
pub use grpc::{DynAgentSecure, GrpcStream, SecureArea};
pub use observe::{REQUEST_DURATION_METRIC, UNMATCHED_ROUTE};
pub use response::json_error;
pub use routes::BuildInfo;
pub use server::{ApiBuildError, ApiServer, ApiSettings, GRPC_MAX_MESSAGE_SIZE, ListenAddrs};
pub use status::{StatusProvider, StatusRegistry, render_section};
