//! Starting the real `dogd` binary for end-to-end tests.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `dogd` process with an isolated home/state directory, whose stderr lines are collected.
pub struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    pub home: tempfile::TempDir,
}

/// A `dogd` command with a clean environment: only `PATH`, and `HOME` in a fresh temp dir.
pub fn dogd_command(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dogd"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdin(Stdio::null());
    command
}

impl Daemon {
    /// Spawns `dogd <args>` with extra environment variables.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let home = tempfile::tempdir().expect("temp home");
        let mut command = dogd_command(home.path());
        command
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn dogd");
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            home,
        }
    }

    /// The state directory the daemon uses by default under its temp home.
    pub fn state_dir(&self) -> PathBuf {
        self.home.path().join(".local/state/dogd")
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// Waits for a stderr line containing `needle`; panics with everything seen on timeout.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line containing {needle:?} within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for `dogd is ready`.
    pub fn wait_ready(&mut self) -> String {
        self.wait_for_line("dogd is ready", Duration::from_secs(20))
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("send signal");
    }

    /// Waits for the process to exit within `timeout` and returns its status and remaining stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let rest: Vec<String> = self.lines.iter().collect();
                self.seen.extend(rest);
                return (status, self.seen.clone());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "dogd did not exit within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                );
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
