//! dogd's CMD server vs bare servers on the same stack (tokio-rustls + hyper-util auto), each on its
//! own one-thread runtime, loaded in turn by h2load.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use dogd_api::{ApiBuilder, ApiServer, ApiSettings, BuildInfo};
use dogd_config::{ApiServerConfig, Config, Environment};
use dogd_core::{HealthRegistry, StopRequest, Supervisor};
use dogd_ipc::{AuthToken, IpcCert};
use dogd_proto::datadog::api::v1::agent_server::{Agent, AgentServer};
use dogd_proto::datadog::model::v1::{HostnameReply, HostnameRequest};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// Arguments of `dogd-bench api`.
#[derive(Debug, clap::Args)]
pub(crate) struct ApiArgs {
    /// Seconds per h2load run.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Alternating rounds per target (results are the median round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// h2load clients (connections).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// h2load concurrent streams per connection.
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Only the workloads whose name contains this (e.g. `HTTP` or `gRPC`), for profiling one.
    #[arg(long)]
    only: Option<String>,
}

/// h2load's warm-up before each measured run.
const WARM_UP_SECS: u64 = 1;

const VERSION_BODY: &str = r#"{"Commit":"bench","Major":0,"Meta":"","Minor":1,"Patch":0,"Pre":""}"#;

/// One h2load run's figures.
#[derive(Clone, Copy, Debug)]
struct Round {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The server thread's CPU time per request. Steadier than req/s on a shared machine: other
    /// tenants take wall time from the server, not CPU time per request.
    cpu_us_per_request: f64,
}

/// CPU time used so far by this process's threads named `name` (the scheduler's own account,
/// `/proc/self/task/*/schedstat`, in nanoseconds).
fn thread_cpu(name: &str) -> anyhow::Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task")? {
        let task = task?.path();
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        let schedstat = std::fs::read_to_string(task.join("schedstat"))?;
        total += schedstat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .with_context(|| format!("unreadable schedstat of {}", task.display()))?;
    }
    Ok(Duration::from_nanos(total))
}

/// A server on its own one-thread runtime (kept alive by holding the runtime).
struct Served {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

/// Thread names of the two servers' runtimes, to tell their CPU time apart.
const DOGD_THREAD: &str = "bench-dogd";
const BARE_THREAD: &str = "bench-bare";

/// A one-worker runtime whose threads are named `name`, so profiles tell the servers apart.
fn runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()?)
}

struct HostnameOnly;

#[tonic::async_trait]
impl Agent for HostnameOnly {
    async fn get_hostname(
        &self,
        _request: tonic::Request<HostnameRequest>,
    ) -> Result<tonic::Response<HostnameReply>, tonic::Status> {
        Ok(tonic::Response::new(HostnameReply {
            hostname: "bench-host".to_owned(),
        }))
    }
}

/// The baseline: TLS + hyper-util auto serving a fixed JSON body for HTTP and a bare tonic router
/// for gRPC, with no auth, routing table, telemetry or timeout.
fn serve_bare(cert: &IpcCert) -> anyhow::Result<Served> {
    let runtime = runtime(BARE_THREAD)?;
    let tls = TlsAcceptor::from(dogd_ipc::server_config(cert)?);
    let grpc = tonic::service::Routes::new(AgentServer::new(HostnameOnly)).into_axum_router();
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let tls = tls.clone();
            let grpc = grpc.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let grpc = grpc.clone();
                        async move {
                            let is_grpc = request
                                .headers()
                                .get(http::header::CONTENT_TYPE)
                                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                            if is_grpc {
                                let response =
                                    grpc.oneshot(request.map(tonic::body::Body::new)).await?;
                                Ok(response.map(tonic::body::Body::new))
                            } else {
                                Ok::<_, Infallible>(
                                    http::Response::builder()
                                        .header(http::header::CONTENT_TYPE, "application/json")
                                        .body(tonic::body::Body::new(Full::new(
                                            Bytes::from_static(VERSION_BODY.as_bytes()),
                                        )))
                                        .unwrap_or_default(),
                                )
                            }
                        }
                    },
                );
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Served {
        addr,
        _runtime: runtime,
    })
}

/// dogd's real API component, as `dogd run` builds it.
fn serve_dogd(
    dir: &Path,
    token: &AuthToken,
    cert: &IpcCert,
) -> anyhow::Result<(Served, Supervisor)> {
    let runtime = runtime(DOGD_THREAD)?;
    let yaml = format!("run_path: {}\ncmd_port: 0\n", dir.display());
    let config = Config::from_yaml(&dir.join("datadog.yaml"), &yaml, &Environment::default())?;
    let api = ApiServerConfig::from_config(&config)?;
    let server = ApiServer::new(
        ApiSettings {
            api,
            token: token.clone(),
            cert: cert.clone(),
            hostname: "bench-host".to_owned(),
            build: BuildInfo {
                version: "0.1.0".to_owned(),
                commit: "bench".to_owned(),
            },
            telemetry: dogd_telemetry::Registry::new(),
            config: Arc::new(config),
            drain_grace: Duration::from_secs(1),
            listen: dogd_api::ListenAddrs::default(),
        },
        ApiBuilder::new(),
    )?;
    let addrs = server.listen_addrs();
    let mut supervisor = Supervisor::new(
        Duration::from_secs(5),
        HealthRegistry::new(),
        StopRequest::new(),
    );
    supervisor.register(server);
    runtime.block_on(supervisor.start())?;
    let addr = addrs.cmd().context("dogd API did not report its address")?;
    Ok((
        Served {
            addr,
            _runtime: runtime,
        },
        supervisor,
    ))
}

/// Runs h2load once and reads its throughput and per-request latencies.
fn h2load(
    args: &ApiArgs,
    thread: &str,
    url: &str,
    headers: &[String],
    data: Option<&Path>,
    log: &Path,
) -> anyhow::Result<Round> {
    let _ = std::fs::remove_file(log);
    let mut command = Command::new("h2load");
    command
        .args([
            "-t1",
            "-c",
            &args.clients.to_string(),
            "-m",
            &args.streams.to_string(),
        ])
        .args(["-D", &args.duration.to_string()])
        .args(["--warm-up-time", &WARM_UP_SECS.to_string()])
        .arg(format!("--log-file={}", log.display()));
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(data) = data {
        command.arg("-d").arg(data);
    }
    let cpu_before = thread_cpu(thread)?;
    let output = command
        .arg(url)
        .output()
        .context("running h2load (apt-get install nghttp2-client)")?;
    let cpu = thread_cpu(thread)?.saturating_sub(cpu_before);
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "h2load failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let requests_per_sec = text
        .lines()
        .find_map(|line| line.strip_prefix("finished in "))
        .and_then(|rest| rest.split(", ").nth(1))
        .and_then(|rate| rate.trim_end_matches(" req/s").parse::<f64>().ok())
        .with_context(|| format!("no throughput in h2load output: {text}"))?;
    let summary = text
        .lines()
        .find(|line| line.starts_with("requests: "))
        .unwrap_or_default();
    if !summary.contains(" 0 failed, 0 errored") {
        bail!("h2load saw failures: {summary}");
    }
    let mut latencies: Vec<u64> = std::fs::read_to_string(log)?
        .lines()
        .filter_map(|line| {
            let mut columns = line.split('\t');
            let status = columns.nth(1)?;
            let micros = columns.next()?.parse::<u64>().ok()?;
            (status == "200").then_some(micros)
        })
        .collect();
    if latencies.is_empty() {
        bail!("h2load logged no successful requests: {text}");
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        #[allow(clippy::cast_precision_loss)]
        let ms = latencies[index] as f64 / 1e3;
        ms
    };
    // The CPU was also spent on the warm-up second, at the same (saturated) rate.
    #[allow(clippy::cast_precision_loss)]
    let requests = requests_per_sec * (args.duration + WARM_UP_SECS) as f64;
    Ok(Round {
        requests_per_sec,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / requests.max(1.0),
    })
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median_round(mut rounds: Vec<Round>) -> Round {
    rounds.sort_by(|a, b| a.requests_per_sec.total_cmp(&b.requests_per_sec));
    rounds[rounds.len() / 2]
}

pub(crate) fn run(args: &ApiArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = AuthToken::load_or_create(&dir.path().join("auth_token"))?;
    let cert = IpcCert::load_or_create(&dir.path().join("ipc_cert.pem"), &[])?;
    let bare = serve_bare(&cert)?;
    let (dogd, _supervisor) = serve_dogd(dir.path(), &token, &cert)?;
    let grpc_body: PathBuf = dir.path().join("hostname_request.bin");
    // One gRPC frame: not compressed, length 0 (an empty HostnameRequest).
    std::fs::write(&grpc_body, [0u8; 5])?;
    let log = dir.path().join("h2load.log");
    let auth = format!("authorization: Bearer {}", token.expose());
    // Both servers get the same request bytes (the bare ones ignore the token), so the
    // difference is only what the servers do with them.
    let grpc_headers = || {
        vec![
            "content-type: application/grpc".to_owned(),
            "te: trailers".to_owned(),
            auth.clone(),
        ]
    };

    type Target<'a> = (&'a str, String, Vec<String>, Option<&'a Path>);
    let pairs: Vec<(&str, Target<'_>, Target<'_>)> = vec![
        (
            "GET /agent/version (HTTP/2, TLS)",
            (
                "dogd",
                format!("https://{}/agent/version", dogd.addr),
                vec![auth.clone()],
                None,
            ),
            (
                "bare hyper + rustls",
                format!("https://{}/agent/version", bare.addr),
                vec![auth.clone()],
                None,
            ),
        ),
        (
            "gRPC Agent/GetHostname",
            (
                "dogd",
                format!("https://{}/datadog.api.v1.Agent/GetHostname", dogd.addr),
                grpc_headers(),
                Some(grpc_body.as_path()),
            ),
            (
                "bare tonic",
                format!("https://{}/datadog.api.v1.Agent/GetHostname", bare.addr),
                grpc_headers(),
                Some(grpc_body.as_path()),
            ),
        ),
    ];

    println!(
        "h2load -t1 -c{} -m{} -D{} ({} alternating rounds, median shown); each server on one tokio worker thread\n",
        args.clients, args.streams, args.duration, args.rounds
    );
    println!(
        "| Workload | Server | req/s | p50 | p99 | dogd / baseline | server CPU per request | baseline CPU / dogd CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (workload, ours, baseline) in &pairs {
        if args
            .only
            .as_ref()
            .is_some_and(|only| !workload.contains(only.as_str()))
        {
            continue;
        }
        let mut ours_rounds = Vec::new();
        let mut base_rounds = Vec::new();
        for _ in 0..args.rounds {
            ours_rounds.push(h2load(args, DOGD_THREAD, &ours.1, &ours.2, ours.3, &log)?);
            base_rounds.push(h2load(
                args,
                BARE_THREAD,
                &baseline.1,
                &baseline.2,
                baseline.3,
                &log,
            )?);
        }
        let cpu_ratio = median(base_rounds.iter().map(|r| r.cpu_us_per_request))
            / median(ours_rounds.iter().map(|r| r.cpu_us_per_request));
        let ours_median = median_round(ours_rounds);
        let base_median = median_round(base_rounds);
        let ratio = ours_median.requests_per_sec / base_median.requests_per_sec;
        for (name, round, ratio, cpu_ratio) in [
            (
                ours.0,
                ours_median,
                format!("{ratio:.2}×"),
                format!("{cpu_ratio:.2}×"),
            ),
            (baseline.0, base_median, String::new(), String::new()),
        ] {
            println!(
                "| {workload} | {name} | {:.0} | {:.2} ms | {:.2} ms | {ratio} | {:.2} µs | {cpu_ratio} |",
                round.requests_per_sec, round.p50_ms, round.p99_ms, round.cpu_us_per_request
            );
        }
    }
    Ok(())
}
