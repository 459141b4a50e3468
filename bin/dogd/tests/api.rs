//! End-to-end: the real daemon's API with the real CLI, shared credentials, and start failures.

use std::path::Path;
use std::time::Duration;

use dogd_testkit::{Daemon, clean_command};
use nix::sys::signal::Signal;

fn dogd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_dogd"))
}

/// Runs a CLI command against the daemon's home and port.
fn cli(daemon: &Daemon, port: u16, args: &[&str]) -> std::process::Output {
    clean_command(dogd(), daemon.home.path())
        .args(args)
        .env("DD_CMD_PORT", port.to_string())
        .output()
        .expect("run dogd CLI")
}

#[test]
fn cli_asks_the_running_daemon_for_hostname_and_version() {
    let mut daemon = Daemon::spawn(
        dogd(),
        &["run"],
        &[
            ("DD_CMD_PORT", "0"),
            ("DD_HOSTNAME", "e2e-host.example.com"),
        ],
    );
    let addr = daemon.server_addr("CMD API Server");
    daemon.wait_ready();

    let hostname = cli(&daemon, addr.port(), &["hostname"]);
    assert!(
        hostname.status.success(),
        "{}",
        String::from_utf8_lossy(&hostname.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&hostname.stdout),
        "e2e-host.example.com\n"
    );

    let version = cli(&daemon, addr.port(), &["version", "--remote", "--json"]);
    assert!(
        version.status.success(),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&version.stdout).expect("json");
    assert_eq!(json["Minor"], 1);
    assert!(json["Commit"].is_string());

    daemon.signal(Signal::SIGTERM);
    let (status, lines) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", lines.join("\n"));
    assert!(
        lines
            .iter()
            .any(|line| line.contains("Stopped HTTP server 'CMD API Server'"))
    );
}

#[test]
fn cli_says_when_the_daemon_is_not_running_and_resolves_locally() {
    let home = tempfile::tempdir().expect("home");
    // Credentials exist (a previous run made them) but nothing listens.
    let mut daemon = Daemon::spawn_in(dogd(), home, &["run"], &[("DD_CMD_PORT", "0")]);
    let addr = daemon.server_addr("CMD API Server");
    daemon.signal(Signal::SIGTERM);
    daemon.wait_exit(Duration::from_secs(5));

    let version = cli(&daemon, addr.port(), &["version", "--remote"]);
    assert_eq!(version.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&version.stderr);
    assert!(stderr.contains("dogd is not running"), "{stderr}");

    let hostname = clean_command(dogd(), daemon.home.path())
        .args(["hostname"])
        .env("DD_CMD_PORT", addr.port().to_string())
        .env("DD_HOSTNAME", "local-fallback")
        .output()
        .expect("run");
    assert!(hostname.status.success());
    assert_eq!(
        String::from_utf8_lossy(&hostname.stdout),
        "local-fallback\n"
    );
    assert!(String::from_utf8_lossy(&hostname.stderr).contains("resolving the hostname locally"));
}

#[test]
fn cli_without_credentials_explains_where_they_come_from() {
    let home = tempfile::tempdir().expect("home");
    let output = clean_command(dogd(), home.path())
        .args(["version", "--remote"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("auth token not found")
            && stderr.contains("created by the first `dogd run`"),
        "{stderr}"
    );
}

#[test]
fn port_in_use_stops_the_start_and_exits_non_zero_with_the_reason() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let mut daemon = Daemon::spawn(dogd(), &["run"], &[("DD_CMD_PORT", &port)]);
    let (status, lines) = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", lines.join("\n"));
    let all = lines.join("\n");
    assert!(
        all.contains(&format!("cmd_port {port} (127.0.0.1) already in use")),
        "{all}"
    );
    assert!(!all.contains("dogd is ready"), "{all}");
}

#[test]
fn invalid_configured_hostname_exits_two_before_starting() {
    let mut daemon = Daemon::spawn(
        dogd(),
        &["run"],
        &[("DD_HOSTNAME", "bad_host"), ("DD_CMD_PORT", "0")],
    );
    let (status, lines) = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2));
    let all = lines.join("\n");
    assert!(
        all.contains("invalid value for hostname: \"bad_host\" (from env DD_HOSTNAME)"),
        "{all}"
    );
}

#[test]
fn eight_daemons_starting_at_once_share_one_token_and_certificate() {
    let state = tempfile::tempdir().expect("shared state dir");
    let run_path = state.path().join("run").display().to_string();
    let mut daemons: Vec<Daemon> = (0..8)
        .map(|_| {
            Daemon::spawn(
                dogd(),
                &["run"],
                &[("DD_CMD_PORT", "0"), ("DD_RUN_PATH", &run_path)],
            )
        })
        .collect();
    let fingerprints: Vec<String> = daemons
        .iter_mut()
        .map(|daemon| {
            let line = daemon.wait_for_line(
                "IPC auth primitives (fingerprint: ",
                Duration::from_secs(30),
            );
            line.rsplit_once("fingerprint: ")
                .expect("fingerprint")
                .1
                .trim_end_matches(')')
                .to_owned()
        })
        .collect();
    assert!(
        fingerprints.iter().all(|f| f == &fingerprints[0]),
        "{fingerprints:?}"
    );
    let token = std::fs::read_to_string(state.path().join("run/auth_token")).expect("token file");
    assert_eq!(token.len(), 64);
    let entries: Vec<_> = std::fs::read_dir(state.path().join("run"))
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // The pid file belongs to whichever daemon wrote it last and the local sink directory holds
    // flushes (no API key is set); anything else is a leftover.
    let mut entries: Vec<String> = entries
        .into_iter()
        .filter(|name| name != "dogd.pid" && name != "local_sink")
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["auth_token", "ipc_cert.pem"],
        "no temporary files left"
    );
    for daemon in &mut daemons {
        daemon.signal(Signal::SIGTERM);
        let (status, _) = daemon.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0));
    }
}
