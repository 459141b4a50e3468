//! Parser-only throughput with divan: one message of each common form, and a packet of tagged
//! counters as buffering clients send them (split + parse). Run with
//! `cargo bench -p dogd-dogstatsd --bench parse`.

use std::hint::black_box;

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use dogd_dogstatsd::parse::{Line, ParseOptions, parse_message, split_messages};

fn main() {
    divan::main();
}

/// One line of each form the agent accepts, as clients commonly send them.
const LINES: &[(&str, &str)] = &[
    ("counter_plain", "page.views:1|c"),
    (
        "counter_tagged",
        "api.requests:1|c|#env:prod,service:web,region:eu-west-1,status_code:200",
    ),
    (
        "histogram_rate_tags",
        "db.query.time:12.5|h|@0.5|#env:prod,db:orders,shard:3",
    ),
    (
        "distribution_packed",
        "payload.size:120:340:98:1024|d|#env:prod",
    ),
    (
        "gauge_timestamped",
        "queue.depth:42|g|#env:prod|T1764115200",
    ),
    ("set", "users.unique:user-4821|s|#env:prod"),
    (
        "event",
        "_e{21,28}:Deploy of web finished|Rolled out 1.42.3 to 12 pods|t:success|#env:prod,service:web",
    ),
    (
        "service_check",
        "_sc|db.can_connect|0|d:1764115200|h:db-1|#env:prod,shard:2|m:connection ok",
    ),
];

#[divan::bench(args = LINES.iter().map(|(name, _)| *name))]
fn one_message(bencher: Bencher<'_, '_>, name: &str) {
    let line = LINES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, line)| line.as_bytes())
        .unwrap_or_default();
    let options = ParseOptions::default();
    bencher
        .counter(BytesCount::new(line.len()))
        .bench(|| black_box(parse_message(black_box(line), &options).is_ok()));
}

/// A 1400-byte-ish packet of tagged counters over 1000 contexts, split and parsed.
#[divan::bench]
fn packet_of_tagged_counters(bencher: Bencher<'_, '_>) {
    let mut packet = Vec::new();
    let mut lines = 0usize;
    while packet.len() < 1300 {
        packet.extend_from_slice(
            format!("bench.metric.{lines}:1|c|#env:bench,service:ingest,ctx:{lines}\n").as_bytes(),
        );
        lines += 1;
    }
    let options = ParseOptions::default();
    bencher.counter(ItemsCount::new(lines)).bench(|| {
        let mut parsed = 0usize;
        for line in split_messages(black_box(&packet), false) {
            if let Line::Message(line) = line {
                parsed += usize::from(parse_message(line, &options).is_ok());
            }
        }
        assert_eq!(parsed, lines, "every line of the packet parses");
        parsed
    });
}
