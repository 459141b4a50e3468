//! DogStatsD ingest: the highest rate each server takes with zero loss on one core (dogd over UDP
//! and a Unix datagram socket, Etsy statsd and collectd's statsd plugin over UDP), the parser's
//! in-process throughput, and memory per live context.

mod inproc;
mod load;
mod servers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;

use load::{Format, Sender, Target, Traffic};
use servers::{Counts, Kind, Programs, Server};

/// Arguments of `dogd-bench dogstatsd`.
#[derive(Debug, clap::Args)]
pub(crate) struct DogstatsdArgs {
    #[command(subcommand)]
    command: DogstatsdCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DogstatsdCommand {
    /// Highest zero-loss rate of each server on one core, searched by doubling then bisection.
    Ingest(IngestArgs),
    /// Sends counters at a fixed rate to a server started by hand (for profiling).
    Load(LoadArgs),
    /// In-process `split_messages` + `parse_message` throughput on one thread.
    Parse(inproc::ParseArgs),
    /// RSS per live context of a `ContextResolver` holding many contexts.
    Contexts(inproc::ContextsArgs),
}

/// What the traffic looks like (shared by `ingest` and `load`).
#[derive(Debug, clap::Args)]
struct TrafficArgs {
    /// Distinct contexts, sent round-robin.
    #[arg(long, default_value_t = 1000)]
    contexts: usize,
    /// Largest datagram: lines are packed up to this size like buffering clients; 0 sends one
    /// line per datagram.
    #[arg(long, default_value_t = 1400)]
    datagram_bytes: usize,
    /// Core the load generator runs on.
    #[arg(long, default_value_t = 0)]
    load_cpu: usize,
}

/// Arguments of `dogd-bench dogstatsd ingest`.
#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// Cases to measure, `server-transport-format`: dogd-udp-tagged, dogd-uds-tagged,
    /// dogd-udp-plain, statsd-udp-plain, statsd-udp-tagged, collectd-udp-plain.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dogd-udp-tagged,dogd-uds-tagged,dogd-udp-plain,statsd-udp-plain,statsd-udp-tagged,collectd-udp-plain"
    )]
    cases: Vec<String>,
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Seconds of traffic per trial.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// First rate tried (samples/s); doubled until a trial loses samples, then bisected.
    #[arg(long, default_value_t = 125_000.0)]
    start_rate: f64,
    /// Stop bisecting when the failing rate is within this fraction of the passing one.
    #[arg(long, default_value_t = 0.05)]
    precision: f64,
    /// Attempts per rate: a rate passes when one attempt loses nothing (the machine is shared).
    #[arg(long, default_value_t = 2)]
    attempts: usize,
    /// Core the servers are pinned to.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// SCHED_FIFO priority of the servers and of the sender thread (0: ordinary scheduling). The
    /// machine is shared: without it, other tenants' processes delay the server's wake-ups and
    /// stall the sender by milliseconds, and a default socket buffer holds only ~2 ms of traffic
    /// at 1M samples/s.
    #[arg(long, default_value_t = 10)]
    rt_priority: u8,
    /// dogd's SO_RCVBUF (0: the OS default, which is all the peers get).
    #[arg(long, default_value_t = 0)]
    dogd_rcvbuf: usize,
    /// The dogd binary (build it with `cargo build --release -p dogd`).
    #[arg(long, default_value = "target/release/dogd")]
    dogd: PathBuf,
    /// node, for statsd.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// The statsd npm package (the folder holding `stats.js`).
    #[arg(long, default_value = "node_modules/statsd")]
    statsd_dir: PathBuf,
    /// The collectd daemon (Debian package collectd-core).
    #[arg(long, default_value = "/usr/sbin/collectd")]
    collectd: PathBuf,
}

/// Arguments of `dogd-bench dogstatsd load`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// UDP address to send to.
    #[arg(long, conflicts_with = "uds")]
    udp: Option<std::net::SocketAddr>,
    /// Unix datagram socket to send to.
    #[arg(long)]
    uds: Option<PathBuf>,
    /// Lines of this format.
    #[arg(long, value_enum, default_value = "tagged")]
    format: Format,
    #[command(flatten)]
    traffic: TrafficArgs,
    /// Samples per second (0: as fast as possible).
    #[arg(long, default_value_t = 1_000_000.0)]
    rate: f64,
    /// Seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

pub(crate) fn run(args: &DogstatsdArgs) -> anyhow::Result<()> {
    match &args.command {
        DogstatsdCommand::Ingest(args) => ingest(args),
        DogstatsdCommand::Load(args) => load(args),
        DogstatsdCommand::Parse(args) => inproc::parse(args),
        DogstatsdCommand::Contexts(args) => inproc::contexts(args),
    }
}

/// Pins this process (the load generator) to `cpu`.
fn pin_self(cpu: usize) -> anyhow::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// Makes this thread (the sender) SCHED_FIFO at `priority`, so that other tenants do not stall it.
fn realtime_self(priority: u8) -> anyhow::Result<()> {
    if priority == 0 {
        return Ok(());
    }
    let status = std::process::Command::new("chrt")
        .args([
            "-f",
            "-p",
            &priority.to_string(),
            &nix::unistd::gettid().to_string(),
        ])
        .status()?;
    if !status.success() {
        bail!("chrt -f -p {priority} failed: {status}");
    }
    Ok(())
}

fn load(args: &LoadArgs) -> anyhow::Result<()> {
    pin_self(args.traffic.load_cpu)?;
    let target = match (&args.udp, &args.uds) {
        (Some(addr), None) => Target::Udp(*addr),
        (None, Some(path)) => Target::Uds(path.clone()),
        _ => bail!("give --udp or --uds"),
    };
    let traffic = Traffic::new(
        args.format,
        args.traffic.contexts,
        args.traffic.datagram_bytes,
    );
    let rate = if args.rate > 0.0 {
        args.rate
    } else {
        f64::INFINITY
    };
    let sent =
        Sender::new(&target)?.run(&traffic, rate, Duration::from_secs(args.duration), u64::MAX)?;
    println!(
        "sent {} samples in {} datagrams ({:.1} samples/datagram) in {:.2?}: {:.0} samples/s; {} samples lost to send timeouts",
        sent.samples,
        sent.datagrams,
        traffic.samples_per_datagram(),
        sent.elapsed,
        sent.rate(),
        sent.lost
    );
    Ok(())
}

/// One server, transport and format.
#[derive(Clone, Copy, Debug)]
struct Case {
    kind: Kind,
    uds: bool,
    format: Format,
}

impl Case {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut parts = text.split('-');
        let kind = match parts.next() {
            Some("dogd") => Kind::Dogd,
            Some("statsd") => Kind::Statsd,
            Some("collectd") => Kind::Collectd,
            _ => bail!("unknown server in case {text:?}"),
        };
        let uds = match parts.next() {
            Some("udp") => false,
            Some("uds") if kind == Kind::Dogd => true,
            _ => bail!("unknown transport in case {text:?} (only dogd has uds)"),
        };
        let format = match parts.next() {
            Some("tagged") if kind == Kind::Collectd => {
                bail!("collectd rejects DogStatsD tags (`|#...`): use collectd-udp-plain")
            }
            Some("tagged") => Format::Tagged,
            Some("plain") => Format::Plain,
            _ => bail!("unknown format in case {text:?}"),
        };
        Ok(Self { kind, uds, format })
    }
}

/// One trial's outcome.
#[derive(Clone, Copy, Debug)]
struct Trial {
    target: f64,
    sent: load::Sent,
    delta: Counts,
    /// Server CPU over the sending time, in cores.
    cpu: f64,
    /// Everything else that ran on the server's core meanwhile (other tenants, softirqs), in cores.
    foreign: f64,
}

impl Trial {
    /// Samples that never reached the parser (drops are counted in datagrams, separately).
    fn lost(&self) -> u64 {
        self.sent.lost + self.sent.samples.saturating_sub(self.delta.received)
    }

    /// Whether the sender kept up with the target (a Unix sender blocks when the server lags).
    fn kept_up(&self) -> bool {
        self.sent.rate() >= 0.98 * self.target
    }

    fn passed(&self) -> bool {
        self.kept_up()
            && self.sent.lost == 0
            && self.delta.received == self.sent.samples
            && self.delta.dropped == 0
            && self.delta.kernel_drops == 0
    }
}

/// Sends `rate` for `duration`, waits until the server's count stops moving, returns the deltas.
fn trial(
    server: &Server,
    sender: &mut Sender,
    traffic: &Traffic,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Trial> {
    let before = server.counts()?;
    let core_before = servers::core_busy_ticks(server.cpu)?;
    let sent = sender.run(traffic, rate, duration, u64::MAX)?;
    let during = server.counts()?;
    let core_busy = servers::core_busy_ticks(server.cpu)?.saturating_sub(core_before);
    // Drain: until everything arrived, or the count held still for the settle time.
    let mut after = during;
    let mut still_since = Instant::now();
    while after.received.saturating_sub(before.received) < sent.samples
        && still_since.elapsed() < server.settle()
    {
        std::thread::sleep(Duration::from_millis(100));
        let now = server.counts()?;
        if now.received != after.received {
            still_since = Instant::now();
        }
        after = now;
    }
    #[allow(clippy::cast_precision_loss)]
    let ticks_to_cores = |ticks: u64| ticks as f64 / 100.0 / sent.elapsed.as_secs_f64();
    let server_ticks = during.cpu_ticks.saturating_sub(before.cpu_ticks);
    Ok(Trial {
        target: rate,
        sent,
        delta: Counts {
            received: after.received.saturating_sub(before.received),
            dropped: after.dropped.saturating_sub(before.dropped),
            kernel_drops: after.kernel_drops.saturating_sub(before.kernel_drops),
            cpu_ticks: after.cpu_ticks.saturating_sub(before.cpu_ticks),
        },
        cpu: ticks_to_cores(server_ticks),
        foreign: ticks_to_cores(core_busy.saturating_sub(server_ticks)),
    })
}

/// The search's result for one case.
#[derive(Debug)]
struct Outcome {
    case: Case,
    best: Option<Trial>,
    lowest_failure: Option<f64>,
    generator_bound: bool,
    trials: usize,
}

fn search(case: Case, args: &IngestArgs, programs: &Programs) -> anyhow::Result<Outcome> {
    let server = Server::start(case.kind, programs)?;
    let traffic = Traffic::new(
        case.format,
        args.traffic.contexts,
        args.traffic.datagram_bytes,
    );
    let mut sender = Sender::new(&server.target(case.uds)?)?;
    // Warm-up: every context once, slowly; also checks that the server counts what we send.
    let passes = 3;
    let warm = trial(
        &server,
        &mut sender,
        &traffic,
        50_000.0,
        Duration::from_secs(60).min(Duration::from_secs_f64(
            (traffic.samples_per_pass() * passes) as f64 / 50_000.0 + 0.05,
        )),
    )?;
    if warm.delta.received != warm.sent.samples {
        bail!(
            "{}: warm-up sent {} samples but the server counted {} (kernel drops {})",
            case.kind.label(),
            warm.sent.samples,
            warm.delta.received,
            warm.delta.kernel_drops
        );
    }
    let duration = Duration::from_secs(args.duration);
    let mut outcome = Outcome {
        case,
        best: None,
        lowest_failure: None,
        generator_bound: false,
        trials: 0,
    };
    let mut rate = args.start_rate;
    loop {
        let mut passed = false;
        for attempt in 1..=args.attempts {
            let result = trial(&server, &mut sender, &traffic, rate, duration)?;
            outcome.trials += 1;
            eprintln!(
                "  {} {} {}: target {:>9.0}/s sent {:>9.0}/s stalled {:>4.0?} received {:>10} of {:>10} lost {:>8} (datagrams dropped by server {}, by kernel {}) cpu {:>3.0}% (others on its core {:>3.0}%) {}",
                case.kind.label(),
                server.target(case.uds)?.transport(),
                case.format.label(),
                rate,
                result.sent.rate(),
                result.sent.stalled,
                result.delta.received,
                result.sent.samples,
                result.lost(),
                result.delta.dropped,
                result.delta.kernel_drops,
                result.cpu * 100.0,
                result.foreign * 100.0,
                if result.passed() {
                    "pass".to_owned()
                } else {
                    format!("FAIL (attempt {attempt})")
                },
            );
            if !case.uds && !result.kept_up() {
                // UDP never blocks: the generator itself cannot go faster.
                outcome.generator_bound = true;
            }
            if result.passed() {
                passed = true;
                outcome.best = Some(result);
                break;
            }
            if outcome.generator_bound {
                break;
            }
            // Let the server catch up before the retry.
            std::thread::sleep(Duration::from_millis(500));
        }
        if outcome.generator_bound {
            break;
        }
        if !passed {
            outcome.lowest_failure = Some(rate);
        }
        let low = outcome.best.map_or(0.0, |best| best.target);
        rate = match outcome.lowest_failure {
            None => rate * 2.0,
            Some(high) if low > 0.0 && high / low <= 1.0 + args.precision => break,
            Some(high) if low == 0.0 && high <= args.start_rate / 64.0 => break,
            Some(high) => f64::midpoint(low, high),
        };
        // Round to 1000 samples/s, for readable tables.
        rate = (rate / 1000.0).round().max(1.0) * 1000.0;
    }
    Ok(outcome)
}

fn ingest(args: &IngestArgs) -> anyhow::Result<()> {
    let cases = args
        .cases
        .iter()
        .map(|text| Case::parse(text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    pin_self(args.traffic.load_cpu)?;
    // Real-time scheduling needs CAP_SYS_NICE; without it the run goes on, noisier.
    let rt_priority = match realtime_self(args.rt_priority) {
        Ok(()) => args.rt_priority,
        Err(error) => {
            eprintln!("warning: running without real-time scheduling: {error:#}");
            0
        }
    };
    let programs = Programs {
        dogd: args.dogd.clone(),
        node: args.node.clone(),
        statsd_dir: args.statsd_dir.clone(),
        collectd: args.collectd.clone(),
        cpu: args.server_cpu,
        rt_priority,
        dogd_rcvbuf: args.dogd_rcvbuf,
    };
    let mut outcomes = Vec::new();
    for case in cases {
        eprintln!(
            "{} over {} ({} lines):",
            case.kind.label(),
            if case.uds { "UDS" } else { "UDP" },
            case.format.label()
        );
        match search(case, args, &programs) {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => eprintln!("  {error:#}"),
        }
    }
    println!(
        "Max zero-loss rate on one core ({} contexts, {} s per trial, {})\n",
        args.traffic.contexts,
        args.duration,
        if args.traffic.datagram_bytes == 0 {
            "one line per datagram".to_owned()
        } else {
            format!(
                "lines packed up to {} bytes per datagram",
                args.traffic.datagram_bytes
            )
        }
    );
    println!(
        "| Server | Transport | Lines | samples/datagram | max zero-loss samples/s | lowest failing | server CPU at max | µs CPU per 1k samples | trials |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for outcome in &outcomes {
        let case = outcome.case;
        let traffic = Traffic::new(
            case.format,
            args.traffic.contexts,
            args.traffic.datagram_bytes,
        );
        let (best, cpu, per_k) = match outcome.best {
            Some(best) => {
                #[allow(clippy::cast_precision_loss)]
                let per_k = best.delta.cpu_ticks as f64 * 10_000.0
                    / (best.delta.received.max(1) as f64 / 1000.0);
                (
                    format!(
                        "{:.0}{}",
                        best.sent.rate(),
                        if outcome.generator_bound {
                            " (generator limit)"
                        } else {
                            ""
                        }
                    ),
                    format!("{:.0} %", best.cpu * 100.0),
                    format!("{per_k:.0}"),
                )
            }
            None => ("none".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        println!(
            "| {} | {} | {} ({:.0} B/datagram) | {:.1} | {best} | {} | {cpu} | {per_k} | {} |",
            case.kind.label(),
            if case.uds { "UDS" } else { "UDP" },
            case.format.label(),
            traffic.bytes_per_datagram(),
            traffic.samples_per_datagram(),
            outcome
                .lowest_failure
                .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.0}")),
            outcome.trials,
        );
    }
    if outcomes.is_empty() {
        bail!("no case could be measured (see the errors above)");
    }
    Ok(())
}
