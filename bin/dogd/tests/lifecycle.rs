//! End-to-end: the real binary starts, becomes ready, and stops on signals; bad config exits 2.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dogd_testkit::Daemon;
use nix::sys::signal::Signal;

fn dogd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_dogd"))
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> Daemon {
    // Port 0: tests run in parallel and must not collide on 5001.
    let mut env = env.to_vec();
    env.push(("DD_CMD_PORT", "0"));
    Daemon::spawn(dogd(), args, &env)
}

fn dogd_command(home: &Path) -> Command {
    dogd_testkit::clean_command(dogd(), home)
}

#[test]
fn run_becomes_ready_and_exits_zero_on_sigterm_within_five_seconds() {
    let mut daemon = spawn(&["run"], &[]);
    let ready = daemon.wait_ready();
    // The agent's line layout: "<date> <time> UTC | DOGD | INFO | (file:line in module) | message".
    let fields: Vec<&str> = ready.split(" | ").collect();
    assert_eq!(fields.len(), 5, "{ready}");
    assert!(fields[0].ends_with(" UTC"), "{ready}");
    assert_eq!(&fields[1..3], ["DOGD", "INFO"], "{ready}");
    assert!(
        fields[3].starts_with("(run.rs:") && fields[3].contains(" in dogd::run)"),
        "{ready}"
    );
    assert!(
        daemon.state_dir().is_dir(),
        "state dir created under the user's home"
    );

    let sent = Instant::now();
    daemon.signal(Signal::SIGTERM);
    let (status, lines) = daemon.wait_exit(Duration::from_secs(5));
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", lines.join("\n"));
    assert!(
        lines.iter().any(|line| line.contains("received SIGTERM")),
        "{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|line| line.ends_with("| dogd stopped")),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn run_exits_zero_on_sigint() {
    let mut daemon = spawn(&["run"], &[]);
    daemon.wait_ready();
    daemon.signal(Signal::SIGINT);
    let (status, _) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bad_config_file_exits_two_naming_key_value_and_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("datadog.yaml");
    std::fs::write(&path, "api_key: abc\ncmd_port: 70000\n").expect("write config");
    let cfgpath = path.display().to_string();
    let mut daemon = spawn(&["run", "-c", &cfgpath], &[]);
    let (status, lines) = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2));
    let all = lines.join("\n");
    assert!(
        all.contains(&format!(
            "invalid value for cmd_port: 70000 (from {cfgpath}): must be between 0 and 65535"
        )),
        "{all}"
    );
    assert!(!all.contains("dogd is ready"), "nothing may start: {all}");
}

#[test]
fn bad_environment_value_exits_two_naming_the_variable() {
    let mut daemon = Daemon::spawn(dogd(), &["run"], &[("DD_CMD_PORT", "http")]);
    let (status, lines) = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2));
    assert!(
        lines.join("\n").contains(
            "invalid value for cmd_port: \"http\" (from environment variable DD_CMD_PORT)"
        ),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn config_directory_from_dd_conf_path_is_used_and_bad_yaml_exits_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("datadog.yaml"), "log_level: [debug\n").expect("write config");
    let conf_dir = dir.path().display().to_string();
    let mut daemon = spawn(&["run"], &[("DD_CONF_PATH", &conf_dir)]);
    let (status, lines) = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2));
    assert!(
        lines.join("\n").contains("is not valid YAML"),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn log_file_receives_the_same_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("logs/dogd.log");
    let log_path = log.display().to_string();
    let mut daemon = spawn(
        &["run"],
        &[("DD_LOG_FILE", &log_path), ("DD_LOG_LEVEL", "debug")],
    );
    daemon.wait_ready();
    daemon.signal(Signal::SIGTERM);
    let (status, _) = daemon.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    let written = std::fs::read_to_string(&log).expect("log file");
    assert!(
        written.contains("| DOGD | INFO |") && written.contains("dogd is ready"),
        "{written}"
    );
}

#[test]
fn config_check_prints_effective_values_with_sources() {
    let home = tempfile::tempdir().expect("home");
    let path = home.path().join("datadog.yaml");
    std::fs::write(
        &path,
        "api_key: 0123456789abcdef0123456789abcdef\nsite: datadoghq.eu\n\
         proxy:\n  https: http://dd:Pr0xyPassw0rd@proxy.corp:3128\n",
    )
    .expect("config");
    let output = dogd_command(home.path())
        .args(["config", "check", "--json", "-c"])
        .arg(&path)
        .env("DD_CMD_PORT", "5999")
        .output()
        .expect("run config check");
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json output");
    let settings = &doc["settings"];
    assert_eq!(settings["cmd_port"]["value"], 5999);
    assert_eq!(settings["cmd_port"]["origin"], "env DD_CMD_PORT");
    assert_eq!(settings["site"]["source"], "file");
    assert_eq!(settings["server_timeout"]["source"], "default");
    // Credentials are redacted, keeping the last five characters as the agent does.
    assert_eq!(
        settings["api_key"]["value"],
        format!("{}bcdef", "*".repeat(27))
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("0123456789abcdef"));
    // Credentials inside other values (a proxy URL) go through the scrubber.
    assert_eq!(
        settings["proxy.https"]["value"],
        "http://dd:********@proxy.corp:3128"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("Pr0xyPassw0rd"));
}

#[test]
fn version_prints_version_commit_and_rustc() {
    let home = tempfile::tempdir().expect("home");
    let output = dogd_command(home.path())
        .arg("version")
        .output()
        .expect("run version");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with(&format!("dogd {} - Commit: ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("Rust version: rustc "), "{text}");
}

#[test]
fn component_start_failure_exits_nonzero_naming_the_component_and_its_cause_once() {
    // DogStatsD enabled with every listener off cannot start.
    let mut daemon = spawn(&["run"], &[("DD_DOGSTATSD_PORT", "0")]);
    let (status, lines) = daemon.wait_exit(Duration::from_secs(10));
    assert_ne!(status.code(), Some(0), "{}", lines.join("\n"));
    let last_error = lines
        .iter()
        .rev()
        .find(|line| line.contains("| ERROR |"))
        .unwrap_or_else(|| panic!("no error line:\n{}", lines.join("\n")));
    assert!(
        last_error.contains("component 'dogstatsd' failed to start"),
        "{last_error}"
    );
    assert_eq!(
        last_error.matches("listens on nothing").count(),
        1,
        "the cause is printed exactly once: {last_error}"
    );
}
