//! Shared fixtures for dogd's tests: start the real daemon in an isolated home, and provision the
//! real third-party clients tests talk to it with (Python packages in a cached virtualenv).

#![warn(missing_docs)]
#![allow(
    clippy::missing_panics_doc,
    reason = "test fixtures panic with a message on failure"
)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `dogd` process with an isolated home/state directory, whose stderr lines are collected.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// The daemon's `HOME` (its default state directory lives below it).
    pub home: tempfile::TempDir,
}

/// A command for `binary` with a clean environment: only `PATH`, and `HOME` set to `home`.
pub fn clean_command(binary: &Path, home: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdin(Stdio::null());
    command
}

impl Daemon {
    /// Spawns `binary <args>` with extra environment variables, in a fresh temporary home.
    pub fn spawn(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let home = tempfile::tempdir().expect("temp home");
        Self::spawn_in(binary, home, args, env)
    }

    /// Spawns `binary <args>` with `home` as its home directory. DogStatsD is turned off
    /// (`DD_USE_DOGSTATSD=false`: its default UDP port 8125 would collide between tests running in
    /// parallel) unless `env` sets a `DD_DOGSTATSD_*` or `DD_USE_DOGSTATSD` variable.
    pub fn spawn_in(
        binary: &Path,
        home: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = clean_command(binary, home.path());
        let wants_dogstatsd = env
            .iter()
            .any(|(name, _)| name.starts_with("DD_DOGSTATSD_") || *name == "DD_USE_DOGSTATSD");
        if !wants_dogstatsd {
            command.env("DD_USE_DOGSTATSD", "false");
        }
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

    /// The state directory the daemon uses by default under its temporary home.
    pub fn state_dir(&self) -> PathBuf {
        self.home.path().join(".local/state/dogd")
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// Every stderr line seen so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
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
        self.wait_for_line("dogd is ready", Duration::from_secs(30))
    }

    /// The address of the named server from its start line (`Started HTTP server 'CMD API
    /// Server' on 127.0.0.1:PORT`), waiting for it.
    pub fn server_addr(&mut self, server: &str) -> SocketAddr {
        let needle = format!("Started HTTP server '{server}' on ");
        let line = self.wait_for_line(&needle, Duration::from_secs(30));
        let addr = line
            .rsplit_once(&needle)
            .map(|(_, addr)| addr.trim())
            .expect("address after the start line");
        addr.parse().expect("a socket address")
    }

    /// Sends a signal.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("send signal");
    }

    /// Waits for the process to exit within `timeout`; returns its status and every stderr line.
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

/// A UDP port free right now on 127.0.0.1 (another process could still take it before use).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free UDP port")
        .port()
}

/// A TCP port free right now on 127.0.0.1, with nothing listening on it.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free TCP port")
        .port()
}

/// A Python interpreter in a virtualenv holding `packages`, created once under `base` and reused
/// by later runs (and by test binaries running at the same time, which wait on a lock).
pub fn python_with(base: &Path, packages: &[&str]) -> PathBuf {
    let slug: String = packages
        .join("-")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = base.join(format!("venv-{slug}"));
    let python = dir.join("bin/python");
    std::fs::create_dir_all(base).expect("venv base dir");
    let lock =
        std::fs::File::create(base.join(format!("venv-{slug}.lock"))).expect("venv lock file");
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .expect("lock the venv");
    if dir.join(".ready").exists() {
        return python;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&dir));
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages));
    std::fs::write(dir.join(".ready"), packages.join("\n")).expect("mark venv ready");
    python
}

/// A `node_modules` directory holding `packages` (npm registry), created once under `base` and
/// reused; pass it as `NODE_PATH` to `node`.
pub fn node_modules_with(base: &Path, packages: &[&str]) -> PathBuf {
    let slug: String = packages
        .join("-")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = base.join(format!("npm-{slug}"));
    std::fs::create_dir_all(&dir).expect("npm dir");
    let lock = std::fs::File::create(base.join(format!("npm-{slug}.lock"))).expect("npm lock file");
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .expect("lock the npm dir");
    let modules = dir.join("node_modules");
    if dir.join(".ready").exists() {
        return modules;
    }
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
        .arg(&dir)
        .args(packages));
    std::fs::write(dir.join(".ready"), packages.join("\n")).expect("mark npm ready");
    modules
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
