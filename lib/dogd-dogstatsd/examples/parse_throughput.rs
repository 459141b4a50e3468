//! DogStatsD parser throughput on a realistic corpus.
//!
//! `cargo run --release -p dogd-dogstatsd --example parse_throughput [passes]`
//!
//! The corpus mixes counters, gauges, histograms, timers, distributions and sets with 0–8
//! tags, some packed values, sample rates and timestamps, plus 1% events and service
//! checks, packed into 8 KiB packets the way buffering clients send them. Each pass splits
//! every packet and parses every line; a second mode also walks every tag and value, as the
//! server does when it builds contexts.

use std::hint::black_box;
use std::time::{Duration, Instant};

use dogd_dogstatsd::parse::{Line, Message, ParseOptions, parse_message, split_messages};

/// xorshift64*, to build the same corpus on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const LINES: usize = 200_000;
const PACKET_SIZE: usize = 8192;

const NAMESPACES: &[&str] = &[
    "app", "web", "db", "queue", "cache", "payments", "auth", "search",
];
const SUBSYSTEMS: &[&str] = &[
    "requests", "latency", "errors", "pool", "jobs", "bytes", "hits", "misses",
];
const SUFFIXES: &[&str] = &[
    "count",
    "total",
    "duration",
    "size",
    "active",
    "p99",
    "rate",
    "in_flight",
];
const TAG_KEYS: &[&str] = &[
    "env",
    "service",
    "version",
    "region",
    "availability-zone",
    "endpoint",
    "status_code",
    "method",
    "kube_namespace",
    "pod_name",
    "customer_tier",
    "shard",
];
const TAG_VALUES: &[&str] = &[
    "prod",
    "staging",
    "web-frontend",
    "1.42.3",
    "eu-west-1",
    "us-east-1a",
    "/api/v2/orders",
    "200",
    "503",
    "GET",
    "POST",
    "default",
    "web-frontend-7d9f8c6b5-x2x9k",
    "gold",
    "17",
];

fn metric_line(rng: &mut Rng) -> String {
    let name = format!(
        "{}.{}.{}",
        NAMESPACES[rng.below(NAMESPACES.len())],
        SUBSYSTEMS[rng.below(SUBSYSTEMS.len())],
        SUFFIXES[rng.below(SUFFIXES.len())]
    );
    let kind = rng.below(100);
    let (symbol, packed) = match kind {
        0..40 => ("c", false),
        40..70 => ("g", false),
        70..80 => ("h", true),
        80..85 => ("ms", true),
        85..95 => ("d", true),
        _ => ("s", false),
    };
    let value = |rng: &mut Rng| -> String {
        match rng.below(3) {
            0 => rng.below(100).to_string(),
            1 => format!("{}.{}", rng.below(10_000), rng.below(1000)),
            _ => rng.below(1_000_000).to_string(),
        }
    };
    let values = if symbol == "s" {
        format!("user-{}", rng.below(50_000))
    } else if packed && rng.chance(30) {
        let count = 2 + rng.below(7);
        (0..count).map(|_| value(rng)).collect::<Vec<_>>().join(":")
    } else {
        value(rng)
    };
    let mut line = format!("{name}:{values}|{symbol}");
    if rng.chance(10) {
        line.push_str(["|@0.5", "|@0.1", "|@0.25"][rng.below(3)]);
    }
    let tags = rng.below(9);
    if tags > 0 {
        let list: Vec<String> = (0..tags)
            .map(|_| {
                format!(
                    "{}:{}",
                    TAG_KEYS[rng.below(TAG_KEYS.len())],
                    TAG_VALUES[rng.below(TAG_VALUES.len())]
                )
            })
            .collect();
        line.push_str("|#");
        line.push_str(&list.join(","));
    }
    if rng.chance(5) {
        line.push_str(&format!("|T{}", 1_700_000_000 + rng.below(1_000_000)));
    }
    if rng.chance(5) {
        line.push_str("|c:ci-4f5e8c2a9b7d1e3f6a0c8b2d4e6f8a1c3e5b7d9f0a2c4e6b8d0f1a3c5e7b9d1f");
    }
    line
}

fn other_line(rng: &mut Rng) -> String {
    if rng.chance(50) {
        let title = "Deploy of web-frontend finished";
        let text = "Rolled out version 1.42.3 to 12 pods\\nAll health checks passed";
        format!(
            "_e{{{},{}}}:{title}|{text}|t:success|s:ci|#env:prod,service:web-frontend",
            title.len(),
            text.len()
        )
    } else {
        format!(
            "_sc|db.can_connect|{}|h:db-{}|#env:prod,shard:{}|m:connection ok",
            rng.below(4),
            rng.below(10),
            rng.below(16)
        )
    }
}

fn corpus() -> (Vec<Vec<u8>>, usize) {
    let mut rng = Rng(0x0DD5_7A75);
    let mut packets = Vec::new();
    let mut packet = Vec::with_capacity(PACKET_SIZE);
    for _ in 0..LINES {
        let line = if rng.chance(1) {
            other_line(&mut rng)
        } else {
            metric_line(&mut rng)
        };
        if !packet.is_empty() && packet.len() + line.len() + 1 > PACKET_SIZE {
            packets.push(std::mem::replace(
                &mut packet,
                Vec::with_capacity(PACKET_SIZE),
            ));
        }
        packet.extend_from_slice(line.as_bytes());
        packet.push(b'\n');
    }
    if !packet.is_empty() {
        packets.push(packet);
    }
    (packets, LINES)
}

/// Parses every packet once; returns the number of messages and a checksum.
fn pass(packets: &[Vec<u8>], options: &ParseOptions, walk: bool) -> (usize, u64) {
    let mut messages = 0;
    let mut checksum = 0u64;
    for packet in packets {
        for line in split_messages(packet, false) {
            let Line::Message(line) = line else { continue };
            let Ok(message) = parse_message(line, options) else {
                continue;
            };
            messages += 1;
            if walk {
                checksum = checksum.wrapping_add(walk_message(&message));
            } else {
                black_box(&message);
            }
        }
    }
    (messages, checksum)
}

/// Touches what a server reads: name, every tag and every value.
fn walk_message(message: &Message<'_>) -> u64 {
    match message {
        Message::Metric(m) => {
            let tags: usize = m.tags.iter().map(str::len).sum();
            let values: f64 = m.values.iter().sum();
            (m.name.len() + tags) as u64 + values.to_bits() % 7
        }
        Message::Event(e) => (e.title.len() + e.text.len() + e.tags.iter().count()) as u64,
        Message::ServiceCheck(c) => (c.name.len() + c.tags.iter().count()) as u64,
    }
}

fn report(label: &str, messages: usize, bytes: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    println!(
        "{label:<28} {:>8.2} M messages/s {:>9.1} MB/s  ({messages} messages in {elapsed:.2?})",
        messages as f64 / seconds / 1e6,
        bytes as f64 / seconds / 1e6,
    );
}

fn main() {
    let passes: usize = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(25);
    let (packets, lines) = corpus();
    let bytes: usize = packets.iter().map(Vec::len).sum();
    println!(
        "corpus: {lines} lines in {} packets, {:.1} MB ({:.0} bytes/line), {passes} passes",
        packets.len(),
        bytes as f64 / 1e6,
        bytes as f64 / lines as f64
    );
    let options = ParseOptions {
        honor_timestamps: true,
        honor_client_origin: true,
    };
    // Warm up caches and the branch predictor.
    black_box(pass(&packets, &options, true));

    for (label, walk) in [
        ("split + parse", false),
        ("split + parse + walk tags", true),
    ] {
        let started = Instant::now();
        let mut messages = 0;
        let mut checksum = 0u64;
        for _ in 0..passes {
            let (count, sum) = pass(&packets, &options, walk);
            messages += count;
            checksum = checksum.wrapping_add(sum);
        }
        let elapsed = started.elapsed();
        black_box(checksum);
        report(label, messages, bytes * passes, elapsed);
    }
}
