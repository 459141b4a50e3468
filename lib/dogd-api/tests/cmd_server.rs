//! The CMD server over real TLS sockets: auth on every route and RPC, content-type dispatch,
//! telemetry, timeouts, limits, the REST gateway and real third-party clients.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::routing::get;
use bytes::Bytes;
use common::{Options, RawResponse, TestServer, bearer, raw_request, request};
use dogd_api::{ApiBuilder, GrpcStream, RouteKind, SecureArea};
use dogd_ipc::{ClientAuth, GrpcChannel, IpcClient};
use dogd_proto::datadog::api::v1::agent_client::AgentClient;
use dogd_proto::datadog::api::v1::agent_secure_client::AgentSecureClient;
use dogd_proto::datadog::api::v1::agent_secure_server::AgentSecure;
use dogd_proto::datadog::model::v1::{
    CaptureTriggerRequest, EventType, HostnameRequest, StreamTagsEvent, StreamTagsRequest,
    StreamTagsResponse, TaggerState,
};
use http::{Method, StatusCode, header};
use http_body_util::Full;
use tonic::Code;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A stand-in for the tagger component: streams a fixed number of events, or never ends.
struct FakeTagger {
    events: usize,
    endless: bool,
}

#[tonic::async_trait]
impl AgentSecure for FakeTagger {
    async fn tagger_stream_entities(
        &self,
        _request: tonic::Request<StreamTagsRequest>,
    ) -> Result<tonic::Response<GrpcStream<StreamTagsResponse>>, tonic::Status> {
        let responses: Vec<Result<StreamTagsResponse, tonic::Status>> = (0..self.events)
            .map(|i| {
                Ok(StreamTagsResponse {
                    events: vec![StreamTagsEvent {
                        r#type: EventType::Added as i32,
                        entity: Some(dogd_proto::datadog::model::v1::Entity {
                            hash: format!("hash-{i}"),
                            ..Default::default()
                        }),
                    }],
                })
            })
            .collect();
        let stream = tokio_stream::iter(responses);
        if self.endless {
            Ok(tonic::Response::new(Box::pin(
                futures_util::StreamExt::chain(stream, futures_util::stream::pending()),
            )))
        } else {
            Ok(tonic::Response::new(Box::pin(stream)))
        }
    }
}

fn with_tagger(events: usize, endless: bool) -> impl FnOnce(&mut ApiBuilder) {
    move |builder: &mut ApiBuilder| {
        builder.secure_grpc(SecureArea::Tagger, Arc::new(FakeTagger { events, endless }));
    }
}

async fn channel(client: &IpcClient) -> GrpcChannel<tonic::body::Body> {
    client.grpc_channel().await.expect("gRPC channel")
}

fn origin(server: &TestServer) -> http::Uri {
    format!("https://{}", server.cmd).parse().expect("origin")
}

fn with_auth<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("metadata value"));
    }
    request
}

/// One client per way of authenticating at the TLS level.
fn clients(server: &TestServer) -> Vec<(&'static str, IpcClient)> {
    let port = server.cmd.port();
    let token_only = server.tls(ClientAuth::TokenOnly, &[b"h2"]);
    let stranger = server.tls(ClientAuth::OtherCertificate(server.stranger()), &[b"h2"]);
    vec![
        (
            "token-only",
            IpcClient::with_tls("127.0.0.1", port, server.token.clone(), token_only),
        ),
        (
            "stranger-cert",
            IpcClient::with_tls("127.0.0.1", port, server.token.clone(), stranger),
        ),
        ("ipc-cert", server.client()),
    ]
}

async fn get_raw(
    server: &TestServer,
    auth: ClientAuth,
    path: &str,
    authorization: Option<&str>,
) -> RawResponse {
    let req = request(Method::GET, server.cmd, path, authorization)
        .body(Full::new(Bytes::new()))
        .expect("request");
    raw_request(server.cmd, server.tls(auth, &[b"h2"]), req).await
}

// ---------------------------------------------------------------------------------------------
// HTTP auth

#[tokio::test]
async fn http_auth_matrix_on_agent_version() {
    let server = TestServer::start(|_| {}).await;
    let right = bearer(&server.token);
    let wrong = bearer(&TestServer::wrong_token());

    let none = get_raw(&server, ClientAuth::TokenOnly, "/agent/version", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.json(),
        serde_json::json!({"error": "no session token provided"})
    );
    assert_eq!(
        none.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"Datadog Agent\""
    );

    let basic = get_raw(
        &server,
        ClientAuth::TokenOnly,
        "/agent/version",
        Some("Basic abc"),
    )
    .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        basic.json()["error"],
        "unsupported authorization scheme: Basic"
    );

    let bad = get_raw(
        &server,
        ClientAuth::TokenOnly,
        "/agent/version",
        Some(&wrong),
    )
    .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN);
    assert_eq!(
        bad.json(),
        serde_json::json!({"error": "invalid session token"})
    );

    let good = get_raw(
        &server,
        ClientAuth::TokenOnly,
        "/agent/version",
        Some(&right),
    )
    .await;
    assert_eq!(good.status, StatusCode::OK);
    assert_eq!(
        good.json(),
        serde_json::json!({"Major": 1, "Minor": 2, "Patch": 3, "Pre": "", "Meta": "", "Commit": "abcdef"})
    );

    let mtls = get_raw(&server, ClientAuth::IpcCertificate, "/agent/hostname", None).await;
    assert_eq!(mtls.status, StatusCode::OK);
    assert_eq!(mtls.json(), serde_json::json!(common::HOSTNAME));

    let stranger = get_raw(
        &server,
        ClientAuth::OtherCertificate(server.stranger()),
        "/agent/hostname",
        None,
    )
    .await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_need_the_token_before_404_or_405() {
    let server = TestServer::start(|_| {}).await;
    let right = bearer(&server.token);
    for path in ["/agent/nope", "/check/x/y/z", "/anything"] {
        let anonymous = get_raw(&server, ClientAuth::TokenOnly, path, None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
        let known = get_raw(&server, ClientAuth::TokenOnly, path, Some(&right)).await;
        assert_eq!(known.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(known.json()["error"], format!("no such endpoint: {path}"));
    }
    let post = request(Method::POST, server.cmd, "/agent/version", None)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let anonymous = raw_request(
        server.cmd,
        server.tls(ClientAuth::TokenOnly, &[b"h2"]),
        post,
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let post = request(Method::POST, server.cmd, "/agent/version", Some(&right))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let authed = raw_request(
        server.cmd,
        server.tls(ClientAuth::TokenOnly, &[b"h2"]),
        post,
    )
    .await;
    assert_eq!(authed.status, StatusCode::METHOD_NOT_ALLOWED);

    // Every 404 is counted under one bounded label, never the raw path.
    let metrics = server.metrics();
    let not_found = metrics
        .lines()
        .find(|line| {
            line.starts_with("api_server__request_duration_seconds_count{")
                && line.contains("status_code=\"404\"")
                && line.contains("path=\"<unmatched>\"")
        })
        .unwrap_or_else(|| panic!("404 series missing:\n{metrics}"));
    assert!(not_found.ends_with(" 3"), "{not_found}");
    assert!(
        !metrics.contains("/agent/nope"),
        "raw paths must not become labels:\n{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn telemetry_labels_server_route_template_method_status_and_auth() {
    let server = TestServer::start(|builder| {
        builder.agent_route(
            "/echo/{word}",
            RouteKind::Bounded,
            get(|axum::extract::Path(word): axum::extract::Path<String>| async move { word }),
        );
    })
    .await;
    let mtls = server.client();
    for word in ["a", "b"] {
        let response = mtls
            .get(&format!("/agent/echo/{word}"))
            .await
            .expect("echo");
        assert_eq!(response.text(), word);
    }
    let token_only = server.token_client(&server.token);
    token_only.get("/agent/version").await.expect("version");
    let metrics = server.metrics();
    let expect = [
        r#"api_server__request_duration_seconds_count{servername="CMD",status_code="200",method="GET",path="/agent/echo/{word}",auth="mTLS"} 2"#,
        r#"api_server__request_duration_seconds_count{servername="CMD",status_code="200",method="GET",path="/agent/version",auth="token"} 1"#,
    ];
    for line in expect {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
    assert!(metrics.contains("# TYPE api_server__request_duration_seconds histogram"));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// gRPC auth, unary and streaming

#[tokio::test]
async fn grpc_unary_auth_matrix_on_get_hostname() {
    let server = TestServer::start(|_| {}).await;
    let right = bearer(&server.token);
    let wrong = bearer(&TestServer::wrong_token());
    for (name, client) in clients(&server) {
        let mut agent = AgentClient::with_origin(channel(&client).await, origin(&server));
        let none = agent
            .get_hostname(with_auth(HostnameRequest {}, None))
            .await;
        let bad = agent
            .get_hostname(with_auth(HostnameRequest {}, Some(&wrong)))
            .await;
        let good = agent
            .get_hostname(with_auth(HostnameRequest {}, Some(&right)))
            .await
            .unwrap_or_else(|status| panic!("{name}: {status}"));
        assert_eq!(good.into_inner().hostname, common::HOSTNAME, "{name}");
        if name == "ipc-cert" {
            // The IPC certificate authenticates on its own (mTLS), even next to a wrong token.
            assert!(none.is_ok() && bad.is_ok(), "{name}");
        } else {
            let none = none.expect_err(name);
            assert_eq!(none.code(), Code::Unauthenticated, "{name}");
            assert_eq!(none.message(), "Request unauthenticated with Bearer");
            let bad = bad.expect_err(name);
            assert_eq!(bad.code(), Code::Unauthenticated, "{name}");
            assert_eq!(bad.message(), "invalid auth token: Invalid session token");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn grpc_stream_auth_matrix_through_the_mux() {
    let server = TestServer::start(with_tagger(3, false)).await;
    let right = bearer(&server.token);
    let wrong = bearer(&TestServer::wrong_token());
    for (name, client) in clients(&server) {
        let mut secure = AgentSecureClient::with_origin(channel(&client).await, origin(&server));
        for (authorization, authed) in [
            (None, false),
            (Some(wrong.as_str()), false),
            (Some(right.as_str()), true),
        ] {
            let result = secure
                .tagger_stream_entities(with_auth(StreamTagsRequest::default(), authorization))
                .await;
            if authed || name == "ipc-cert" {
                let mut stream = result
                    .unwrap_or_else(|status| panic!("{name}: {status}"))
                    .into_inner();
                let mut hashes = Vec::new();
                while let Some(message) = stream.message().await.expect("stream message") {
                    hashes.extend(
                        message
                            .events
                            .into_iter()
                            .filter_map(|e| e.entity.map(|entity| entity.hash)),
                    );
                }
                assert_eq!(hashes, ["hash-0", "hash-1", "hash-2"], "{name}");
            } else {
                assert_eq!(
                    result.expect_err(name).code(),
                    Code::Unauthenticated,
                    "{name} {authorization:?}"
                );
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn rpc_of_a_missing_component_is_unimplemented_and_names_it() {
    let server = TestServer::start(|_| {}).await;
    let mut secure =
        AgentSecureClient::with_origin(channel(&server.client()).await, origin(&server));
    let status = secure
        .dogstatsd_capture_trigger(CaptureTriggerRequest::default())
        .await
        .expect_err("no capture component");
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(
        status.message().contains("DogStatsD capture"),
        "{}",
        status.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn grpc_message_over_4_mib_is_resource_exhausted() {
    let server = TestServer::start(|_| {}).await;
    let mut secure =
        AgentSecureClient::with_origin(channel(&server.client()).await, origin(&server));
    let big = TaggerState {
        pid_map: (0..300_000)
            .map(|pid| (pid, format!("container-{pid:08}")))
            .collect(),
        ..Default::default()
    };
    let status = secure
        .dogstatsd_set_tagger_state(big)
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Dispatch, timeouts, lifecycle

#[tokio::test]
async fn content_type_decides_between_grpc_and_http() {
    let server = TestServer::start(|_| {}).await;
    let right = bearer(&server.token);
    // A gRPC path without the gRPC content type is an HTTP request: plain 404.
    let as_http = request(
        Method::POST,
        server.cmd,
        "/datadog.api.v1.Agent/GetHostname",
        Some(&right),
    )
    .header(header::CONTENT_TYPE, "application/json")
    .body(Full::new(Bytes::new()))
    .expect("request");
    let response = raw_request(
        server.cmd,
        server.tls(ClientAuth::TokenOnly, &[b"h2"]),
        as_http,
    )
    .await;
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.grpc_status(), None);
    // An HTTP path with the gRPC content type goes to the gRPC router: Unimplemented (12).
    let as_grpc = request(Method::POST, server.cmd, "/agent/version", Some(&right))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = raw_request(
        server.cmd,
        server.tls(ClientAuth::TokenOnly, &[b"h2"]),
        as_grpc,
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.grpc_status().as_deref(), Some("12"));
    server.stop().await;
}

/// Sets its flag when dropped: shows a handler was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn request_past_server_timeout_gets_503_and_the_handler_is_cancelled() {
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = cancelled.clone();
    let options = Options {
        yaml: "cmd_port: 0\nserver_timeout: 0.3\n".to_owned(),
        ..Options::default()
    };
    let server = TestServer::start_with(options, move |builder| {
        builder.agent_route(
            "/slow",
            RouteKind::Bounded,
            get(move || {
                let guard = DropFlag(flag.clone());
                async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(guard);
                    "too late"
                }
            }),
        );
        builder.agent_route(
            "/long",
            RouteKind::Streaming,
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "streams are exempt"
            }),
        );
    })
    .await
    .expect("start");
    let client = server.client();
    let started = std::time::Instant::now();
    let slow = client.get("/agent/slow").await.expect("answer");
    assert_eq!(slow.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(slow.text().contains("timeout"), "{}", slow.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        cancelled.load(Ordering::SeqCst),
        "the handler future was dropped"
    );

    let long = client.get("/agent/long").await.expect("answer");
    assert_eq!(long.status, StatusCode::OK);
    assert_eq!(long.text(), "streams are exempt");
    server.stop().await;
}

#[tokio::test]
async fn port_in_use_fails_the_start_naming_key_host_and_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let options = Options {
        yaml: format!("cmd_port: {port}\n"),
        ..Options::default()
    };
    let error = TestServer::start_with(options, |_| {})
        .await
        .err()
        .expect("port taken");
    assert_eq!(error.component, "api");
    let message = error.to_string();
    assert!(
        message.contains(&format!("cmd_port {port} (127.0.0.1) already in use")),
        "{message}"
    );
}

#[tokio::test]
async fn stop_closes_the_listener_and_ends_open_streams() {
    let options = Options {
        drain_grace: Duration::from_millis(300),
        ..Options::default()
    };
    let server = TestServer::start_with(options, with_tagger(1, true))
        .await
        .expect("start");
    let addr = server.cmd;
    let mut secure =
        AgentSecureClient::with_origin(channel(&server.client()).await, origin(&server));
    let mut stream = secure
        .tagger_stream_entities(StreamTagsRequest::default())
        .await
        .expect("stream")
        .into_inner();
    assert!(stream.message().await.expect("first message").is_some());

    let report = tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("stop in time");
    assert!(report.is_clean(), "{report:?}");
    // The endless stream was cut when the drain grace ran out.
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("stream ends");
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

// ---------------------------------------------------------------------------------------------
// REST gateway, HTTP/1.1, TLS versions and real clients

#[tokio::test]
async fn rest_gateway_maps_get_hostname_to_proto3_json() {
    let server = TestServer::start(|_| {}).await;
    let client = server.client();
    let response = client.get("/v1/grpc/host").await.expect("gateway");
    assert_eq!(response.status, StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
    assert_eq!(body, serde_json::json!({"hostname": common::HOSTNAME}));

    let missing = client
        .post_json(
            "/v1/grpc/dogstatsd/capture/trigger",
            &serde_json::json!({"duration": "10s"}),
        )
        .await
        .expect("gateway");
    assert_eq!(missing.status, StatusCode::NOT_IMPLEMENTED);
    let body: serde_json::Value = serde_json::from_slice(&missing.body).expect("json");
    assert_eq!(body["code"], 12);

    let bad = client
        .post_json(
            "/v1/grpc/tagger/fetch_entity",
            &serde_json::json!({"id": 5}),
        )
        .await
        .expect("gateway");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

fn curl(server: &TestServer, args: &[&str]) -> std::process::Output {
    std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", "--cacert"])
        .arg(server.dir.path().join("ipc_cert.pem"))
        .args(args)
        .output()
        .expect("curl is installed")
}

// External clients block their thread while the server runs on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reads_agent_version_over_h2_and_http11() {
    let server = TestServer::start(|_| {}).await;
    let url = format!("https://localhost:{}/agent/version", server.cmd.port());
    let auth = format!("Authorization: {}", bearer(&server.token));
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let output = curl(
            &server,
            &[
                flag,
                "-H",
                &auth,
                "-w",
                "\n%{http_code} %{http_version}",
                &url,
            ],
        );
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (body, status) = text.rsplit_once('\n').expect("status line");
        assert_eq!(status, format!("200 {version}"));
        let json: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(json["Commit"], "abcdef");
    }
    let output = curl(&server, &["-w", "%{http_code}", "-o", "/dev/null", &url]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "401");
    // curl presenting the IPC certificate (mTLS) needs no token.
    let cert = server.dir.path().join("ipc_cert.pem").display().to_string();
    let output = curl(
        &server,
        &[
            "--cert",
            &cert,
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            &url,
        ],
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "200");
    server.stop().await;
}

fn s_client(server: &TestServer, args: &[&str]) -> String {
    let output = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &server.cmd.to_string(),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// External clients block their thread while the server runs on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_1_is_refused_and_alpn_negotiates_h2() {
    let server = TestServer::start(|_| {}).await;
    // Security level 0 lets the client offer TLS 1.1 at all; the server must refuse it.
    let old = s_client(&server, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    // rustls has no TLS 1.1: it answers the ClientHello with a handshake_failure alert (40), and no
    // cipher is ever agreed.
    assert!(old.contains("SSL alert number 40"), "{old}");
    assert!(old.contains("Cipher is (NONE)"), "{old}");
    let h2 = s_client(&server, &["-alpn", "h2"]);
    assert!(h2.contains("ALPN protocol: h2"), "{h2}");
    let tls12 = s_client(&server, &["-tls1_2", "-alpn", "http/1.1"]);
    assert!(
        tls12.contains("ALPN protocol: http/1.1") && tls12.contains("TLSv1.2"),
        "{tls12}"
    );
    // A failed handshake is counted, not logged as an error.
    let metrics = server.metrics();
    let failures = metrics
        .lines()
        .find(|line| line.starts_with("api_server__tls_handshake_errors{servername=\"CMD\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(!failures.ends_with(" 0"), "{failures}");
    server.stop().await;
}

const GRPCIO_CLIENT: &str = r#"
import sys, grpc
addr, cert_path, token = sys.argv[1], sys.argv[2], sys.argv[3]
with open(cert_path, "rb") as f:
    pem = f.read()
creds = grpc.ssl_channel_credentials(root_certificates=pem)
channel = grpc.secure_channel(addr, creds, options=[("grpc.ssl_target_name_override", "localhost")])
call = channel.unary_unary("/datadog.api.v1.Agent/GetHostname",
                           request_serializer=lambda _: b"", response_deserializer=lambda raw: raw)
metadata = [("authorization", "Bearer " + token)] if token else []
try:
    raw = call(None, metadata=metadata, timeout=10)
    # HostnameReply: field 1, length-delimited.
    assert raw[0] == 0x0A, raw
    print("OK " + raw[2:2 + raw[1]].decode())
except grpc.RpcError as error:
    print("ERR " + error.code().name + " " + error.details())
"#;

// External clients block their thread while the server runs on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_calls_get_hostname_with_and_without_the_token() {
    let server = TestServer::start(|_| {}).await;
    let python = dogd_testkit::python_with(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
        &["grpcio"],
    );
    let cert = server.dir.path().join("ipc_cert.pem");
    let addr = format!("localhost:{}", server.cmd.port());
    let run = move |token: &str| {
        let output = std::process::Command::new(&python)
            .args(["-c", GRPCIO_CLIENT, &addr])
            .arg(&cert)
            .arg(token)
            .output()
            .expect("python runs");
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let with_token = tokio::task::spawn_blocking({
        let token = server.token.expose().to_owned();
        let run = run.clone();
        move || run(&token)
    })
    .await
    .expect("join");
    assert_eq!(with_token.trim(), format!("OK {}", common::HOSTNAME));
    let without = tokio::task::spawn_blocking(move || run(""))
        .await
        .expect("join");
    assert_eq!(
        without.trim(),
        "ERR UNAUTHENTICATED Request unauthenticated with Bearer"
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// IPC config server

#[tokio::test]
async fn ipc_config_server_serves_only_authorized_keys_with_the_token() {
    let options = Options {
        yaml: "cmd_port: 0\nagent_ipc:\n  port: 0\nsite: datadoghq.eu\napi_key: 0123456789abcdef0123456789abcdef\nlogs_config:\n  additional_endpoints:\n    - host: intake.example.com\n".to_owned(),
        ..Options::default()
    };
    // agent_ipc.port 0 means disabled; pick a free port for the IPC server instead.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let options = Options {
        yaml: options
            .yaml
            .replace("port: 0\nsite", &format!("port: {port}\nsite")),
        ..options
    };
    let server = TestServer::start_with(options, |_| {})
        .await
        .expect("start");
    let ipc = server.addrs.ipc().expect("IPC server enabled");
    let client = IpcClient::new("127.0.0.1", ipc.port(), server.token.clone(), &server.cert)
        .expect("client");

    let site = client.get("/config/v1/site").await.expect("site");
    assert_eq!(
        (site.status, site.text()),
        (StatusCode::OK, "\"datadoghq.eu\"".to_owned())
    );
    let endpoints = client
        .get("/config/v1/logs_config.additional_endpoints")
        .await
        .expect("nested");
    assert_eq!(endpoints.status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&endpoints.body).expect("json"),
        serde_json::json!([{"host": "intake.example.com"}])
    );
    let refused = client.get("/config/v1/hostname").await.expect("hostname");
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .text()
            .contains("querying config value 'hostname' is not allowed")
    );
    let missing = client.get("/config/v1/app_key").await.expect("app_key");
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let all = client.get("/config/v1/").await.expect("all");
    let all: serde_json::Value = serde_json::from_slice(&all.body).expect("json");
    assert_eq!(all["api_key"], "0123456789abcdef0123456789abcdef");
    assert!(all.get("hostname").is_none());

    let anonymous = IpcClient::with_tls(
        "127.0.0.1",
        ipc.port(),
        TestServer::wrong_token(),
        server.tls(ClientAuth::TokenOnly, &[b"h2"]),
    );
    assert_eq!(
        anonymous
            .get("/config/v1/site")
            .await
            .expect("answer")
            .status,
        StatusCode::FORBIDDEN
    );
    // The IPC server is not the CMD server: no /agent routes.
    assert_eq!(
        client.get("/agent/version").await.expect("answer").status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test]
async fn requests_addressed_to_other_host_names_are_refused() {
    let server = TestServer::start(|_| {}).await;
    let right = bearer(&server.token);
    let port = server.cmd.port();
    for (alpn, authority) in [
        (&b"h2"[..], "evil.example.com"),
        (&b"http/1.1"[..], "rebind.attacker.test"),
    ] {
        let request = http::Request::builder()
            .uri(format!("https://{authority}:{port}/agent/version"))
            .header(header::HOST, format!("{authority}:{port}"))
            .header(header::AUTHORIZATION, &right)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = raw_request(
            server.cmd,
            server.tls(ClientAuth::TokenOnly, &[alpn]),
            request,
        )
        .await;
        assert_eq!(
            response.status,
            StatusCode::MISDIRECTED_REQUEST,
            "{authority}"
        );
        assert!(
            response.text().contains("is not served here"),
            "{}",
            response.text()
        );
    }
    for allowed in ["localhost", "127.0.0.1", "[::1]"] {
        let request = http::Request::builder()
            .uri(format!("https://{allowed}:{port}/agent/version"))
            .header(header::AUTHORIZATION, &right)
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = raw_request(
            server.cmd,
            server.tls(ClientAuth::TokenOnly, &[b"h2"]),
            request,
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{allowed}");
    }
    let evil_origin: http::Uri = format!("https://evil.example.com:{port}")
        .parse()
        .expect("uri");
    let mut agent = AgentClient::with_origin(channel(&server.client()).await, evil_origin);
    let status = agent
        .get_hostname(HostnameRequest {})
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::PermissionDenied);
    server.stop().await;
}
