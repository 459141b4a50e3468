//! The servers under test, each started pinned to one core, and how to read what each received.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::load::Target;

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `dogd run`.
    Dogd,
    /// Etsy's statsd (node).
    Statsd,
    /// collectd's statsd plugin.
    Collectd,
}

impl Kind {
    /// The label used in tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Dogd => "dogd",
            Self::Statsd => "statsd (node)",
            Self::Collectd => "collectd statsd plugin",
        }
    }
}

/// Where the peers and dogd are.
#[derive(Debug, Clone)]
pub(crate) struct Programs {
    pub(crate) dogd: PathBuf,
    pub(crate) node: PathBuf,
    pub(crate) statsd_dir: PathBuf,
    pub(crate) collectd: PathBuf,
    pub(crate) cpu: usize,
    /// SCHED_FIFO priority of the servers (0: ordinary scheduling).
    pub(crate) rt_priority: u8,
    /// SO_RCVBUF for dogd (0: OS default, like the peers, which cannot set it).
    pub(crate) dogd_rcvbuf: usize,
}

/// How to read a server's count of received samples.
#[derive(Debug)]
enum Counter {
    /// dogd's Prometheus `/telemetry`.
    Telemetry(SocketAddr),
    /// statsd's management interface (`counters`).
    StatsdAdmin(SocketAddr),
    /// The directory collectd's csv plugin writes to.
    CollectdCsv(PathBuf),
}

/// A running server; stopped on drop.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) kind: Kind,
    /// The core it is pinned to.
    pub(crate) cpu: usize,
    child: Child,
    counter: Counter,
    udp_port: u16,
    uds: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// What a server had counted at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    /// Samples parsed and accepted.
    pub(crate) received: u64,
    /// Packets the server itself dropped (dogd's `packets_dropped`).
    pub(crate) dropped: u64,
    /// Datagrams the kernel dropped on the server's UDP socket (`/proc/net/udp`).
    pub(crate) kernel_drops: u64,
    /// CPU time of the server process (user + system, in clock ticks).
    pub(crate) cpu_ticks: u64,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `program` pinned to `programs.cpu` (`taskset`), real-time when asked (`chrt`); both exec, so
/// the child's pid is the server's.
fn pinned(programs: &Programs, program: &Path) -> Command {
    let mut command = if programs.rt_priority > 0 {
        let mut chrt = Command::new("chrt");
        chrt.arg("-f")
            .arg(programs.rt_priority.to_string())
            .arg("taskset");
        chrt
    } else {
        Command::new("taskset")
    };
    command
        .arg("-c")
        .arg(programs.cpu.to_string())
        .arg(program)
        .stdout(Stdio::null());
    command
}

impl Server {
    /// Starts `kind`, pinned to `programs.cpu`.
    pub(crate) fn start(kind: Kind, programs: &Programs) -> anyhow::Result<Self> {
        // No leading dot: collectd's csv plugin refuses to write under such a directory.
        let dir = tempfile::Builder::new().prefix("dogd-bench-").tempdir()?;
        let udp_port = free_port()?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let (child, counter, uds) = match kind {
            Kind::Dogd => {
                let telemetry = free_tcp_port()?;
                let socket = dir.path().join("dsd.socket");
                let child = pinned(programs, &programs.dogd)
                    .arg("run")
                    .env_clear()
                    .env("HOME", dir.path())
                    .env("DD_RUN_PATH", dir.path().join("run"))
                    .env("DD_CMD_PORT", "0")
                    .env("DD_HOSTNAME", "bench")
                    .env("DD_LOG_LEVEL", "warn")
                    .env("DD_TELEMETRY_PORT", telemetry.to_string())
                    .env("DD_DOGSTATSD_PORT", udp_port.to_string())
                    .env("DD_DOGSTATSD_SOCKET", &socket)
                    .env("DD_DOGSTATSD_WORKERS_COUNT", "1")
                    .env("DD_DOGSTATSD_SO_RCVBUF", programs.dogd_rcvbuf.to_string())
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("starting {}", programs.dogd.display()))?;
                (
                    child,
                    Counter::Telemetry(localhost(telemetry)),
                    Some(socket),
                )
            }
            Kind::Statsd => {
                let admin = free_tcp_port()?;
                let config = dir.path().join("config.js");
                // No backend, and a flush interval (~23 days) that never resets the counters.
                std::fs::write(
                    &config,
                    format!(
                        "{{ port: {udp_port}, address: \"127.0.0.1\", mgmt_port: {admin}, \
                         mgmt_address: \"127.0.0.1\", backends: [], flushInterval: 2000000000 }}\n"
                    ),
                )?;
                let child = pinned(programs, &programs.node)
                    .arg(programs.statsd_dir.join("stats.js"))
                    .arg(&config)
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("starting {}", programs.node.display()))?;
                (child, Counter::StatsdAdmin(localhost(admin)), None)
            }
            Kind::Collectd => {
                let csv = dir.path().join("csv");
                let config = dir.path().join("collectd.conf");
                let base = dir.path().display();
                // Counters are never deleted and accumulate, so each csv file's last value is the
                // total received for that context.
                std::fs::write(
                    &config,
                    format!(
                        r#"Hostname "bench"
FQDNLookup false
BaseDir "{base}"
PIDFile "{base}/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
Interval 1
ReadThreads 1
WriteThreads 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel "info"
  File "{base}/collectd.log"
</Plugin>
LoadPlugin statsd
<Plugin statsd>
  Host "127.0.0.1"
  Port "{udp_port}"
  DeleteCounters false
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "{csv}"
  StoreRates false
</Plugin>
"#,
                        csv = csv.display()
                    ),
                )?;
                let child = pinned(programs, &programs.collectd)
                    .arg("-f")
                    .arg("-C")
                    .arg(&config)
                    .stderr(log)
                    .spawn()
                    .with_context(|| format!("starting {}", programs.collectd.display()))?;
                (child, Counter::CollectdCsv(csv), None)
            }
        };
        let mut server = Self {
            kind,
            cpu: programs.cpu,
            child,
            counter,
            udp_port,
            uds,
            _dir: dir,
        };
        server.wait_listening()?;
        if kind == Kind::Collectd && programs.rt_priority > 0 {
            server.demote_threads("writer#")?;
        }
        Ok(server)
    }

    /// Puts the threads whose name starts with `prefix` back to ordinary scheduling. collectd's
    /// write thread only runs our counting (the csv plugin: a thousand file appends a second); as
    /// a SCHED_FIFO thread of the same priority it would hold off the statsd receive thread for
    /// milliseconds, a cost a production collectd would not have.
    fn demote_threads(&self, prefix: &str) -> anyhow::Result<()> {
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.id()))? {
            let task = task?;
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if name.starts_with(prefix) {
                let status = Command::new("chrt")
                    .args(["-o", "-p", "0"])
                    .arg(task.file_name())
                    .status()?;
                if !status.success() {
                    bail!("chrt -o -p 0 {:?} failed", task.file_name());
                }
            }
        }
        Ok(())
    }

    fn wait_listening(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited at start: {status}", self.kind.label());
            }
            let udp_bound = udp_socket_drops(self.udp_port)?.is_some();
            let uds_bound = self.uds.as_ref().is_none_or(|path| path.exists());
            if udp_bound && uds_bound && self.counts().is_ok() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(15) {
                bail!("{} did not start listening within 15 s", self.kind.label());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where to send to over `transport` (`udp` or `uds`).
    pub(crate) fn target(&self, uds: bool) -> anyhow::Result<Target> {
        if uds {
            let path = self
                .uds
                .clone()
                .context("only dogd listens on a Unix socket here")?;
            Ok(Target::Uds(path))
        } else {
            Ok(Target::Udp(localhost(self.udp_port)))
        }
    }

    /// How long the received count must stay unchanged before a run is taken as drained.
    pub(crate) fn settle(&self) -> Duration {
        match self.kind {
            // Counts show up only when the read interval (1 s) dispatches them to csv.
            Kind::Collectd => Duration::from_millis(2500),
            Kind::Dogd | Kind::Statsd => Duration::from_millis(500),
        }
    }

    /// The server's counters now.
    pub(crate) fn counts(&self) -> anyhow::Result<Counts> {
        let (received, dropped) = match &self.counter {
            Counter::Telemetry(addr) => {
                let text = http_get(*addr, "/telemetry")?;
                let received = prometheus_sum(
                    &text,
                    "dogstatsd__processed",
                    &[("message_type", "metrics"), ("state", "ok")],
                );
                let dropped = prometheus_sum(&text, "dogstatsd__packets_dropped", &[]);
                (received, dropped)
            }
            Counter::StatsdAdmin(addr) => (statsd_metrics_received(*addr)?, 0),
            Counter::CollectdCsv(dir) => (collectd_total(dir)?, 0),
        };
        Ok(Counts {
            received,
            dropped,
            kernel_drops: udp_socket_drops(self.udp_port)?.unwrap_or(0),
            cpu_ticks: cpu_ticks(self.child.id())?,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET (no chunked encoding); returns the body.
fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}

/// Sum of the samples of `name` whose labels include all of `labels`.
fn prometheus_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut total = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.split_once('}') {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue,
        };
        let matches = labels.iter().all(|(key, expected)| {
            label_text
                .split(',')
                .any(|pair| pair == format!("{key}=\"{expected}\""))
        });
        if matches && let Ok(value) = value.trim().parse::<f64>() {
            total += value;
        }
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let total = total as u64;
    total
}

/// `statsd.metrics_received` from statsd's `counters` admin command (statsd counts every
/// non-empty line it reads; bad lines are counted there too, in `bad_lines_seen`).
fn statsd_metrics_received(addr: SocketAddr) -> anyhow::Result<u64> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"counters\n")?;
    let mut text = String::new();
    let mut buffer = [0u8; 65536];
    while !text.contains("\nEND") {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    let _ = stream.write_all(b"quit\n");
    let value = |key: &str| -> anyhow::Result<u64> {
        let at = text
            .find(&format!("'{key}'"))
            .with_context(|| format!("no {key} in statsd counters"))?;
        let rest = &text[at + key.len() + 2..];
        let digits: String = rest
            .trim_start_matches([':', ' '])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Ok(digits.parse()?)
    };
    let received = value("statsd.metrics_received")?;
    let bad = value("statsd.bad_lines_seen")?;
    Ok(received.saturating_sub(bad))
}

/// Sum over every counter of the last value collectd's csv plugin wrote for it.
fn collectd_total(dir: &Path) -> anyhow::Result<u64> {
    let host = dir.join("bench").join("statsd");
    let Ok(entries) = std::fs::read_dir(&host) else {
        // Nothing dispatched yet.
        return Ok(0);
    };
    // One file per counter and day (`derive-<name>-YYYY-MM-DD`): keep the latest day's.
    let mut latest = std::collections::BTreeMap::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("derive-")
            && rest.len() > 11
        {
            let (metric, day) = rest.split_at(rest.len() - 11);
            let slot = latest.entry(metric.to_owned()).or_insert_with(String::new);
            if day > slot.as_str() {
                *slot = day.to_owned();
            }
        }
    }
    let mut total = 0u64;
    for (metric, day) in latest {
        let path = host.join(format!("derive-{metric}{day}"));
        total += last_csv_value(&path)?;
    }
    Ok(total)
}

fn last_csv_value(path: &Path) -> anyhow::Result<u64> {
    use std::io::Seek as _;
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(std::io::SeekFrom::Start(length.saturating_sub(128)))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail)?;
    let last = tail
        .lines()
        .rev()
        .find(|line| !line.is_empty())
        .unwrap_or_default();
    let value = last.rsplit(',').next().unwrap_or_default();
    // A header only (`epoch,value`) means nothing was written yet.
    Ok(value.trim().parse::<f64>().map_or(0, |v| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let v = v as u64;
        v
    }))
}

/// The drops column of the UDP sockets bound to 127.0.0.1:`port` (`None`: no such socket).
fn udp_socket_drops(port: u16) -> anyhow::Result<Option<u64>> {
    let table = std::fs::read_to_string("/proc/net/udp")?;
    let local = format!("0100007F:{port:04X}");
    let mut found = None;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&local.as_str()) {
            let drops: u64 = fields.last().and_then(|d| d.parse().ok()).unwrap_or(0);
            found = Some(found.unwrap_or(0) + drops);
        }
    }
    Ok(found)
}

/// Busy time of core `cpu` (everything but idle and iowait), in clock ticks.
pub(crate) fn core_busy_ticks(cpu: usize) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some(label.as_str()))
        .with_context(|| format!("no {label} in /proc/stat"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Ok(total - idle)
}

/// utime + stime of `pid`, in clock ticks (USER_HZ, 100 per second on Linux).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0) };
    Ok(field(14) + field(15))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_sum_matches_name_and_labels() {
        let text = "# HELP x\n\
            dogstatsd__processed{message_type=\"metrics\",state=\"ok\"} 42\n\
            dogstatsd__processed{message_type=\"metrics\",state=\"error\"} 3\n\
            dogstatsd__processed_other 9\n\
            dogstatsd__packets_dropped{transport=\"udp\"} 1\n\
            dogstatsd__packets_dropped{transport=\"uds\"} 2\n";
        let ok = [("message_type", "metrics"), ("state", "ok")];
        assert_eq!(prometheus_sum(text, "dogstatsd__processed", &ok), 42);
        assert_eq!(prometheus_sum(text, "dogstatsd__packets_dropped", &[]), 3);
        assert_eq!(prometheus_sum(text, "missing", &[]), 0);
    }
}
