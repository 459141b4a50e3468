//! The REST gateway: the agent's old grpc-gateway mapping of the gRPC API to JSON over HTTP
//! (`GET /v1/grpc/host`, `POST /v1/grpc/tagger/fetch_entity`, ...), using proto3 JSON names.
//! Streaming methods answer newline-delimited `{"result": ...}` objects, as grpc-gateway did.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use dogd_proto::datadog::api::v1::agent_secure_server::AgentSecure as _;
use dogd_proto::datadog::api::v1::agent_server::Agent as _;
use futures_util::StreamExt as _;
use http::{StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Code, Status};

use crate::builder::{ApiBuilder, RouteKind};
use crate::grpc::{GrpcStream, HostnameService, SecureRouter};

/// Registers the gateway routes.
pub(crate) fn register(
    builder: &mut ApiBuilder,
    hostname: Arc<HostnameService>,
    secure: Arc<SecureRouter>,
) {
    builder.route(
        "/v1/grpc/host",
        RouteKind::Bounded,
        get(move || {
            let hostname = hostname.clone();
            async move {
                unary(Bytes::new(), |request| async move {
                    hostname.get_hostname(request).await
                })
                .await
            }
        }),
    );

    macro_rules! unary_route {
        ($path:literal, $method:ident) => {{
            let secure = secure.clone();
            builder.route(
                $path,
                RouteKind::Bounded,
                post(move |body: Bytes| {
                    let secure = secure.clone();
                    async move {
                        unary(body, |request| async move { secure.$method(request).await }).await
                    }
                }),
            );
        }};
    }
    macro_rules! stream_route {
        ($path:literal, $method:ident) => {{
            let secure = secure.clone();
            builder.route(
                $path,
                RouteKind::Streaming,
                post(move |body: Bytes| {
                    let secure = secure.clone();
                    async move {
                        server_stream(body, |request| async move { secure.$method(request).await })
                            .await
                    }
                }),
            );
        }};
    }
    unary_route!("/v1/grpc/tagger/fetch_entity", tagger_fetch_entity);
    unary_route!(
        "/v1/grpc/dogstatsd/capture/trigger",
        dogstatsd_capture_trigger
    );
    unary_route!(
        "/v1/grpc/dogstatsd/capture/state",
        dogstatsd_set_tagger_state
    );
    unary_route!("/v1/grpc/remoteconfig/configs", client_get_configs);
    unary_route!("/v1/grpc/remoteconfig/state", get_config_state);
    stream_route!("/v1/grpc/tagger/stream_entities", tagger_stream_entities);
    stream_route!(
        "/v1/grpc/workloadmeta/stream_entities",
        workloadmeta_stream_entities
    );
}

/// Decodes a JSON request body (empty means the default message).
fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|error| Status::invalid_argument(format!("invalid JSON request body: {error}")))
}

async fn unary<Req, Resp, F, Fut>(body: Bytes, call: F) -> Response
where
    Req: DeserializeOwned + Default,
    Resp: Serialize,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let request = match decode::<Req>(&body) {
        Ok(request) => request,
        Err(status) => return status_response(&status),
    };
    match call(tonic::Request::new(request)).await {
        Ok(response) => json_response(StatusCode::OK, &response.into_inner()),
        Err(status) => status_response(&status),
    }
}

async fn server_stream<Req, Resp, F, Fut>(body: Bytes, call: F) -> Response
where
    Req: DeserializeOwned + Default,
    Resp: Serialize + Send + 'static,
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<GrpcStream<Resp>>, Status>>,
{
    let request = match decode::<Req>(&body) {
        Ok(request) => request,
        Err(status) => return status_response(&status),
    };
    let stream = match call(tonic::Request::new(request)).await {
        Ok(response) => response.into_inner(),
        Err(status) => return status_response(&status),
    };
    let lines = stream.map(|item| {
        let value = match item {
            Ok(message) => serde_json::json!({ "result": message }),
            Err(status) => serde_json::json!({ "error": status_body(&status) }),
        };
        let mut line = value.to_string();
        line.push('\n');
        Ok::<_, std::convert::Infallible>(line)
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(error) => status_response(&Status::internal(format!(
            "cannot encode the response: {error}"
        ))),
    }
}

fn status_body(status: &Status) -> serde_json::Value {
    serde_json::json!({
        "code": i32::from(status.code()),
        "message": status.message(),
        "details": [],
    })
}

/// grpc-gateway's error shape and its gRPC-code-to-HTTP-status mapping.
fn status_response(status: &Status) -> Response {
    json_response(http_status(status.code()), &status_body(status))
}

/// The HTTP status grpc-gateway uses for a gRPC code.
pub(crate) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_grpc_gateway_http_statuses() {
        assert_eq!(
            http_status(Code::Unimplemented),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
    }

    #[test]
    fn empty_body_decodes_to_the_default_message() {
        let request: dogd_proto::datadog::model::v1::FetchEntityRequest =
            decode(b" \n").expect("default");
        assert_eq!(request, Default::default());
        let error = decode::<dogd_proto::datadog::model::v1::FetchEntityRequest>(b"{")
            .expect_err("bad json");
        assert_eq!(error.code(), Code::InvalidArgument);
    }
}
