//! Why resolving secrets failed. Every message names the command or the handle and says what to
//! do; none ever contains a resolved value or an excerpt of the command's standard output.

use std::io;
use std::path::PathBuf;

/// Why `secret_backend_command` could not resolve the requested handles.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// `secret_backend_command` is empty.
    #[error(
        "secret_backend_command is empty; set it to the path of the executable that resolves ENC[] secrets"
    )]
    NoCommand,

    /// A bare command name (no `/`) was not found in any absolute `PATH` directory.
    #[error(
        "secret_backend_command '{command}' was not found in PATH; set secret_backend_command to the absolute path of the executable"
    )]
    NotInPath {
        /// The configured command name.
        command: PathBuf,
    },

    /// The command's file could not be inspected (it does not exist, or a parent directory is not
    /// searchable).
    #[error(
        "secret_backend_command '{path}' cannot be used: {source}; set secret_backend_command to the absolute path of an existing executable"
    )]
    Inaccessible {
        /// The command path.
        path: PathBuf,
        /// The `stat` error.
        #[source]
        source: io::Error,
    },

    /// The command's file breaks the ownership and permission rules, so it was not run.
    #[error("refusing to run secret_backend_command '{path}': it {problems}; fix: {fix}")]
    UnsafeCommand {
        /// The command path.
        path: PathBuf,
        /// Everything wrong with it, as one phrase (`is writable by group (mode 0770)`).
        problems: String,
        /// The shell command(s) that fix it (`chmod 700 <path>`).
        fix: String,
    },

    /// An empty handle (`ENC[]`) was requested; the command was not run.
    #[error(
        "a secret handle is empty (ENC[] in the configuration); write the secret's name between the brackets, e.g. ENC[my_api_key]"
    )]
    EmptyHandle,

    /// The process could not be started.
    #[error(
        "cannot start secret_backend_command '{path}': {source}; check that it is a binary or a script starting with a valid #! line, on a filesystem not mounted noexec"
    )]
    Spawn {
        /// The command path.
        path: PathBuf,
        /// The `exec` error.
        #[source]
        source: io::Error,
    },

    /// Talking to the process through its pipes failed.
    #[error("cannot read the output of secret_backend_command '{path}': {source}")]
    Io {
        /// The command path.
        path: PathBuf,
        /// The pipe error.
        #[source]
        source: io::Error,
    },

    /// The process ran longer than `secret_backend_timeout`; it was killed with its process group.
    #[error(
        "secret_backend_command '{path}' timed out after {timeout} and was killed{stderr}; make it answer faster or raise secret_backend_timeout"
    )]
    Timeout {
        /// The command path.
        path: PathBuf,
        /// The configured timeout, formatted (`30s`, `300ms`).
        timeout: String,
        /// `; stderr: …` with the end of its standard error, or empty.
        stderr: String,
    },

    /// The process wrote more than `secret_backend_output_max_size` bytes to standard output; it
    /// was killed with its process group.
    #[error(
        "secret_backend_command '{path}' wrote more than {max} bytes to standard output and was killed; make it print only the JSON answer or raise secret_backend_output_max_size"
    )]
    OutputTooLarge {
        /// The command path.
        path: PathBuf,
        /// `secret_backend_output_max_size`.
        max: usize,
    },

    /// The process exited unsuccessfully.
    #[error(
        "secret_backend_command '{path}' {status}; stderr: {stderr}; run it by hand with the same JSON on standard input to debug it"
    )]
    Failed {
        /// The command path.
        path: PathBuf,
        /// `exited with status 3` or `was killed by signal SIGSEGV`.
        status: String,
        /// The end of its standard error (at most [`crate::STDERR_EXCERPT_MAX`] bytes), or
        /// `(empty)`.
        stderr: String,
    },

    /// Standard output is not JSON. Only its size and the error's position are reported: the
    /// output may contain secrets.
    #[error(
        "secret_backend_command '{path}' printed {size} bytes that are not valid JSON ({detail}); it must print only a JSON object such as {{\"<handle>\": {{\"value\": \"...\", \"error\": null}}}}"
    )]
    InvalidJson {
        /// The command path.
        path: PathBuf,
        /// Bytes of standard output.
        size: usize,
        /// The JSON syntax error and its line and column.
        detail: String,
    },

    /// Standard output is JSON but not shaped as the protocol requires. The message names JSON
    /// types only, never values.
    #[error(
        "secret_backend_command '{path}' printed JSON that does not follow the protocol: {detail}; expected {{\"<handle>\": {{\"value\": \"...\", \"error\": null}}}}"
    )]
    InvalidOutput {
        /// The command path.
        path: PathBuf,
        /// What is wrong, by JSON type.
        detail: String,
    },

    /// The command reported an error for a handle.
    #[error(
        "secret_backend_command '{path}' could not resolve secret handle '{handle}': {message}; fix the secret in your secrets backend or the handle in the configuration"
    )]
    HandleError {
        /// The command path.
        path: PathBuf,
        /// The handle.
        handle: String,
        /// The command's `error` text for it (truncated to [`crate::STDERR_EXCERPT_MAX`] bytes).
        message: String,
    },

    /// The command's answer has no entry for a requested handle.
    #[error(
        "secret handle '{handle}' was not resolved by secret_backend_command '{path}': its output has no entry for it; the command must answer every handle it is given"
    )]
    MissingHandle {
        /// The command path.
        path: PathBuf,
        /// The handle.
        handle: String,
    },

    /// The command returned an empty (or null) value for a handle.
    #[error(
        "resolved secret for '{handle}' is empty (from secret_backend_command '{path}'); store a non-empty value for it in your secrets backend"
    )]
    EmptyValue {
        /// The command path.
        path: PathBuf,
        /// The handle.
        handle: String,
    },
}
