//! End-to-end: the everyday routes and commands against the real daemon over TLS, secrets from a
//! real backend script, flares opened and searched, and `dogd stop`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dogd_ipc::{AuthToken, ClientAuth, IpcCert, IpcClient};
use dogd_testkit::{Daemon, clean_command};
use http::StatusCode;
use nix::sys::signal::Signal;
use serde_json::Value;

fn dogd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_dogd"))
}

/// A running daemon plus clients for it.
struct Running {
    daemon: Daemon,
    port: u16,
}

impl Running {
    fn start(env: &[(&str, &str)]) -> Self {
        let mut all = vec![
            ("DD_CMD_PORT", "0"),
            ("DD_HOSTNAME", "ops-host.example.com"),
        ];
        all.extend_from_slice(env);
        let mut daemon = Daemon::spawn(dogd(), &["run"], &all);
        let port = daemon.server_addr("CMD API Server").port();
        daemon.wait_ready();
        Self { daemon, port }
    }

    fn state(&self) -> PathBuf {
        self.daemon.state_dir()
    }

    fn client(&self) -> IpcClient {
        let token = AuthToken::load(&self.state().join("auth_token")).expect("token");
        let cert = IpcCert::load(&self.state().join("ipc_cert.pem")).expect("cert");
        IpcClient::new("127.0.0.1", self.port, token, &cert).expect("client")
    }

    fn wrong_token_client(&self) -> IpcClient {
        let cert = IpcCert::load(&self.state().join("ipc_cert.pem")).expect("cert");
        let tls = dogd_ipc::client_config(&cert, ClientAuth::TokenOnly, &[b"h2"]).expect("tls");
        IpcClient::with_tls(
            "127.0.0.1",
            self.port,
            AuthToken::from_value(&"0".repeat(64)).expect("token"),
            tls,
        )
    }

    /// Runs a CLI command against this daemon (same home, same port, same extra environment).
    fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        clean_command(dogd(), self.daemon.home.path())
            .args(args)
            .env("DD_CMD_PORT", self.port.to_string())
            .envs(env.iter().copied())
            .output()
            .expect("run the CLI")
    }

    fn stop(mut self) -> Vec<String> {
        self.daemon.signal(Signal::SIGTERM);
        let (status, lines) = self.daemon.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "{}", lines.join("\n"));
        lines
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn json(response: &dogd_ipc::IpcResponse) -> Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|error| panic!("{error}: {}", response.text()))
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_route_refuses_a_wrong_token() {
    let running = Running::start(&[]);
    let rt = runtime();
    let client = running.wrong_token_client();
    for (method, path) in [
        ("GET", "/agent/status"),
        ("GET", "/agent/status/health"),
        ("GET", "/agent/core/status"),
        ("GET", "/agent/config"),
        ("GET", "/agent/config/list-runtime"),
        ("GET", "/agent/config/log_level"),
        ("POST", "/agent/config/log_level"),
        ("GET", "/agent/secrets"),
        ("POST", "/agent/secret/refresh"),
        ("POST", "/agent/flare"),
        ("POST", "/agent/stop"),
        ("GET", "/agent/telemetry"),
    ] {
        let response = rt.block_on(async {
            match method {
                "GET" => client.get(path).await,
                _ => client.post_form(path, &[("value", "debug")]).await,
            }
        });
        assert_eq!(
            response.expect("answer").status,
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }
    // The daemon is still running: the refused stop did nothing.
    let health = rt
        .block_on(running.client().get("/agent/status/health"))
        .expect("health");
    assert_eq!(health.status, StatusCode::OK);
    running.stop();
}

#[test]
fn health_and_status_routes_and_commands() {
    let running = Running::start(&[]);
    let rt = runtime();
    let client = running.client();

    let health = json(
        &rt.block_on(client.get("/agent/status/health"))
            .expect("health"),
    );
    assert_eq!(health["Healthy"], serde_json::json!(["aggregator", "api"]));
    assert_eq!(health["Unhealthy"], serde_json::json!([]));
    let cli = running.cli(&["health"], &[]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        stdout(&cli).starts_with("Agent health: PASS"),
        "{}",
        stdout(&cli)
    );

    let status = json(&rt.block_on(client.get("/agent/status")).expect("status"));
    assert_eq!(status["core"]["hostname"], "ops-host.example.com");
    assert_eq!(
        status["core"]["api_listeners"]["cmd"],
        format!("127.0.0.1:{}", running.port)
    );
    assert_eq!(
        status["core"]["components"]["healthy"],
        serde_json::json!(["aggregator", "api"])
    );
    let text = rt
        .block_on(client.get("/agent/status?format=text"))
        .expect("status text");
    assert!(text.text().starts_with("dogd\n====\n"), "{}", text.text());
    assert!(
        text.text().contains("  hostname: ops-host.example.com\n"),
        "{}",
        text.text()
    );
    let bad = rt
        .block_on(client.get("/agent/status?format=xml"))
        .expect("bad format");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("use format=json or format=text"));

    let section = json(
        &rt.block_on(client.get("/agent/core/status"))
            .expect("section"),
    );
    assert_eq!(section["hostname"], "ops-host.example.com");
    let missing = rt
        .block_on(client.get("/agent/nope/status"))
        .expect("missing section");
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.text().contains("sections are core"),
        "{}",
        missing.text()
    );

    let cli = running.cli(&["status"], &[]);
    assert!(stdout(&cli).contains("uptime: "), "{}", stdout(&cli));
    let cli = running.cli(&["status", "core", "--json"], &[]);
    let parsed: Value = serde_json::from_str(&stdout(&cli)).expect("json");
    assert_eq!(
        parsed["pid"].as_i64(),
        Some(i64::from(running.daemon.pid()))
    );
    running.stop();
}

#[test]
fn log_level_changes_at_runtime_and_bad_values_change_nothing() {
    let running = Running::start(&[("DD_API_KEY", "0123456789abcdef0123456789abcdef")]);
    let rt = runtime();
    let client = running.client();
    let mut daemon = running;

    let listed = json(
        &rt.block_on(client.get("/agent/config/list-runtime"))
            .expect("list"),
    );
    assert_eq!(listed["log_level"]["value"], "info");
    assert_eq!(listed["log_level"]["source"], "default");
    let current = json(
        &rt.block_on(client.get("/agent/config/log_level"))
            .expect("get"),
    );
    assert_eq!(
        current,
        serde_json::json!({"value": "info", "source": "default"})
    );

    let bad = rt
        .block_on(client.post_form("/agent/config/log_level", &[("value", "loud")]))
        .expect("bad value");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text().contains("expected one of trace, debug"),
        "{}",
        bad.text()
    );
    let missing = rt
        .block_on(client.post_form("/agent/config/log_level", &[("other", "x")]))
        .expect("no value");
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let unknown = rt
        .block_on(client.post_form("/agent/config/nope", &[("value", "1")]))
        .expect("unknown");
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        json(
            &rt.block_on(client.get("/agent/config/log_level"))
                .expect("get")
        )["value"],
        "info"
    );

    // The change shows in the very next log lines: request log lines are at debug level.
    let set = daemon.cli(&["config", "set", "log_level", "debug"], &[]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(stdout(&set), "log_level is now set to: debug\n");
    rt.block_on(client.get("/agent/version")).expect("version");
    daemon
        .daemon
        .wait_for_line("| DEBUG | ", Duration::from_secs(10));
    daemon.daemon.wait_for_line(
        "CMD API Server: GET /agent/version 200",
        Duration::from_secs(10),
    );
    let get = daemon.cli(&["config", "get", "log_level"], &[]);
    assert_eq!(
        stdout(&get),
        "log_level is set to: debug (source: runtime)\n"
    );
    let list = daemon.cli(&["config", "list-runtime"], &[]);
    assert!(
        stdout(&list).contains("log_level") && stdout(&list).contains("(runtime)"),
        "{}",
        stdout(&list)
    );

    // The full config dump is YAML, with the API key scrubbed.
    let dump = rt.block_on(client.get("/agent/config")).expect("config");
    let yaml = dump.text();
    assert!(yaml.contains("cmd_port: 0"), "{yaml}");
    assert!(yaml.contains("log_level: debug"), "{yaml}");
    assert!(!yaml.contains("0123456789abcdef0123456789a"), "{yaml}");
    assert!(yaml.contains("bcdef"), "last five characters kept: {yaml}");
    let cli = daemon.cli(&["config"], &[]);
    assert_eq!(
        stdout(&cli),
        if yaml.ends_with('\n') {
            yaml.clone()
        } else {
            format!("{yaml}\n")
        }
    );
    daemon.stop();
}

/// Writes an executable backend script (mode 0700) resolving handles from `values_file`.
fn write_backend(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write backend");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

const PY_BACKEND: &str = r#"#!/usr/bin/env python3
import json, sys
request = json.load(sys.stdin)
values = json.load(open(sys.argv[1]))
print(json.dumps({h: ({"value": values[h], "error": None} if h in values else {"value": None, "error": "unknown handle"}) for h in request["secrets"]}))
"#;

fn secrets_config(dir: &Path, backend: &Path, extra: &str) -> PathBuf {
    let config = dir.join("datadog.yaml");
    std::fs::write(
        &config,
        format!(
            "api_key: ENC[dd_api_key]\nproxy:\n  https: ENC[proxy_url]\nsecret_backend_command: {}\nsecret_backend_arguments: [{}]\nlog_file: {}\n{extra}",
            backend.display(),
            dir.join("values.json").display(),
            dir.join("dogd.log").display()
        ),
    )
    .expect("write config");
    config
}

const API_KEY_SECRET: &str = "fedcba9876543210fedcba9876543210";
const PROXY_SECRET: &str = "http://proxyuser:Sup3rS3cretPr0xy@proxy.internal:3128";

#[test]
fn secrets_resolve_at_start_and_never_leave_the_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("values.json"),
        serde_json::json!({"dd_api_key": API_KEY_SECRET, "proxy_url": PROXY_SECRET}).to_string(),
    )
    .expect("values");
    let backend = write_backend(dir.path(), "backend.py", PY_BACKEND, 0o700);
    let config = secrets_config(dir.path(), &backend, "");
    let cfg = config.display().to_string();
    let running = Running::start(&[("DD_CONF_PATH", &cfg)]);
    let rt = runtime();
    let client = running.client();

    let listing = running.cli(&["secret"], &[("DD_CONF_PATH", &cfg)]);
    let text = stdout(&listing);
    assert!(text.contains("'dd_api_key': used in api_key"), "{text}");
    assert!(text.contains("'proxy_url': used in proxy.https"), "{text}");
    let listing = json(
        &rt.block_on(client.get("/agent/secrets?format=json"))
            .expect("secrets"),
    );
    assert_eq!(
        listing["handles"]["dd_api_key"]["used_in"],
        serde_json::json!(["api_key"])
    );

    let dump = rt
        .block_on(client.get("/agent/config"))
        .expect("config")
        .text();
    assert!(
        dump.contains("ENC[dd_api_key]") && dump.contains("ENC[proxy_url]"),
        "{dump}"
    );

    // Refresh picks up new values.
    std::fs::write(
        dir.path().join("values.json"),
        serde_json::json!({"dd_api_key": "00000000000000000000000000000001", "proxy_url": PROXY_SECRET}).to_string(),
    )
    .expect("values");
    let refreshed = running.cli(&["secret", "refresh"], &[("DD_CONF_PATH", &cfg)]);
    assert_eq!(
        stdout(&refreshed),
        "Refreshed 2 secrets\n",
        "{}",
        String::from_utf8_lossy(&refreshed.stderr)
    );

    let flare = json(
        &rt.block_on(client.post_form("/agent/flare", &[]))
            .expect("flare"),
    );
    let flare_path = PathBuf::from(flare.as_str().expect("path"));
    let files = read_zip(&flare_path);
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    for expected in [
        "ops-host.example.com/config/datadog.yaml",
        "ops-host.example.com/status.log",
        "ops-host.example.com/status.json",
        "ops-host.example.com/health.json",
        "ops-host.example.com/runtime_settings.json",
        "ops-host.example.com/telemetry.txt",
        "ops-host.example.com/envvars.txt",
        "ops-host.example.com/version.json",
        "ops-host.example.com/secrets.txt",
        "ops-host.example.com/logs/dogd.log",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let status_log = &files
        .iter()
        .find(|(name, _)| name.ends_with("/status.log"))
        .expect("status")
        .1;
    assert!(String::from_utf8_lossy(status_log).contains("ops-host.example.com"));
    let lines = running.stop();

    // Search every byte that left the process for the secrets.
    let log_file = std::fs::read(dir.path().join("dogd.log")).expect("log file");
    let stderr = lines.join("\n").into_bytes();
    for secret in [
        API_KEY_SECRET,
        "Sup3rS3cretPr0xy",
        "00000000000000000000000000000001",
    ] {
        for (name, contents) in &files {
            assert!(!contains(contents, secret), "{secret} in flare file {name}");
        }
        assert!(!contains(&log_file, secret), "{secret} in the log file");
        assert!(!contains(&stderr, secret), "{secret} in stderr");
        assert!(
            !contains(dump.as_bytes(), secret),
            "{secret} in the config dump"
        );
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn read_zip(path: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read as _;
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(path).expect("flare file")).expect("zip");
    (0..archive.len())
        .map(|index| {
            let mut entry = archive.by_index(index).expect("entry");
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).expect("read entry");
            (entry.name().expect("entry name").to_string(), contents)
        })
        .collect()
}

fn start_fails_with(dir: &Path, backend_body: &str, mode: u32, extra: &str) -> String {
    std::fs::write(
        dir.join("values.json"),
        r#"{"dd_api_key": "x", "proxy_url": "y"}"#,
    )
    .expect("values");
    let backend = write_backend(dir, "backend.sh", backend_body, mode);
    let config = secrets_config(dir, &backend, extra);
    let mut daemon = Daemon::spawn(
        dogd(),
        &["run", "-c", &config.display().to_string()],
        &[("DD_CMD_PORT", "0")],
    );
    let (status, lines) = daemon.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{}", lines.join("\n"));
    lines.join("\n")
}

#[test]
fn group_writable_secret_backend_is_refused_without_running_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    let body = format!("#!/bin/sh\ntouch {}\necho '{{}}'\n", marker.display());
    let output = start_fails_with(dir.path(), &body, 0o770, "");
    assert!(
        output.contains("gives rights to group") && output.contains("write"),
        "{output}"
    );
    assert!(output.contains("chmod 700"), "the fix is named: {output}");
    assert!(!marker.exists(), "the backend must not run");
}

#[test]
fn secret_backend_past_its_timeout_fails_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let output = start_fails_with(
        dir.path(),
        "#!/bin/sh\nsleep 30\n",
        0o700,
        "secret_backend_timeout: 1\n",
    );
    assert!(output.contains("timed out"), "{output}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn secret_backend_printing_garbage_fails_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = start_fails_with(
        dir.path(),
        "#!/bin/sh\necho 'this is not json'\n",
        0o700,
        "",
    );
    assert!(
        output.contains("JSON") || output.contains("json"),
        "{output}"
    );
    assert!(
        !output.contains("this is not json"),
        "backend output must not be echoed: {output}"
    );
}

#[test]
fn flare_without_a_daemon_is_built_locally_and_says_so() {
    let home = tempfile::tempdir().expect("home");
    let output = clean_command(dogd(), home.path())
        .args(["flare"])
        .env("DD_API_KEY", "0123456789abcdef0123456789abcdef")
        .env("DD_CMD_PORT", "1")
        .output()
        .expect("flare");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = stdout(&output);
    let path = text
        .trim()
        .strip_prefix("Local flare written (dogd is not running): ")
        .expect(&text);
    let files = read_zip(Path::new(path));
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.iter().any(|name| name.ends_with("/FLARE_NOTE.txt")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|name| name.ends_with("/config/datadog.yaml")),
        "{names:?}"
    );
    for (name, contents) in &files {
        assert!(
            !contains(contents, "0123456789abcdef0123456789a"),
            "api key in {name}"
        );
    }
    assert!(String::from_utf8_lossy(&output.stderr).contains("building a local flare"));
}

#[test]
fn dogd_stop_ends_the_daemon_and_waits_for_it() {
    let mut running = Running::start(&[]);
    let output = running.cli(&["stop"], &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout(&output).contains(&format!("dogd (pid {}) stopped", running.daemon.pid())),
        "{}",
        stdout(&output)
    );
    let (status, lines) = running.daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    assert!(
        lines
            .iter()
            .any(|line| line.contains("stop requested through the API")),
        "{}",
        lines.join("\n")
    );
    assert!(
        !running.state().join("dogd.pid").exists(),
        "pid file removed"
    );
}

#[test]
fn telemetry_is_served_on_the_cmd_server_and_the_opt_in_plain_port() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port().to_string();
    drop(free);
    let running = Running::start(&[("DD_TELEMETRY_PORT", &port)]);
    let rt = runtime();
    let client = running.client();
    rt.block_on(client.get("/agent/version")).expect("version");
    let over_tls = rt
        .block_on(client.get("/agent/telemetry"))
        .expect("telemetry")
        .text();
    assert!(
        over_tls.contains("# TYPE api_server__request_duration_seconds histogram"),
        "{over_tls}"
    );
    assert!(over_tls.contains(r#"path="/agent/version""#), "{over_tls}");

    let plain = std::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            &format!("http://127.0.0.1:{port}/telemetry"),
        ])
        .output()
        .expect("curl");
    let text = stdout(&plain);
    assert!(
        text.contains("api_server__request_duration_seconds_count{"),
        "{text}"
    );
    let other = std::process::Command::new("curl")
        .args([
            "--silent",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{port}/agent/version"),
        ])
        .output()
        .expect("curl");
    assert_eq!(stdout(&other), "404");
    running.stop();
}
