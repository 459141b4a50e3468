//! In-process measurements, no sockets: parser throughput and memory per live context.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dogd_dogstatsd::context::ContextResolver;
use dogd_dogstatsd::parse::{Line, Message, ParseOptions, parse_message, split_messages};

use super::load::Format;

/// Arguments of `dogd-bench dogstatsd parse`.
#[derive(Debug, clap::Args)]
pub(crate) struct ParseArgs {
    /// Seconds per measurement (after one warm-up pass).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Lines in the mixed corpus.
    #[arg(long, default_value_t = 200_000)]
    lines: usize,
    /// Largest packet of the corpus (lines are packed like buffering clients do).
    #[arg(long, default_value_t = 1400)]
    packet_bytes: usize,
    /// Core to run on.
    #[arg(long, default_value_t = 1)]
    cpu: usize,
}

/// Arguments of `dogd-bench dogstatsd contexts`.
#[derive(Debug, clap::Args)]
pub(crate) struct ContextsArgs {
    /// Live contexts to hold.
    #[arg(long, default_value_t = 1_000_000)]
    contexts: usize,
}

/// xorshift64*: the same corpus on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        #[allow(clippy::cast_possible_truncation)]
        let index = (self.next() % items.len() as u64) as usize;
        items[index]
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SERVICES: &[&str] = &["web", "api", "db", "cache", "queue", "auth", "billing"];
const MEASURES: &[&str] = &[
    "request.count",
    "request.duration",
    "errors",
    "pool.active",
    "bytes.sent",
    "jobs.processed",
    "cache.hits",
    "latency",
];
const TAGS: &[&str] = &[
    "env:prod",
    "env:staging",
    "region:eu-west-1",
    "region:us-east-1",
    "version:1.42.3",
    "status_code:200",
    "status_code:503",
    "method:GET",
    "method:POST",
    "endpoint:/api/v2/orders",
    "kube_namespace:default",
    "pod_name:web-7d9f8c6b5-x2x9k",
    "availability-zone:us-east-1a",
    "customer_tier:gold",
];

/// One line of the mixed corpus: counters, gauges, histograms, timers, distributions and sets with
/// 0–7 tags, some sample rates; 1 % events and service checks.
fn mixed_line(rng: &mut Rng) -> String {
    match rng.below(200) {
        0 => return "_e{21,28}:Deploy of web finished|Rolled out 1.42.3 to 12 pods|t:success|#env:prod,service:web".to_owned(),
        1 => return format!("_sc|db.can_connect|{}|#env:prod,shard:{}|m:ok", rng.below(4), rng.below(16)),
        _ => {}
    }
    let (kind, value) = match rng.below(100) {
        0..40 => ("c", rng.below(10).to_string()),
        40..65 => ("g", format!("{}.{}", rng.below(10_000), rng.below(100))),
        65..75 => ("h", rng.below(5000).to_string()),
        75..85 => ("ms", format!("{}.{}", rng.below(2000), rng.below(1000))),
        85..95 => ("d", rng.below(100_000).to_string()),
        _ => ("s", format!("user-{}", rng.below(50_000))),
    };
    let mut line = format!(
        "{}.{}:{value}|{kind}",
        rng.pick(SERVICES),
        rng.pick(MEASURES)
    );
    if rng.below(10) == 0 {
        line.push_str("|@0.5");
    }
    let tags = rng.below(8);
    for i in 0..tags {
        line.push_str(if i == 0 { "|#" } else { "," });
        line.push_str(rng.pick(TAGS));
    }
    line
}

fn pack(lines: impl Iterator<Item = String>, packet_bytes: usize) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut packet = Vec::new();
    for line in lines {
        if !packet.is_empty() && packet.len() + line.len() + 1 > packet_bytes {
            packets.push(std::mem::take(&mut packet));
        }
        packet.extend_from_slice(line.as_bytes());
        packet.push(b'\n');
    }
    if !packet.is_empty() {
        packets.push(packet);
    }
    packets
}

/// Parses every packet once; with `resolver`, also resolves each metric's context as a worker
/// does. Returns the number of messages.
fn pass(
    packets: &[Vec<u8>],
    options: &ParseOptions,
    mut resolver: Option<&mut ContextResolver>,
) -> u64 {
    let mut messages = 0;
    // One reusable buffer of borrowed tags, like the worker's.
    let mut tags: Vec<&str> = Vec::new();
    for packet in packets {
        for line in split_messages(packet, false) {
            let Line::Message(line) = line else { continue };
            let Ok(message) = parse_message(line, options) else {
                continue;
            };
            messages += 1;
            match (&mut resolver, &message) {
                (Some(resolver), Message::Metric(metric)) => {
                    tags.clear();
                    tags.extend(metric.tags.iter());
                    black_box(resolver.resolve(metric.name, &tags, "bench"));
                }
                _ => {
                    black_box(&message);
                }
            }
        }
    }
    messages
}

/// (messages/s, MB/s) over `seconds`.
#[allow(clippy::cast_precision_loss)]
fn measure(
    packets: &[Vec<u8>],
    seconds: f64,
    mut resolver: Option<&mut ContextResolver>,
) -> (f64, f64) {
    let options = ParseOptions::default();
    let bytes: usize = packets.iter().map(Vec::len).sum();
    black_box(pass(packets, &options, resolver.as_deref_mut()));
    let started = Instant::now();
    let mut messages = 0;
    let mut passes = 0;
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        messages += pass(packets, &options, resolver.as_deref_mut());
        passes += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        messages as f64 / elapsed,
        (bytes * passes) as f64 / elapsed / 1e6,
    )
}

pub(crate) fn parse(args: &ParseArgs) -> anyhow::Result<()> {
    super::pin_self(args.cpu)?;
    let mut rng = Rng(0x0DD5_7A75_DEAD_BEEF);
    let mixed = pack(
        (0..args.lines).map(|_| mixed_line(&mut rng)),
        args.packet_bytes,
    );
    let counters = pack(
        (0..args.lines).map(|i| Format::Tagged.line(i % 1000)),
        args.packet_bytes,
    );
    println!(
        "Parser throughput, one thread ({} lines per corpus, packets up to {} bytes)\n",
        args.lines, args.packet_bytes
    );
    println!("| Corpus | Work | bytes/line | messages/s | MB/s | ns/message |");
    println!("|---|---|---|---|---|---|");
    for (name, packets) in [
        (
            "mixed (6 metric types, 0–7 tags, 1 % events/checks)",
            &mixed,
        ),
        ("ingest counters (tagged, 1000 contexts)", &counters),
    ] {
        let bytes: usize = packets.iter().map(Vec::len).sum();
        #[allow(clippy::cast_precision_loss)]
        let per_line = bytes as f64 / args.lines as f64;
        let mut resolver = ContextResolver::new();
        for (work, resolver) in [
            ("split + parse", None),
            ("split + parse + resolve context", Some(&mut resolver)),
        ] {
            let (rate, megabytes) = measure(packets, args.seconds, resolver);
            println!(
                "| {name} | {work} | {per_line:.0} | {rate:.0} | {megabytes:.0} | {:.0} |",
                1e9 / rate
            );
        }
    }
    Ok(())
}

fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

pub(crate) fn contexts(args: &ContextsArgs) -> anyhow::Result<()> {
    // Baseline: the resolver exists and has interned the shared strings; the tag buffer is
    // allocated. What grows from here is the contexts themselves.
    let mut resolver = ContextResolver::new();
    let mut unique = String::with_capacity(32);
    let tags = |unique: &str| ["env:bench", "service:ingest", unique].map(str::to_owned);
    for i in 0..16 {
        unique.clear();
        unique.push_str(&format!("ctx:warm{i}"));
        let owned = tags(&unique);
        let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
        resolver.resolve("bench.metric", &borrowed, "bench");
    }
    let before = rss_bytes()?;
    let started = Instant::now();
    for i in 0..args.contexts {
        unique.clear();
        use std::fmt::Write as _;
        write!(unique, "ctx:{i}")?;
        let borrowed = ["env:bench", "service:ingest", unique.as_str()];
        let (_, context) = resolver.resolve("bench.metric", &borrowed, "bench");
        drop(context);
    }
    let elapsed = started.elapsed();
    let after = rss_bytes()?;
    let live = resolver.len() - 16;
    #[allow(clippy::cast_precision_loss)]
    let per_context = after.saturating_sub(before) as f64 / live as f64;
    #[allow(clippy::cast_precision_loss)]
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "Memory per live context ({live} contexts: name `bench.metric`, tags env:bench, service:ingest, ctx:<i>; host fixed)\n"
    );
    println!("| RSS before | RSS after | bytes/context | interned strings | insert time |");
    println!("|---|---|---|---|---|");
    println!(
        "| {:.1} MiB | {:.1} MiB | {per_context:.0} | {} | {:.0} ns/context |",
        mib(before),
        mib(after),
        resolver.interned_strings(),
        elapsed.as_secs_f64() * 1e9 / live.max(1) as f64
    );
    black_box(&resolver);
    Ok(())
}
