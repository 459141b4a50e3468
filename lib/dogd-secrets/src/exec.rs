//! Running the command: payload on stdin, stdout and stderr read by their own threads, a deadline,
//! a cap on stdout, and the whole process group killed and reaped when anything goes wrong.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::{STDERR_EXCERPT_MAX, SecretError};

/// How often the child is polled for exit while nothing else happens.
const POLL: Duration = Duration::from_millis(10);

/// After a kill, how long to wait for the reader threads to hand over stderr.
const KILL_GRACE: Duration = Duration::from_millis(500);

/// The last [`STDERR_EXCERPT_MAX`] bytes of stderr, and how many bytes were written in all.
#[derive(Debug, Default)]
pub(crate) struct StderrTail {
    tail: Vec<u8>,
    total: usize,
}

impl StderrTail {
    fn push(&mut self, bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len());
        self.tail.extend_from_slice(bytes);
        // Trim in batches so a chatty command does not make every read shift the buffer.
        if self.tail.len() > 2 * STDERR_EXCERPT_MAX {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let excess = self.tail.len().saturating_sub(STDERR_EXCERPT_MAX);
        self.tail.drain(..excess);
    }

    /// The excerpt as text for messages, `(empty)` when nothing was written.
    pub(crate) fn excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.tail);
        let text = text.trim();
        if text.is_empty() {
            "(empty)".to_owned()
        } else if self.total > self.tail.len() {
            format!("[last {} of {} bytes] …{text}", self.tail.len(), self.total)
        } else {
            text.to_owned()
        }
    }

    fn is_empty(&self) -> bool {
        self.total == 0
    }
}

enum Event {
    Stdout(io::Result<Vec<u8>>),
    StdoutTooLarge,
    Stderr(StderrTail),
}

/// Runs `path args…` with `payload` on stdin, within `timeout`, accepting at most `max_stdout`
/// bytes of stdout, and returns what it wrote to stdout. The environment and working directory are inherited, as in the agent. The
/// child leads a new process group so that it and anything it started can be killed together.
pub(crate) fn run(
    path: &Path,
    args: &[String],
    payload: Vec<u8>,
    timeout: Duration,
    max_stdout: usize,
) -> Result<Vec<u8>, SecretError> {
    let started = Instant::now();
    let deadline = started.checked_add(timeout);
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| SecretError::Spawn {
            path: path.to_path_buf(),
            source,
        })?;
    let (events, rx) = mpsc::channel();
    start_threads(&mut child, payload, max_stdout, &events);
    drop(events);

    let mut run = Running {
        path,
        child,
        rx,
        status: None,
        stdout: None,
        stderr: None,
    };
    let result = run.supervise(deadline, timeout, max_stdout);
    if result.is_err() {
        run.kill();
    }
    tracing::debug!(
        command = %path.display(),
        elapsed_ms = started.elapsed().as_millis(),
        ok = result.is_ok(),
        "secret_backend_command finished"
    );
    result
}

/// Gives the payload to stdin and starts draining stdout and stderr. The threads are detached:
/// they end when the pipes close, which killing the process group ensures.
fn start_threads(child: &mut Child, payload: Vec<u8>, max_stdout: usize, events: &Sender<Event>) {
    if let Some(mut stdin) = child.stdin.take() {
        thread::spawn(move || {
            // A command may exit without reading its input; the broken pipe is not an error here:
            // the exit status and the output decide the outcome.
            let _ = stdin.write_all(&payload);
        });
    }
    if let Some(mut stdout) = child.stdout.take() {
        let events = events.clone();
        thread::spawn(move || {
            let _ = events.send(read_capped(&mut stdout, max_stdout));
        });
    }
    if let Some(mut stderr) = child.stderr.take() {
        let events = events.clone();
        thread::spawn(move || {
            let mut tail = StderrTail::default();
            let mut chunk = [0u8; 8192];
            loop {
                match stderr.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => tail.push(chunk.get(..n).unwrap_or_default()),
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            tail.trim();
            let _ = events.send(Event::Stderr(tail));
        });
    }
}

fn read_capped(reader: &mut impl Read, max: usize) -> Event {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Event::Stdout(Ok(buffer)),
            Ok(n) => {
                if buffer.len().saturating_add(n) > max {
                    return Event::StdoutTooLarge;
                }
                buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Event::Stdout(Err(error)),
        }
    }
}

struct Running<'a> {
    path: &'a Path,
    child: Child,
    rx: Receiver<Event>,
    status: Option<ExitStatus>,
    stdout: Option<Vec<u8>>,
    stderr: Option<StderrTail>,
}

impl Running<'_> {
    /// Waits until the child has exited and both pipes are drained, or something goes wrong.
    fn supervise(
        &mut self,
        deadline: Option<Instant>,
        timeout: Duration,
        max_stdout: usize,
    ) -> Result<Vec<u8>, SecretError> {
        loop {
            if self.status.is_none() {
                self.status = self.child.try_wait().map_err(|source| self.io(source))?;
            }
            if let (Some(status), Some(_), Some(_)) = (self.status, &self.stdout, &self.stderr) {
                let stdout = self.stdout.take().unwrap_or_default();
                let stderr = self.stderr.take().unwrap_or_default();
                return finish(self.path, status, stdout, stderr);
            }
            let now = Instant::now();
            let remaining = match deadline {
                Some(deadline) if now >= deadline => return Err(self.timed_out(timeout)),
                Some(deadline) => deadline - now,
                None => Duration::MAX,
            };
            let wait = if self.status.is_none() {
                remaining.min(POLL)
            } else {
                remaining
            };
            match self.rx.recv_timeout(wait) {
                Ok(Event::Stdout(Ok(bytes))) => self.stdout = Some(bytes),
                Ok(Event::Stdout(Err(source))) => return Err(self.io(source)),
                Ok(Event::StdoutTooLarge) => {
                    return Err(SecretError::OutputTooLarge {
                        path: self.path.to_path_buf(),
                        max: max_stdout,
                    });
                }
                Ok(Event::Stderr(tail)) => self.stderr = Some(tail),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Both readers are gone; one ended without reporting (it cannot, short of a
                    // panic). Treat what is missing as empty rather than spin.
                    if self.stdout.is_none() {
                        return Err(self.io(io::Error::other("the stdout reader stopped")));
                    }
                    self.stderr.get_or_insert_with(StderrTail::default);
                    if self.status.is_none() {
                        thread::sleep(wait);
                    }
                }
            }
        }
    }

    fn io(&self, source: io::Error) -> SecretError {
        SecretError::Io {
            path: self.path.to_path_buf(),
            source,
        }
    }

    fn timed_out(&mut self, timeout: Duration) -> SecretError {
        self.kill();
        if self.stderr.is_none() {
            let until = Instant::now() + KILL_GRACE;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match self.rx.recv_timeout(left) {
                    Ok(Event::Stderr(tail)) => {
                        self.stderr = Some(tail);
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        let stderr = match &self.stderr {
            Some(tail) if !tail.is_empty() => format!("; stderr: {}", tail.excerpt()),
            _ => String::new(),
        };
        SecretError::Timeout {
            path: self.path.to_path_buf(),
            timeout: format_duration(timeout),
            stderr,
        }
    }

    /// Kills the child's process group (the child and whatever it started that did not leave the
    /// group) and reaps the child, so no zombie is left behind. Idempotent.
    fn kill(&mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // The group id is the child's pid. It cannot have been reused while the child is
            // unreaped or while any member of its group is alive; otherwise this is ESRCH.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

fn finish(
    path: &Path,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: StderrTail,
) -> Result<Vec<u8>, SecretError> {
    if status.success() {
        if !stderr.is_empty() {
            // The agent logs the command's stderr too, so that helpers can report progress.
            tracing::debug!(command = %path.display(), stderr = %stderr.excerpt(), "secret_backend_command stderr");
        }
        return Ok(stdout);
    }
    Err(SecretError::Failed {
        path: PathBuf::from(path),
        status: describe_status(status),
        stderr: stderr.excerpt(),
    })
}

fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(number) => match Signal::try_from(number) {
            Ok(signal) => format!("was killed by signal {signal}"),
            Err(_) => format!("was killed by signal {number}"),
        },
        None => format!("ended abnormally ({status})"),
    }
}

/// `30s`, `300ms`, `1500ms`.
pub(crate) fn format_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{duration:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_shown_in_the_unit_they_were_likely_given_in() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
    }

    #[test]
    fn the_stderr_excerpt_keeps_the_end_and_says_how_much_was_dropped() {
        let mut tail = StderrTail::default();
        assert_eq!(tail.excerpt(), "(empty)");
        tail.push(b"first line\n");
        assert_eq!(tail.excerpt(), "first line");
        for _ in 0..1000 {
            tail.push(b"0123456789");
        }
        tail.push(b"THE END\n");
        tail.trim();
        let excerpt = tail.excerpt();
        assert!(
            excerpt.starts_with("[last 1024 of 10019 bytes] …"),
            "{excerpt}"
        );
        assert!(excerpt.ends_with("THE END"), "{excerpt}");
        assert!(!excerpt.contains("first line"));
    }

    #[test]
    fn stdout_beyond_the_cap_is_refused() {
        let data = vec![b'x'; 100];
        assert!(matches!(
            read_capped(&mut data.as_slice(), 100),
            Event::Stdout(Ok(bytes)) if bytes.len() == 100
        ));
        assert!(matches!(
            read_capped(&mut data.as_slice(), 99),
            Event::StdoutTooLarge
        ));
    }
}
