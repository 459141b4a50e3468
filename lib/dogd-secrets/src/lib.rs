//! Resolves `ENC[handle]` configuration values by running the user's `secret_backend_command`,
//! following the Datadog Agent's protocol and safety rules.
//!
//! # Protocol
//! The command is run once for all the handles to resolve. It receives on standard input
//! `{"version":"1.0","secrets":["h1","h2"],"secret_backend_timeout":30}`, then end-of-file, and
//! must print on standard output a JSON object with an entry per handle:
//! `{"h1":{"value":"...","error":null},"h2":{"value":null,"error":"not found"}}`. A handle with a
//! non-empty `error`, a handle missing from the answer, or an empty value fails the whole fetch,
//! as in the agent; entries for handles that were not asked for are ignored.
//!
//! # Safety rules
//! Before it is run, the command must be a regular file owned by the user dogd runs as,
//! executable by it, and give no rights at all to group or others (see [`BackendConfig`] for the
//! group-exec relaxation). It runs with dogd's environment and working directory (as in the
//! agent), in a process group of its own, under a deadline; its standard output is capped; if it
//! times out or writes too much, the whole group is killed and the child reaped.
//!
//! Resolved values never appear in this crate's errors, logs or `Debug` output, and neither does
//! the command's standard output: malformed output is described by size, JSON error position and
//! JSON types only. (The map [`SecretBackend::fetch`] returns holds plain `String`s: callers must
//! not log it.)
//!
//! # Differences from the agent
//! - `version` is `"1.0"`; the agent now sends `"1.1"`, the version that added `type` and
//!   `config` for its embedded secret-generic-connector (`secret_backend_type`), which dogd does
//!   not have. `secret_backend_timeout` is sent as the agent does.
//! - The owner check follows the agent's documentation and its older `check_rights_nix.go`; the
//!   current agent only checks the mode bits and `access(X_OK)`.
//! - `ENC[]` (empty handle) is refused before running instead of being sent to the command.
//! - On timeout or oversized output the whole process group is killed, not only the child, so a
//!   helper's own children cannot keep the pipes open.
//! - At most the last [`STDERR_EXCERPT_MAX`] bytes of standard error are kept (the agent buffers
//!   up to `secret_backend_output_max_size` and fails beyond it).

#![warn(missing_docs)]

mod error;
mod exec;
mod handle;
mod rights;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use error::SecretError;
pub use handle::{find_handles, parse_handle};

/// Default `secret_backend_timeout` (the agent's `SecretBackendTimeoutDefault`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default `secret_backend_output_max_size`, in bytes (the agent's
/// `SecretBackendOutputMaxSizeDefault`, 1 MiB).
pub const DEFAULT_OUTPUT_MAX_SIZE: usize = 1024 * 1024;

/// The `version` sent to the command: the protocol a plain `secret_backend_command` speaks.
pub const PAYLOAD_VERSION: &str = "1.0";

/// Most bytes of the command's standard error quoted in an error (its end is kept), and most bytes
/// of a handle's `error` text.
pub const STDERR_EXCERPT_MAX: usize = 1024;

/// How to run the backend command: the `secret_backend_*` settings of `datadog.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// `secret_backend_command`: the executable. A name without `/` is looked up in `PATH`
    /// (absolute entries only), as the agent's Go `exec` does.
    pub command: PathBuf,
    /// `secret_backend_arguments`: passed to the command as is.
    pub arguments: Vec<String>,
    /// `secret_backend_timeout`: how long the command may run before it is killed.
    pub timeout: Duration,
    /// `secret_backend_output_max_size`: most bytes accepted on standard output.
    pub output_max_size: usize,
    /// `secret_backend_command_allow_group_exec_perm`: also accept a command that its group may
    /// read and execute (never write), and one owned by another user when its group is one of
    /// dogd's and may execute it. Default `false`.
    pub allow_group_exec: bool,
    /// `secret_backend_remove_trailing_line_break`: strip trailing `\r` and `\n` from every value
    /// (before the empty check). Default `false`.
    pub remove_trailing_line_break: bool,
}

impl BackendConfig {
    /// The agent's defaults for `command`: no arguments, 30 s, 1 MiB, strict permissions, values
    /// kept verbatim.
    pub fn new(command: impl Into<PathBuf>) -> Self {
        Self {
            command: command.into(),
            arguments: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            output_max_size: DEFAULT_OUTPUT_MAX_SIZE,
            allow_group_exec: false,
            remove_trailing_line_break: false,
        }
    }
}

/// Resolves secret handles with a configured `secret_backend_command`.
#[derive(Debug, Clone)]
pub struct SecretBackend {
    config: BackendConfig,
}

/// What the command reads on standard input.
#[derive(Serialize)]
struct Payload<'a> {
    version: &'static str,
    secrets: &'a [&'a str],
    /// Seconds, rounded up; the current agent sends it (datadog-agent PR #43158) so that a helper
    /// can bound its own work.
    secret_backend_timeout: u64,
}

impl SecretBackend {
    /// A backend running the command described by `config`. Nothing is checked until
    /// [`SecretBackend::fetch`] or [`SecretBackend::check_permissions`].
    pub fn new(config: BackendConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &BackendConfig {
        &self.config
    }

    /// Resolves the command path and checks its ownership and permissions without running it;
    /// returns the path that would be run. For status pages and start-up diagnostics.
    pub fn check_permissions(&self) -> Result<PathBuf, SecretError> {
        let path = self.resolve()?;
        rights::check_rights(&path, self.config.allow_group_exec)?;
        Ok(path)
    }

    /// Runs the command once for all `handles` and returns each handle's value.
    ///
    /// Blocking: the command may run for up to the configured timeout. Call it before the async
    /// runtime starts, or from `spawn_blocking`. Duplicate handles are sent once; no handles means
    /// no run. An empty handle (`ENC[]`) is refused before anything runs.
    pub fn fetch(&self, handles: &[String]) -> Result<BTreeMap<String, String>, SecretError> {
        let mut seen = BTreeSet::new();
        let unique: Vec<&str> = handles
            .iter()
            .map(String::as_str)
            .filter(|handle| seen.insert(*handle))
            .collect();
        if unique.is_empty() {
            return Ok(BTreeMap::new());
        }
        if unique.contains(&"") {
            return Err(SecretError::EmptyHandle);
        }

        let path = self.check_permissions()?;
        let payload = serde_json::to_vec(&Payload {
            version: PAYLOAD_VERSION,
            secrets: &unique,
            secret_backend_timeout: timeout_secs(self.config.timeout),
        })
        .map_err(|error| SecretError::Io {
            path: path.clone(),
            source: std::io::Error::other(error),
        })?;
        tracing::debug!(command = %path.display(), handles = unique.len(), "running secret_backend_command");
        let stdout = exec::run(
            &path,
            &self.config.arguments,
            payload,
            self.config.timeout,
            self.config.output_max_size,
        )?;
        parse_output(
            &path,
            &stdout,
            &unique,
            self.config.remove_trailing_line_break,
        )
    }

    fn resolve(&self) -> Result<PathBuf, SecretError> {
        let path_var = std::env::var_os("PATH");
        rights::resolve_command(&self.config.command, path_var.as_deref())
    }
}

fn timeout_secs(timeout: Duration) -> u64 {
    let secs = timeout.as_secs();
    if timeout.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

/// Checks the command's answer against the requested handles. Nothing from `stdout` is copied
/// into an error except a handle's own `error` text.
fn parse_output(
    path: &Path,
    stdout: &[u8],
    handles: &[&str],
    remove_trailing_line_break: bool,
) -> Result<BTreeMap<String, String>, SecretError> {
    use serde_json::Value;

    let invalid = |detail: String| SecretError::InvalidOutput {
        path: path.to_path_buf(),
        detail,
    };
    let answer: Value = serde_json::from_slice(stdout).map_err(|error| {
        let detail = match error.classify() {
            // Syntax and EOF messages are fixed texts plus a position: they never quote input.
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                error.to_string()
            }
            _ => format!(
                "unreadable at line {} column {}",
                error.line(),
                error.column()
            ),
        };
        SecretError::InvalidJson {
            path: path.to_path_buf(),
            size: stdout.len(),
            detail,
        }
    })?;
    let Value::Object(entries) = answer else {
        return Err(invalid(format!(
            "the output is {}, not an object",
            json_kind(&answer)
        )));
    };

    let mut resolved = BTreeMap::new();
    for &handle in handles {
        let Some(entry) = entries.get(handle) else {
            return Err(SecretError::MissingHandle {
                path: path.to_path_buf(),
                handle: handle.to_owned(),
            });
        };
        let Value::Object(fields) = entry else {
            return Err(invalid(format!(
                "the entry for handle '{handle}' is {}, not an object",
                json_kind(entry)
            )));
        };
        match fields.get("error") {
            None | Some(Value::Null) => {}
            Some(Value::String(message)) if message.is_empty() => {}
            Some(Value::String(message)) => {
                return Err(SecretError::HandleError {
                    path: path.to_path_buf(),
                    handle: handle.to_owned(),
                    message: truncate(message, STDERR_EXCERPT_MAX),
                });
            }
            Some(other) => {
                return Err(invalid(format!(
                    "\"error\" for handle '{handle}' is {}, not a string or null",
                    json_kind(other)
                )));
            }
        }
        let value = match fields.get("value") {
            None | Some(Value::Null) => "",
            Some(Value::String(value)) => value.as_str(),
            Some(other) => {
                return Err(invalid(format!(
                    "\"value\" for handle '{handle}' is {}, not a string",
                    json_kind(other)
                )));
            }
        };
        let value = if remove_trailing_line_break {
            value.trim_end_matches(['\r', '\n'])
        } else {
            value
        };
        if value.is_empty() {
            return Err(SecretError::EmptyValue {
                path: path.to_path_buf(),
                handle: handle.to_owned(),
            });
        }
        resolved.insert(handle.to_owned(), value.to_owned());
    }
    Ok(resolved)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// At most `max` bytes of `text`, cut on a character boundary, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/opt/secret.sh";

    fn parse(
        stdout: &str,
        handles: &[&str],
        trim: bool,
    ) -> Result<BTreeMap<String, String>, SecretError> {
        parse_output(Path::new(PATH), stdout.as_bytes(), handles, trim)
    }

    #[test]
    fn the_payload_has_the_agent_fields_in_a_stable_order() {
        let payload = serde_json::to_string(&Payload {
            version: PAYLOAD_VERSION,
            secrets: &["h1", "h2"],
            secret_backend_timeout: timeout_secs(Duration::from_millis(300)),
        })
        .expect("serialize");
        assert_eq!(
            payload,
            r#"{"version":"1.0","secrets":["h1","h2"],"secret_backend_timeout":1}"#
        );
        assert_eq!(timeout_secs(DEFAULT_TIMEOUT), 30);
    }

    #[test]
    fn values_are_returned_for_every_requested_handle_and_extra_entries_are_ignored() {
        let out = parse(
            r#"{"a":{"value":"one","error":null},"b":{"value":"two"},"zzz":{"error":"x"}}"#,
            &["a", "b"],
            false,
        )
        .expect("resolved");
        assert_eq!(out.get("a").map(String::as_str), Some("one"));
        assert_eq!(out.get("b").map(String::as_str), Some("two"));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn an_empty_error_string_is_not_an_error() {
        let out = parse(r#"{"a":{"value":"one","error":""}}"#, &["a"], false).expect("resolved");
        assert_eq!(out.get("a").map(String::as_str), Some("one"));
    }

    #[test]
    fn empty_and_null_values_are_refused_naming_the_handle() {
        for stdout in [
            r#"{"a":{"value":""}}"#,
            r#"{"a":{"value":null,"error":null}}"#,
            r#"{"a":{}}"#,
        ] {
            let error = parse(stdout, &["a"], false).expect_err("empty");
            assert!(matches!(&error, SecretError::EmptyValue { handle, .. } if handle == "a"));
            assert!(
                error
                    .to_string()
                    .starts_with("resolved secret for 'a' is empty")
            );
        }
    }

    #[test]
    fn trailing_line_breaks_are_removed_only_when_configured() {
        let stdout = r#"{"a":{"value":"pw\r\n\n"},"b":{"value":"\n"}}"#;
        let kept = parse(stdout, &["a"], false).expect("resolved");
        assert_eq!(kept.get("a").map(String::as_str), Some("pw\r\n\n"));
        let trimmed = parse(stdout, &["a"], true).expect("resolved");
        assert_eq!(trimmed.get("a").map(String::as_str), Some("pw"));
        assert!(matches!(
            parse(stdout, &["b"], true),
            Err(SecretError::EmptyValue { .. })
        ));
    }

    #[test]
    fn output_of_the_wrong_shape_is_described_by_type_without_quoting_it() {
        let cases = [
            (r#"["hunter2"]"#, "the output is a list, not an object"),
            (
                r#"{"a":"hunter2"}"#,
                "the entry for handle 'a' is a string, not an object",
            ),
            (
                r#"{"a":{"value":12345}}"#,
                "\"value\" for handle 'a' is a number, not a string",
            ),
            (
                r#"{"a":{"value":"x","error":["hunter2"]}}"#,
                "\"error\" for handle 'a' is a list, not a string or null",
            ),
        ];
        for (stdout, expected) in cases {
            let error = parse(stdout, &["a"], false).expect_err(stdout);
            let message = error.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
            assert!(!message.contains("12345"), "{message}");
            assert!(message.contains(PATH), "{message}");
        }
    }

    #[test]
    fn invalid_json_is_reported_by_size_and_position_only() {
        let stdout = "{\"a\": {\"value\": \"hunter2\"}} trailing hunter2";
        let error = parse(stdout, &["a"], false).expect_err("invalid");
        let message = error.to_string();
        assert!(matches!(error, SecretError::InvalidJson { size, .. } if size == stdout.len()));
        assert!(
            message.contains("trailing characters at line 1 column"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn long_error_texts_are_truncated_on_a_character_boundary() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        assert_eq!(truncate("aé", 2), "a…");
    }
}
