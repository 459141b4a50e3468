//! Runs real `secret_backend_command` scripts, written to a temporary directory at test time.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use dogd_secrets::{BackendConfig, SecretBackend, SecretError};

/// Writing an executable while another test thread forks can leave a copy of the write descriptor
/// in the forked child until it execs, and running the script then fails with ETXTBSY. Scripts
/// are written under the write lock and run under the read lock.
static SPAWN: RwLock<()> = RwLock::new(());

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `body` as the executable `name` with `mode`.
    fn script(&self, name: &str, body: &str, mode: u32) -> PathBuf {
        let _guard = SPAWN.write().unwrap_or_else(PoisonError::into_inner);
        let path = self.path(name);
        std::fs::write(&path, body).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    fn backend(&self, command: &Path) -> SecretBackend {
        SecretBackend::new(BackendConfig::new(command))
    }
}

fn fetch(
    backend: &SecretBackend,
    handles: &[&str],
) -> Result<BTreeMap<String, String>, SecretError> {
    let handles: Vec<String> = handles.iter().map(|h| (*h).to_owned()).collect();
    let _guard = SPAWN.read().unwrap_or_else(PoisonError::into_inner);
    backend.fetch(&handles)
}

/// Answers every handle with `value-of-<handle>` and appends the request to `calls` next to itself.
const RESOLVER: &str = r#"#!/usr/bin/env python3
import json, os, sys
request = json.load(sys.stdin)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls"), "a") as calls:
    calls.write(json.dumps(request) + "\n")
print(json.dumps({h: {"value": "value-of-" + h, "error": None} for h in request["secrets"]}))
"#;

/// Creates `marker` next to itself, then answers `a`.
const MARKING: &str = r#"#!/bin/sh
touch "$(dirname "$0")/marker"
echo '{"a": {"value": "x", "error": null}}'
"#;

/// Whether `pid` is a live process (a zombie is not).
fn is_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        }
        Err(_) => false,
    }
}

fn wait_until_not_running(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if !is_running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

#[test]
fn two_handles_are_resolved_in_a_single_run_with_the_agent_payload() {
    let fx = Fixture::new();
    let command = fx.script("resolver.py", RESOLVER, 0o700);
    let values =
        fetch(&fx.backend(&command), &["db_pass", "api_key", "db_pass"]).expect("resolved");

    let expected: BTreeMap<String, String> = [
        ("api_key".to_owned(), "value-of-api_key".to_owned()),
        ("db_pass".to_owned(), "value-of-db_pass".to_owned()),
    ]
    .into();
    assert_eq!(values, expected);

    let calls = std::fs::read_to_string(fx.path("calls")).expect("calls");
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 1, "the command runs once: {calls}");
    let request: serde_json::Value = serde_json::from_str(lines[0]).expect("json");
    assert_eq!(
        request,
        serde_json::json!({
            "version": "1.0",
            "secrets": ["db_pass", "api_key"],
            "secret_backend_timeout": 30
        })
    );
}

#[test]
fn a_handle_the_command_reports_an_error_for_fails_naming_it_and_the_message() {
    let fx = Fixture::new();
    let command = fx.script(
        "errors.sh",
        r#"#!/bin/sh
cat > /dev/null
echo '{"good": {"value": "fine", "error": null}, "bad": {"value": null, "error": "not found in vault"}}'
"#,
        0o700,
    );
    let error = fetch(&fx.backend(&command), &["good", "bad"]).expect_err("bad handle");
    assert!(
        matches!(&error, SecretError::HandleError { handle, message, .. }
            if handle == "bad" && message == "not found in vault"),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("'bad'") && text.contains("not found in vault"),
        "{text}"
    );
    assert!(text.contains(&command.display().to_string()), "{text}");
    assert!(!text.contains("fine"), "{text}");
}

#[test]
fn a_handle_missing_from_the_answer_is_an_error() {
    let fx = Fixture::new();
    let command = fx.script("partial.sh", MARKING, 0o700);
    let error = fetch(&fx.backend(&command), &["a", "b"]).expect_err("missing");
    assert!(
        matches!(&error, SecretError::MissingHandle { handle, .. } if handle == "b"),
        "{error:?}"
    );
}

#[test]
fn an_empty_value_is_an_error_like_in_the_agent() {
    let fx = Fixture::new();
    let command = fx.script(
        "empty.sh",
        "#!/bin/sh\necho '{\"a\": {\"value\": \"\", \"error\": null}}'\n",
        0o700,
    );
    let error = fetch(&fx.backend(&command), &["a"]).expect_err("empty");
    assert!(
        matches!(&error, SecretError::EmptyValue { handle, .. } if handle == "a"),
        "{error:?}"
    );
}

#[test]
fn a_group_writable_command_is_refused_without_being_run() {
    let fx = Fixture::new();
    let command = fx.script("marking.sh", MARKING, 0o770);
    let error = fetch(&fx.backend(&command), &["a"]).expect_err("refused");
    let text = error.to_string();
    assert!(matches!(error, SecretError::UnsafeCommand { .. }), "{text}");
    assert!(
        text.contains("group (read, write, execute) (mode 0770)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("chmod 700 {}", command.display())),
        "{text}"
    );
    assert!(
        !fx.path("marker").exists(),
        "the refused command must not run"
    );

    // The same script with safe rights runs and leaves its marker: the check above can fail.
    std::fs::set_permissions(&command, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    fetch(&fx.backend(&command), &["a"]).expect("runs once fixed");
    assert!(fx.path("marker").exists());
}

#[test]
fn any_right_for_others_or_group_read_is_refused_as_in_the_agent() {
    let fx = Fixture::new();
    for mode in [0o704, 0o701, 0o740, 0o755] {
        let command = fx.script("marking.sh", MARKING, mode);
        let error = fetch(&fx.backend(&command), &["a"]).expect_err("refused");
        assert!(
            error.to_string().contains(&format!("(mode {mode:04o})")),
            "{error}"
        );
        assert!(!fx.path("marker").exists());
    }
}

#[test]
fn a_command_owned_by_another_user_is_refused_with_a_chown_fix() {
    let fx = Fixture::new();
    let command = fx.script("marking.sh", MARKING, 0o700);
    if let Err(error) = std::os::unix::fs::chown(&command, Some(65534), None) {
        eprintln!("skipped: cannot chown a file to another user here: {error}");
        return;
    }
    let error = fetch(&fx.backend(&command), &["a"]).expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("is owned by uid 65534, not by the user dogd runs as"),
        "{text}"
    );
    assert!(text.contains("fix: chown "), "{text}");
    assert!(
        !fx.path("marker").exists(),
        "the refused command must not run"
    );
}

#[test]
fn group_exec_permission_accepts_a_group_owned_command_only_when_enabled() {
    let fx = Fixture::new();
    let command = fx.script("marking.sh", MARKING, 0o750);
    let our_gid = std::fs::metadata(fx.dir.path()).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.gid()
    });
    let our_gid = our_gid.expect("stat");
    if let Err(error) = std::os::unix::fs::chown(&command, Some(65534), Some(our_gid)) {
        eprintln!("skipped: cannot chown a file to another user here: {error}");
        return;
    }
    let strict = fetch(&fx.backend(&command), &["a"]).expect_err("refused by default");
    assert!(
        matches!(strict, SecretError::UnsafeCommand { .. }),
        "{strict}"
    );
    assert!(!fx.path("marker").exists());

    let mut config = BackendConfig::new(&command);
    config.allow_group_exec = true;
    let values = fetch(&SecretBackend::new(config.clone()), &["a"]).expect("allowed");
    assert_eq!(values.get("a").map(String::as_str), Some("x"));
    assert!(fx.path("marker").exists());

    // Group write stays forbidden even then.
    std::fs::set_permissions(&command, std::fs::Permissions::from_mode(0o770)).expect("chmod");
    let error = fetch(&SecretBackend::new(config), &["a"]).expect_err("group write");
    assert!(error.to_string().contains("chmod 750"), "{error}");
}

#[test]
fn a_missing_file_a_directory_and_a_non_executable_file_are_refused() {
    let fx = Fixture::new();
    let missing = fetch(&fx.backend(&fx.path("nope.sh")), &["a"]).expect_err("missing");
    assert!(
        matches!(missing, SecretError::Inaccessible { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("nope.sh"), "{missing}");

    let dir = fetch(&fx.backend(fx.dir.path()), &["a"]).expect_err("directory");
    assert!(
        dir.to_string()
            .contains("is not a regular file (it is a directory)"),
        "{dir}"
    );

    let command = fx.script("noexec.sh", MARKING, 0o600);
    let error = fetch(&fx.backend(&command), &["a"]).expect_err("not executable");
    assert!(
        error
            .to_string()
            .contains("is not executable by its owner (mode 0600)"),
        "{error}"
    );
    assert!(!fx.path("marker").exists());
}

#[test]
fn no_handles_means_no_run_and_an_empty_handle_is_refused_before_running() {
    let fx = Fixture::new();
    let command = fx.script("marking.sh", MARKING, 0o700);
    let backend = fx.backend(&command);
    assert!(fetch(&backend, &[]).expect("nothing to do").is_empty());
    let error = fetch(&backend, &["a", ""]).expect_err("empty handle");
    assert!(matches!(error, SecretError::EmptyHandle), "{error}");
    assert!(!fx.path("marker").exists());
}

#[test]
fn a_command_running_past_the_timeout_is_killed_with_its_children() {
    let fx = Fixture::new();
    let command = fx.script(
        "slow.sh",
        r#"#!/bin/sh
dir=$(dirname "$0")
sleep 30 &
echo $! > "$dir/child.pid"
echo $$ > "$dir/pid"
echo "waiting for the vault" >&2
wait
"#,
        0o700,
    );
    let mut config = BackendConfig::new(&command);
    config.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let error = fetch(&SecretBackend::new(config), &["a"]).expect_err("timeout");
    let elapsed = started.elapsed();

    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(matches!(error, SecretError::Timeout { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "secret_backend_command '{}' timed out after 300ms",
            command.display()
        )),
        "{text}"
    );
    assert!(text.contains("waiting for the vault"), "{text}");
    let pid = read_pid(&fx.path("pid"));
    let child = read_pid(&fx.path("child.pid"));
    assert!(
        wait_until_not_running(pid),
        "the command {pid} is still running"
    );
    assert!(
        wait_until_not_running(child),
        "its child {child} is still running"
    );
}

#[test]
fn a_child_left_holding_stdout_open_cannot_hang_the_fetch() {
    let fx = Fixture::new();
    let command = fx.script(
        "leaky.sh",
        r#"#!/bin/sh
sleep 30 &
echo $! > "$(dirname "$0")/child.pid"
echo '{"a": {"value": "x", "error": null}}'
"#,
        0o700,
    );
    let mut config = BackendConfig::new(&command);
    config.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let error = fetch(&SecretBackend::new(config), &["a"]).expect_err("stdout never closed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(error, SecretError::Timeout { .. }), "{error}");
    let child = read_pid(&fx.path("child.pid"));
    assert!(
        wait_until_not_running(child),
        "the leftover child {child} is still running"
    );
}

#[test]
fn output_that_is_not_json_is_reported_by_size_without_echoing_it() {
    let fx = Fixture::new();
    let command = fx.script(
        "garbage.sh",
        "#!/bin/sh\nprintf 'password=hunter2\\n'\n",
        0o700,
    );
    let error = fetch(&fx.backend(&command), &["a"]).expect_err("garbage");
    let text = error.to_string();
    assert!(
        matches!(error, SecretError::InvalidJson { size: 17, .. }),
        "{text}"
    );
    assert!(
        text.contains("printed 17 bytes that are not valid JSON"),
        "{text}"
    );
    assert!(text.contains("line 1 column"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn output_larger_than_the_maximum_is_refused() {
    let fx = Fixture::new();
    let command = fx.script(
        "big.py",
        r#"#!/usr/bin/env python3
import json
print(json.dumps({"a": {"value": "x" * 10000, "error": None}}))
"#,
        0o700,
    );
    let mut config = BackendConfig::new(&command);
    config.output_max_size = 1000;
    let error = fetch(&SecretBackend::new(config.clone()), &["a"]).expect_err("too big");
    assert!(
        matches!(error, SecretError::OutputTooLarge { max: 1000, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("more than 1000 bytes"),
        "{error}"
    );

    config.output_max_size = 20_000;
    let values = fetch(&SecretBackend::new(config), &["a"]).expect("fits");
    assert_eq!(values.get("a").map(String::len), Some(10_000));
}

#[test]
fn endless_output_is_cut_off_quickly_and_the_command_killed() {
    let fx = Fixture::new();
    let command = fx.script(
        "endless.sh",
        "#!/bin/sh\necho $$ > \"$(dirname \"$0\")/pid\"\nyes\n",
        0o700,
    );
    let started = Instant::now();
    let error = fetch(&fx.backend(&command), &["a"]).expect_err("too big");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, SecretError::OutputTooLarge { .. }),
        "{error}"
    );
    assert!(wait_until_not_running(read_pid(&fx.path("pid"))));
}

#[test]
fn a_non_zero_exit_reports_the_status_and_the_end_of_stderr() {
    let fx = Fixture::new();
    let command = fx.script(
        "fails.sh",
        "#!/bin/sh\necho 'connecting' >&2\necho 'vault: permission denied' >&2\nexit 3\n",
        0o700,
    );
    let error = fetch(&fx.backend(&command), &["a"]).expect_err("fails");
    let text = error.to_string();
    assert!(matches!(error, SecretError::Failed { .. }), "{text}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(
        text.contains("stderr: connecting\nvault: permission denied"),
        "{text}"
    );
}

#[test]
fn a_command_killed_by_a_signal_says_which() {
    let fx = Fixture::new();
    let command = fx.script("killed.sh", "#!/bin/sh\nkill -TERM $$\n", 0o700);
    let error = fetch(&fx.backend(&command), &["a"]).expect_err("killed");
    assert!(
        error.to_string().contains("was killed by signal SIGTERM"),
        "{error}"
    );
}

#[test]
fn a_chatty_stderr_cannot_deadlock_the_command() {
    let fx = Fixture::new();
    let command = fx.script(
        "chatty.py",
        r#"#!/usr/bin/env python3
import json, sys
request = json.load(sys.stdin)
for _ in range(1024):
    sys.stderr.write("log line " * 113 + "\n")
sys.stderr.flush()
print(json.dumps({h: {"value": "ok", "error": None} for h in request["secrets"]}))
"#,
        0o700,
    );
    let values = fetch(&fx.backend(&command), &["a"]).expect("resolved");
    assert_eq!(values.get("a").map(String::as_str), Some("ok"));
}

#[test]
fn a_payload_larger_than_a_pipe_buffer_is_delivered() {
    let fx = Fixture::new();
    let command = fx.script("resolver.py", RESOLVER, 0o700);
    let handles: Vec<String> = (0..5000).map(|i| format!("handle-number-{i:08}")).collect();
    let refs: Vec<&str> = handles.iter().map(String::as_str).collect();
    let values = fetch(&fx.backend(&command), &refs).expect("resolved");
    assert_eq!(values.len(), 5000);
    assert_eq!(
        values.get("handle-number-00004999").map(String::as_str),
        Some("value-of-handle-number-00004999")
    );
}

#[test]
fn arguments_are_passed_to_the_command_as_is() {
    let fx = Fixture::new();
    let command = fx.script(
        "args.py",
        r#"#!/usr/bin/env python3
import json, sys
json.load(sys.stdin)
print(json.dumps({"argv": {"value": json.dumps(sys.argv[1:]), "error": None}}))
"#,
        0o700,
    );
    let mut config = BackendConfig::new(&command);
    config.arguments = vec!["--vault".into(), "prod env".into(), "x=$HOME".into()];
    let values = fetch(&SecretBackend::new(config), &["argv"]).expect("resolved");
    assert_eq!(
        values.get("argv").map(String::as_str),
        Some(r#"["--vault", "prod env", "x=$HOME"]"#)
    );
}

#[test]
fn the_environment_is_passed_through_like_in_the_agent() {
    let fx = Fixture::new();
    let command = fx.script(
        "env.sh",
        "#!/bin/sh\nprintf '{\"home\": {\"value\": \"%s\"}}' \"$HOME\"\n",
        0o700,
    );
    let values = fetch(&fx.backend(&command), &["home"]).expect("resolved");
    let ours = std::env::var("HOME").expect("HOME is set for tests");
    assert_eq!(values.get("home"), Some(&ours));
}

#[test]
fn trailing_line_breaks_are_stripped_when_configured() {
    let fx = Fixture::new();
    let command = fx.script(
        "newline.sh",
        "#!/bin/sh\nprintf '%s\\n' '{\"a\": {\"value\": \"pw\\n\"}}'\n",
        0o700,
    );
    let kept = fetch(&fx.backend(&command), &["a"]).expect("resolved");
    assert_eq!(kept.get("a").map(String::as_str), Some("pw\n"));
    let mut config = BackendConfig::new(&command);
    config.remove_trailing_line_break = true;
    let trimmed = fetch(&SecretBackend::new(config), &["a"]).expect("resolved");
    assert_eq!(trimmed.get("a").map(String::as_str), Some("pw"));
}
