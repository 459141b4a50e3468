//! Authentication of every request and RPC: the IPC client certificate (mTLS), else
//! `Authorization: Bearer <token>` compared in constant time.
//!
//! It runs inside the routers (as a layer on every route and on the fallback), so unknown paths and
//! wrong methods are answered 401/403 before 404/405: nothing is learned without the token.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse as _, Response};
use dogd_ipc::{AuthToken, PeerIdentity};
use http::{HeaderValue, StatusCode, header};

use crate::conn::ConnInfo;
use crate::response::json_error;

/// How a request was authenticated; also the telemetry `auth` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// The client presented the IPC certificate.
    Mtls,
    /// The client sent the bearer token (or failed to).
    Token,
}

impl AuthMethod {
    /// The label value the agent uses.
    pub fn label(self) -> &'static str {
        match self {
            Self::Mtls => "mTLS",
            Self::Token => "token",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// A scheme other than Bearer.
    Scheme(String),
    /// A header without a scheme and a credential.
    Malformed,
    /// The wrong token.
    WrongToken,
}

/// What the auth layer needs.
#[derive(Clone, Debug)]
pub(crate) struct AuthState {
    pub(crate) token: AuthToken,
    /// Answer failures as gRPC statuses (the gRPC router) or HTTP statuses (everything else).
    pub(crate) grpc: bool,
    /// Host names requests may address (lower-case): the IPC certificate's names. Anything else
    /// (a DNS-rebinding page, a misrouted proxy) is refused before authentication.
    pub(crate) allowed_hosts: Arc<[String]>,
}

/// The host a request addresses (`:authority` or `Host`), without port or IPv6 brackets.
fn addressed_host(request: &Request) -> Option<&str> {
    let authority = match request.uri().authority() {
        Some(authority) => authority.as_str(),
        None => request.headers().get(header::HOST)?.to_str().ok()?,
    };
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(bracketed),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host),
    };
    Some(host)
}

/// Checks one request's credentials.
fn check(
    token: &AuthToken,
    conn: Option<&ConnInfo>,
    authorization: Option<&HeaderValue>,
    grpc: bool,
) -> Result<AuthMethod, Refusal> {
    if conn.is_some_and(|conn| conn.identity == PeerIdentity::IpcCertificate) {
        return Ok(AuthMethod::Mtls);
    }
    let value = authorization.ok_or(Refusal::Missing)?;
    let value = value.to_str().map_err(|_| Refusal::Malformed)?;
    let Some((scheme, credential)) = value.split_once(' ') else {
        return Err(if grpc {
            Refusal::Malformed
        } else {
            Refusal::Scheme(value.to_owned())
        });
    };
    // The agent's REST check wants exactly "Bearer"; its gRPC check (go-grpc-middleware) ignores case.
    let scheme_ok = if grpc {
        scheme.eq_ignore_ascii_case("Bearer")
    } else {
        scheme == "Bearer"
    };
    if !scheme_ok {
        return Err(Refusal::Scheme(scheme.to_owned()));
    }
    if token.matches(credential.as_bytes()) {
        Ok(AuthMethod::Token)
    } else {
        Err(Refusal::WrongToken)
    }
}

/// Authenticates a request: the method it used, or the refusal to send back (already logged).
pub(crate) fn verify(state: &AuthState, request: &Request) -> Result<AuthMethod, Box<Response>> {
    if let Some(host) = addressed_host(request)
        && !state
            .allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    {
        tracing::debug!("refused a request for host {host:?}: not one of this server's names");
        let message = format!("host {host:?} is not served here");
        return Err(Box::new(if state.grpc {
            tonic::Status::permission_denied(message)
                .into_http::<axum::body::Body>()
                .into_response()
        } else {
            json_error(StatusCode::MISDIRECTED_REQUEST, message)
        }));
    }
    let conn = request.extensions().get::<ConnInfo>();
    let refusal = match check(
        &state.token,
        conn,
        request.headers().get(header::AUTHORIZATION),
        state.grpc,
    ) {
        Ok(method) => return Ok(method),
        Err(refusal) => refusal,
    };
    let peer = conn.map_or_else(|| "?".to_owned(), |conn| conn.peer.to_string());
    let what = format!("{} request to {}", request.method(), request.uri().path());
    match &refusal {
        // Scanners and misdirected clients: not worth a warning each.
        Refusal::Missing => tracing::debug!("no auth token for {what} from {peer}"),
        Refusal::Scheme(scheme) => {
            tracing::warn!(
                "invalid auth token for {what} from {peer}: unsupported scheme {scheme}"
            );
        }
        Refusal::Malformed => {
            tracing::warn!("invalid auth token for {what} from {peer}: malformed header");
        }
        Refusal::WrongToken => {
            tracing::warn!("invalid auth token for {what} from {peer}: wrong token");
        }
    }
    Err(Box::new(if state.grpc {
        grpc_refusal(&refusal)
    } else {
        http_refusal(&refusal)
    }))
}

/// The agent's REST answers: 401 with a `WWW-Authenticate` challenge when no usable Bearer header
/// was sent, 403 for a wrong token.
fn http_refusal(refusal: &Refusal) -> Response {
    let (status, message) = match refusal {
        Refusal::Missing => (
            StatusCode::UNAUTHORIZED,
            "no session token provided".to_owned(),
        ),
        Refusal::Scheme(scheme) => (
            StatusCode::UNAUTHORIZED,
            format!("unsupported authorization scheme: {scheme}"),
        ),
        Refusal::Malformed => (
            StatusCode::UNAUTHORIZED,
            "malformed authorization header".to_owned(),
        ),
        Refusal::WrongToken => (StatusCode::FORBIDDEN, "invalid session token".to_owned()),
    };
    let mut response = json_error(status, message);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"Datadog Agent\""),
        );
    }
    response
}

/// The agent's gRPC answers (go-grpc-middleware's messages), as a trailers-only response.
fn grpc_refusal(refusal: &Refusal) -> Response {
    let message = match refusal {
        Refusal::Missing | Refusal::Scheme(_) => "Request unauthenticated with Bearer",
        Refusal::Malformed => "Bad authorization string",
        Refusal::WrongToken => "invalid auth token: Invalid session token",
    };
    tonic::Status::unauthenticated(message)
        .into_http::<axum::body::Body>()
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::conn::ServerKind;

    fn token() -> AuthToken {
        AuthToken::from_value(&"a".repeat(64)).expect("token")
    }

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).expect("header")
    }

    #[test]
    fn bearer_token_must_match_exactly() {
        let good = format!("Bearer {}", "a".repeat(64));
        assert_eq!(
            check(&token(), None, Some(&header(&good)), false),
            Ok(AuthMethod::Token)
        );
        let wrong = format!("Bearer {}", "b".repeat(64));
        assert_eq!(
            check(&token(), None, Some(&header(&wrong)), false),
            Err(Refusal::WrongToken)
        );
        // Two spaces leave an empty token, as with the agent's split on one space.
        let doubled = format!("Bearer  {}", "a".repeat(64));
        assert_eq!(
            check(&token(), None, Some(&header(&doubled)), false),
            Err(Refusal::WrongToken)
        );
    }

    #[test]
    fn rest_scheme_is_case_sensitive_but_grpc_scheme_is_not() {
        let lower = format!("bearer {}", "a".repeat(64));
        assert_eq!(
            check(&token(), None, Some(&header(&lower)), false),
            Err(Refusal::Scheme("bearer".to_owned()))
        );
        assert_eq!(
            check(&token(), None, Some(&header(&lower)), true),
            Ok(AuthMethod::Token)
        );
        assert_eq!(
            check(&token(), None, Some(&header("Basic x")), true),
            Err(Refusal::Scheme("Basic".into()))
        );
        assert_eq!(
            check(&token(), None, Some(&header("garbage")), true),
            Err(Refusal::Malformed)
        );
        assert_eq!(check(&token(), None, None, true), Err(Refusal::Missing));
    }

    #[test]
    fn ipc_certificate_authenticates_without_a_token() {
        let conn = ConnInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            identity: PeerIdentity::IpcCertificate,
            server: ServerKind::Cmd,
        };
        assert_eq!(
            check(&token(), Some(&conn), None, false),
            Ok(AuthMethod::Mtls)
        );
        let stranger = ConnInfo {
            identity: PeerIdentity::Anonymous,
            ..conn
        };
        assert_eq!(
            check(&token(), Some(&stranger), None, false),
            Err(Refusal::Missing)
        );
    }
}
