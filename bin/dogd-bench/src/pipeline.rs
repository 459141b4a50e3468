//! The metrics pipeline: end-to-end throughput (DogStatsD over UDP → aggregator → serializer →
//! forwarder → fake intake) against ingest alone (DogStatsD into a counting sink), measured side by
//! side with the same load; and one flush of a million contexts (time and memory).
//!
//! Both throughput setups are built in-process from the same component crates `dogd run` wires,
//! so the only difference between them is what sits behind DogStatsD.

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dogd_aggregator::sampler::{SamplerConfig, TimeSampler};
use dogd_aggregator::{Aggregator, AggregatorConfig, Flush};
use dogd_api::StatusProvider as _;
use dogd_config::{Config, Environment};
use dogd_core::{HealthRegistry, StopRequest, Supervisor};
use dogd_dogstatsd::context::ContextResolver;
use dogd_dogstatsd::parse::MetricType;
use dogd_dogstatsd::sample::{CountingSink, Sample, SampleValue};
use dogd_dogstatsd::stats::MetricStats;
use dogd_dogstatsd::{DogStatsdConfig, DogStatsdServer};
use dogd_fakeintake::{FakeIntake, Kind, Options, series_total};
use dogd_forwarder::{Forwarder, ForwarderConfig, ForwardingSink, Serializer};

/// Arguments of `dogd-bench pipeline`.
#[derive(Debug, clap::Args)]
pub(crate) struct PipelineArgs {
    #[command(subcommand)]
    command: PipelineCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PipelineCommand {
    /// Samples/s through the whole pipeline vs DogStatsD ingest alone, same load, alternating runs.
    Throughput(ThroughputArgs),
    /// One flush of many contexts: time to aggregate, flush and serialize, and memory.
    Flush(FlushArgs),
}

/// Arguments of `dogd-bench pipeline throughput`.
#[derive(Debug, clap::Args)]
struct ThroughputArgs {
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Distinct counter contexts, sent round-robin.
    #[arg(long, default_value_t = 10_000)]
    contexts: usize,
    /// Runs of each setup (alternating).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Lines per datagram (packed like buffering clients do).
    #[arg(long, default_value_t = 20)]
    lines_per_datagram: usize,
}

/// Arguments of `dogd-bench pipeline flush`.
#[derive(Debug, clap::Args)]
struct FlushArgs {
    /// Contexts in the flush.
    #[arg(long, default_value_t = 1_000_000)]
    contexts: usize,
}

pub(crate) fn run(args: &PipelineArgs) -> anyhow::Result<()> {
    match &args.command {
        PipelineCommand::Throughput(args) => throughput(args),
        PipelineCommand::Flush(args) => flush(args),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    IngestOnly,
    EndToEnd,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::IngestOnly => "ingest only (DogStatsD → counting sink)",
            Setup::EndToEnd => "end to end (DogStatsD → aggregator → forwarder → fake intake)",
        }
    }
}

/// What one run measured.
#[derive(Debug, Default)]
struct RunResult {
    sent: u64,
    parsed: u64,
    /// Samples whose counts reached the intake (end to end only).
    delivered: Option<u64>,
    load: Duration,
    /// From the stop signal to every component stopped (final flush and drain included).
    stop: Duration,
}

fn throughput(args: &ThroughputArgs) -> anyhow::Result<()> {
    let packets = counter_packets(args.contexts, args.lines_per_datagram);
    let mut results: Vec<(Setup, RunResult)> = Vec::new();
    for run in 0..args.runs {
        for setup in [Setup::IngestOnly, Setup::EndToEnd] {
            let result = one_run(setup, &packets, args.seconds)
                .with_context(|| format!("run {run} of {}", setup.name()))?;
            eprintln!("{} run {run}: {result:?}", setup.name());
            results.push((setup, result));
        }
    }
    let rate = |result: &RunResult| per_second(result.parsed, result.load);
    let median_rate = |setup: Setup| {
        let mut rates: Vec<f64> = results
            .iter()
            .filter(|(s, _)| *s == setup)
            .map(|(_, r)| rate(r))
            .collect();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "Pipeline throughput: {} s of UDP load per run, {} counter contexts, {} lines per datagram, {} runs each, alternating\n",
        args.seconds, args.contexts, args.lines_per_datagram, args.runs
    );
    println!(
        "| setup | run | sent/s | parsed/s | delivered to intake | stop (final flush + drain) |"
    );
    println!("|---|---|---|---|---|---|");
    for (index, (setup, result)) in results.iter().enumerate() {
        let delivered = result.delivered.map_or_else(
            || "-".to_owned(),
            |delivered| {
                let lost = result.parsed.saturating_sub(delivered);
                format!("{delivered} of {} parsed (lost {lost})", result.parsed)
            },
        );
        println!(
            "| {} | {} | {:.0} | {:.0} | {delivered} | {:.0} ms |",
            setup.name(),
            index / 2,
            per_second(result.sent, result.load),
            rate(result),
            result.stop.as_secs_f64() * 1e3,
        );
    }
    let ingest = median_rate(Setup::IngestOnly);
    let end_to_end = median_rate(Setup::EndToEnd);
    println!(
        "\nMedian parsed/s: ingest only {ingest:.0}, end to end {end_to_end:.0}: ratio {:.2}",
        if ingest > 0.0 {
            end_to_end / ingest
        } else {
            0.0
        }
    );
    Ok(())
}

#[allow(clippy::cast_precision_loss, reason = "rates for a report")]
fn per_second(count: u64, over: Duration) -> f64 {
    count as f64 / over.as_secs_f64().max(1e-9)
}

/// Datagrams of `lines` counters each, cycling through `contexts` contexts.
fn counter_packets(contexts: usize, lines: usize) -> Vec<Vec<u8>> {
    let lines = lines.max(1);
    let mut packets = Vec::new();
    let mut packet = String::new();
    let mut in_packet = 0;
    for index in 0..contexts.max(1) {
        let _ = writeln!(
            packet,
            "bench.pipeline.m{}:1|c|#env:bench,ctx:{index}",
            index % 100
        );
        in_packet += 1;
        if in_packet == lines {
            packets.push(std::mem::take(&mut packet).into_bytes());
            in_packet = 0;
        }
    }
    if !packet.is_empty() {
        packets.push(packet.into_bytes());
    }
    packets
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn one_run(setup: Setup, packets: &[Vec<u8>], seconds: u64) -> anyhow::Result<RunResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let port = free_udp_port()?;
    let yaml = format!(
        "dogstatsd_port: {port}\ndogstatsd_so_rcvbuf: 8388608\nshutdown_timeout: 60\nhostname: bench\n"
    );
    let config = Config::from_yaml(
        std::path::Path::new("bench.yaml"),
        &yaml,
        &Environment::default(),
    )?;
    let telemetry = dogd_telemetry::Registry::new();
    let mut supervisor = Supervisor::new(
        Duration::from_secs(60),
        HealthRegistry::new(),
        StopRequest::new(),
    );
    let intake = match setup {
        Setup::IngestOnly => None,
        Setup::EndToEnd => Some(runtime.block_on(FakeIntake::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Options {
                max_payloads: 1_000_000,
                ..Options::default()
            },
        ))?),
    };
    let counting = Arc::new(CountingSink::default());
    let sink: Arc<dyn dogd_dogstatsd::sample::SampleSink> = match &intake {
        None => counting.clone(),
        Some(intake) => {
            let url = intake.url().parse()?;
            let mut forwarder_config =
                ForwarderConfig::new(url, "0123456789abcdef0123456789abcdef", "7.0.0");
            forwarder_config.validate_api_key = false;
            let forwarder =
                runtime.block_on(async { Forwarder::new(forwarder_config, &telemetry) })?;
            let sink = ForwardingSink::new(
                Serializer::from_config(&config, "bench")?,
                forwarder.handle(),
                &telemetry,
            )?;
            supervisor.register(forwarder);
            let aggregator = Aggregator::new(
                AggregatorConfig::from_config(&config)?,
                Arc::new(sink),
                &telemetry,
            )?;
            let input = Arc::new(aggregator.input());
            supervisor.register(aggregator);
            input
        }
    };
    let server = DogStatsdServer::new(
        DogStatsdConfig::from_config(&config)?,
        "bench",
        sink,
        &telemetry,
        MetricStats::new(false),
    )?;
    let status = server.status();
    supervisor.register(server);
    runtime
        .block_on(supervisor.start())
        .context("start the pipeline")?;

    let load = Duration::from_secs(seconds);
    let sent = blast(port, packets, load)?;
    // Let the parsers empty their queues before reading what they parsed.
    std::thread::sleep(Duration::from_millis(500));
    let parsed = status.status()["messages"]["metrics"].as_u64().unwrap_or(0);
    let stopping = Instant::now();
    let report = runtime.block_on(supervisor.stop());
    let stop = stopping.elapsed();
    anyhow::ensure!(report.is_clean(), "the pipeline did not stop cleanly");
    let delivered = intake.as_ref().map(delivered_count);
    if let Some(intake) = intake {
        runtime.block_on(intake.stop());
    }
    black_box(counting.counts());
    Ok(RunResult {
        sent,
        parsed,
        delivered,
        load,
        stop,
    })
}

/// Sends `packets` round-robin for `duration` from one thread; returns the lines sent.
fn blast(port: u16, packets: &[Vec<u8>], duration: Duration) -> anyhow::Result<u64> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(("127.0.0.1", port))?;
    let lines: Vec<u64> = packets
        .iter()
        .map(|packet| packet.iter().filter(|byte| **byte == b'\n').count() as u64)
        .collect();
    let mut sent = 0;
    let mut index = 0;
    let started = Instant::now();
    while started.elapsed() < duration {
        // Read the clock every 256 datagrams: reading it per send would cost more than sending.
        for _ in 0..256 {
            let at = index % packets.len();
            index += 1;
            if socket.send(&packets[at]).is_ok() {
                sent += lines[at];
            }
        }
    }
    Ok(sent)
}

/// Samples the intake received: every counter sample is worth 1, and a rate point is a count
/// divided by its interval.
fn delivered_count(intake: &FakeIntake) -> u64 {
    let total: f64 = intake
        .payloads(Kind::Series)
        .iter()
        .flat_map(|record| {
            record["payload"]["series"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|serie| series_total(&serie))
        .sum();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a non-negative count"
    )]
    let count = total.round() as u64;
    count
}

fn rss_and_peak() -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/self/status"))?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

#[allow(clippy::cast_precision_loss, reason = "sizes for a report")]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn flush(args: &FlushArgs) -> anyhow::Result<()> {
    let (base, _) = rss_and_peak()?;
    let mut resolver = ContextResolver::new();
    let mut sampler = TimeSampler::new(SamplerConfig::default());
    let mut unique = String::with_capacity(32);
    let adding = Instant::now();
    for index in 0..args.contexts {
        unique.clear();
        write!(unique, "ctx:{index}")?;
        let name = format!("bench.flush.m{}", index % 100);
        let (key, context) = resolver.resolve(&name, &["env:bench", &unique], "bench");
        #[allow(clippy::cast_precision_loss, reason = "small values")]
        let sample = Sample {
            key,
            context,
            metric_type: MetricType::Gauge,
            value: SampleValue::Number(index as f64),
            sample_rate: 1.0,
            timestamp: None,
            origin: None,
        };
        sampler.add(&sample, 1_000.0);
    }
    let add_time = adding.elapsed();
    let (held, _) = rss_and_peak()?;

    let flushing = Instant::now();
    let (series, sketches) = sampler.flush(1_010.0);
    let flush_time = flushing.elapsed();
    let series_count = series.len();
    let flush = Flush {
        timestamp: 1_010,
        series,
        sketches,
        ..Flush::default()
    };
    let config = Config::from_yaml(
        std::path::Path::new("bench.yaml"),
        "",
        &Environment::default(),
    )?;
    let serializer = Serializer::from_config(&config, "bench")?;
    let serializing = Instant::now();
    let serialized = serializer.serialize(&flush);
    let serialize_time = serializing.elapsed();
    let payload_bytes: usize = serialized
        .transactions
        .iter()
        .map(|transaction| transaction.body.len())
        .sum();
    let (_, peak) = rss_and_peak()?;
    black_box(&resolver);

    #[allow(clippy::cast_precision_loss, reason = "report")]
    let per_context = held.saturating_sub(base) as f64 / args.contexts.max(1) as f64;
    println!(
        "One flush of {} gauge contexts (names bench.flush.m0..m99, tags env:bench + ctx:<i>), zstd level 1\n",
        args.contexts
    );
    println!(
        "| add samples | flush (sampler → series) | serialize (protobuf + zstd) | series | payloads | compressed | RSS held by contexts | bytes/context | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {:.0} ms | {:.0} ms | {:.0} ms | {series_count} | {} | {:.1} MiB | {:.0} MiB | {per_context:.0} | {:.0} MiB |",
        add_time.as_secs_f64() * 1e3,
        flush_time.as_secs_f64() * 1e3,
        serialize_time.as_secs_f64() * 1e3,
        serialized.transactions.len(),
        mib(payload_bytes as u64),
        mib(held.saturating_sub(base)),
        mib(peak),
    );
    Ok(())
}
