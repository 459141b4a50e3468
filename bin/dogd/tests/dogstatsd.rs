//! End-to-end: `dogd run` receives DogStatsD from the real Python client over UDP and a Unix
//! socket; stats, status and the socket file behave as users expect.

use std::path::Path;
use std::time::{Duration, Instant};

use dogd_testkit::{Daemon, clean_command, free_udp_port};
use nix::sys::signal::Signal;
use serde_json::Value;

fn dogd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_dogd"))
}

const PY_SENDER: &str = r#"
import sys
from datadog.dogstatsd import DogStatsd
port, socket_path = int(sys.argv[1]), sys.argv[2]
udp = DogStatsd(host="127.0.0.1", port=port, disable_telemetry=True)
uds = DogStatsd(socket_path=socket_path, disable_telemetry=True)
for i in range(5):
    udp.increment("e2e.requests", tags=["route:/home"])
    uds.gauge("e2e.queue", i, tags=["queue:jobs"])
udp.flush(); uds.flush()
udp.close_socket(); uds.close_socket()
"#;

fn cli(daemon: &Daemon, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    clean_command(dogd(), daemon.home.path())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run the CLI")
}

#[test]
fn python_client_metrics_show_in_dogstatsd_stats_and_status() {
    let work = tempfile::tempdir().expect("tempdir");
    let socket = work.path().join("dsd.socket");
    let udp_port = free_udp_port().to_string();
    let socket_text = socket.display().to_string();
    let mut daemon = Daemon::spawn(
        dogd(),
        &["run"],
        &[
            ("DD_CMD_PORT", "0"),
            ("DD_DOGSTATSD_PORT", &udp_port),
            ("DD_DOGSTATSD_SOCKET", &socket_text),
        ],
    );
    let cmd_port = daemon.server_addr("CMD API Server").port().to_string();
    daemon.wait_ready();
    let env = [("DD_CMD_PORT", cmd_port)];

    // Off by default, with the agent's error and a hint.
    let off = cli(&daemon, &env, &["dogstatsd-stats"]);
    assert_eq!(off.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&off.stderr);
    assert!(
        stderr.contains("Dogstatsd metrics stats not enabled"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dogd config set dogstatsd_metrics_stats_enable true"),
        "{stderr}"
    );

    let on = cli(
        &daemon,
        &env,
        &["config", "set", "dogstatsd_metrics_stats_enable", "true"],
    );
    assert!(
        on.status.success(),
        "{}",
        String::from_utf8_lossy(&on.stderr)
    );

    let python = dogd_testkit::python_with(Path::new(env!("CARGO_TARGET_TMPDIR")), &["datadog"]);
    let sent = std::process::Command::new(python)
        .args(["-c", PY_SENDER, &udp_port, &socket_text])
        .output()
        .expect("python");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let stats = loop {
        let output = cli(&daemon, &env, &["dogstatsd-stats", "--json"]);
        let stats: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let count = |name: &str| {
            stats
                .as_object()
                .into_iter()
                .flatten()
                .find(|(_, entry)| entry["name"] == name)
                .and_then(|(_, entry)| entry["count"].as_u64())
                .unwrap_or(0)
        };
        if count("e2e.requests") == 5 && count("e2e.queue") == 5 {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "stats never reached 5 each: {stats}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let requests = stats
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, entry)| entry["name"] == "e2e.requests")
        .map(|(_, entry)| entry.clone())
        .expect("requests");
    assert_eq!(requests["tags"], "route:/home");

    let table = cli(&daemon, &env, &["dogstatsd-stats"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("Metric"), "{text}");
    assert!(
        text.contains("e2e.queue") && text.contains("queue:jobs"),
        "{text}"
    );

    let status = cli(&daemon, &env, &["status", "dogstatsd", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(status["messages"]["metrics"], 10);
    assert!(
        status["udp"]["packets"]
            .as_u64()
            .is_some_and(|packets| packets >= 1),
        "{status}"
    );
    assert!(
        status["uds"]["packets"]
            .as_u64()
            .is_some_and(|packets| packets >= 1),
        "{status}"
    );
    assert_eq!(status["listeners"]["unix_datagram"], socket_text.as_str());

    assert!(socket.exists());
    daemon.signal(Signal::SIGTERM);
    let (exit, lines) = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{}", lines.join("\n"));
    assert!(!socket.exists(), "socket removed on stop");
}

#[test]
fn dogstatsd_stats_says_when_dogstatsd_is_off() {
    let mut daemon = Daemon::spawn(
        dogd(),
        &["run"],
        &[("DD_CMD_PORT", "0"), ("DD_USE_DOGSTATSD", "false")],
    );
    let cmd_port = daemon.server_addr("CMD API Server").port().to_string();
    daemon.wait_ready();
    let output = cli(&daemon, &[("DD_CMD_PORT", cmd_port)], &["dogstatsd-stats"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("Dogstatsd not enabled in the Agent configuration"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn invalid_mapper_profiles_exit_two_before_starting() {
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("datadog.yaml");
    std::fs::write(
        &config,
        "dogstatsd_mapper_profiles:\n  - name: broken\n    prefix: \"app.\"\n    mappings:\n      - match: \"app.(unclosed\"\n        match_type: regex\n        name: \"x\"\n",
    )
    .expect("write");
    let cfg = config.display().to_string();
    let port = free_udp_port().to_string();
    let mut daemon = Daemon::spawn(
        dogd(),
        &["run", "-c", &cfg],
        &[("DD_CMD_PORT", "0"), ("DD_DOGSTATSD_PORT", &port)],
    );
    let (exit, lines) = daemon.wait_exit(Duration::from_secs(10));
    let all = lines.join("\n");
    assert_eq!(exit.code(), Some(2), "{all}");
    assert!(
        all.contains("invalid value for dogstatsd_mapper_profiles"),
        "{all}"
    );
}
