//! A stable-toolchain fuzz harness for the parser, the special-tag extraction and the
//! mapper.
//!
//! Each iteration generates a packet of valid messages of every kind with random fields and
//! random Unicode, checks that it parses back to exactly what was generated (a round-trip
//! oracle, under every option combination), then mutates it in structure-aware ways (byte
//! flips, truncation, separator and invalid UTF-8 insertion, duplicated fields, huge
//! numbers, tampered event lengths…) and checks that parsing never panics and that what it
//! accepts keeps its invariants.
//!
//! `DOGD_FUZZ_ITERATIONS` sets the number of iterations (default 20 000: about 400 000
//! parses, a few seconds in a debug build); `DOGD_FUZZ_SEED` sets the seed (default: fixed,
//! so CI runs are reproducible). A failure prints the seed, the iteration and the input.

use std::collections::BTreeMap;
use std::time::Instant;

use dogd_dogstatsd::enrich::{CARDINALITY_TAG_PREFIX, extract_special_tags};
use dogd_dogstatsd::mapper::Mapper;
use dogd_dogstatsd::parse::{
    AlertType, Line, Message, MetricType, MetricValues, ParseOptions, Priority, ServiceCheckStatus,
    Tags, parse_message, split_messages,
};

/// xorshift64*: small, fast, good enough to drive a fuzzer.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Characters for generated text: ASCII, punctuation of every kind (separators included
/// where the field allows them), controls, and 2-, 3- and 4-byte UTF-8.
const ALPHABET: &[char] = &[
    'a', 'b', 'z', 'A', 'Z', '0', '7', '9', '.', '_', '-', ' ', '\t', '\0', '/', '\\', 'n', ':',
    '|', ',', '#', '@', '{', '}', '=', '"', '\'', 'T', 'c', 'e', 'd', 'h', 'é', 'ß', 'ø', 'Ω',
    '東', '京', '€', '♪', '🚀', '🐶', '\u{7f}', '\u{fffd}', '\u{200b}',
];

/// A random string of `0..=max` characters, without the characters in `forbidden` (and
/// never with `\n` or `\r`, which framing would eat).
fn text(rng: &mut Rng, max: usize, forbidden: &[char]) -> String {
    let len = if rng.chance(5) {
        max * 8
    } else {
        rng.below(max + 1)
    };
    let mut out = String::with_capacity(len);
    let mut chars = 0;
    while chars < len {
        let c = *rng.pick(ALPHABET);
        if !forbidden.contains(&c) {
            out.push(c);
            chars += 1;
        }
    }
    out
}

fn non_empty_text(rng: &mut Rng, max: usize, forbidden: &[char]) -> String {
    loop {
        let s = text(rng, max.max(1), forbidden);
        if !s.is_empty() {
            return s;
        }
    }
}

/// What a generated message must parse to.
#[derive(Debug, Clone)]
enum Expected {
    Metric {
        name: String,
        metric_type: MetricType,
        values: Vec<f64>,
        set_member: Option<String>,
        sample_rate: f64,
        tags: String,
        timestamp: Option<u64>,
        origin: OriginFields,
    },
    Event {
        title: String,
        text: String,
        timestamp: Option<i64>,
        hostname: Option<String>,
        aggregation_key: Option<String>,
        priority: Priority,
        source_type_name: Option<String>,
        alert_type: AlertType,
        tags: String,
        origin: OriginFields,
    },
    ServiceCheck {
        name: String,
        status: ServiceCheckStatus,
        timestamp: Option<i64>,
        hostname: Option<String>,
        message: Option<String>,
        tags: String,
        origin: OriginFields,
    },
}

#[derive(Debug, Clone, Default)]
struct OriginFields {
    local: Option<String>,
    external: Option<String>,
    cardinality: Option<String>,
}

fn gen_tags(rng: &mut Rng) -> String {
    let count = if rng.chance(10) { 30 } else { rng.below(9) };
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        let tag = match rng.below(6) {
            0 => format!("host:{}", text(rng, 8, &['|', ','])),
            1 => format!(
                "dd.internal.card:{}",
                rng.pick(&["low", "high", "none", "orchestrator", ""])
            ),
            2 => format!("dd.internal.entity_id:{}", text(rng, 12, &['|', ','])),
            3 => format!("dd.internal.jmx_check_name:{}", text(rng, 6, &['|', ','])),
            _ => text(rng, 16, &['|', ',']),
        };
        tags.push(tag);
    }
    tags.join(",")
}

fn gen_origin(rng: &mut Rng, fields: &mut Vec<String>) -> OriginFields {
    let mut origin = OriginFields::default();
    if rng.chance(30) {
        let value = match rng.below(4) {
            0 => format!("ci-{}", text(rng, 20, &['|'])),
            1 => format!("ci-{},in-{}", text(rng, 8, &['|', ',']), rng.next()),
            2 => String::new(),
            _ => text(rng, 20, &['|']),
        };
        fields.push(format!("c:{value}"));
        origin.local = Some(value);
    }
    if rng.chance(20) {
        let value = format!(
            "it-{},cn-{},pu-{}",
            rng.chance(50),
            text(rng, 6, &['|', ',']),
            rng.next()
        );
        fields.push(format!("e:{value}"));
        origin.external = Some(value);
    }
    if rng.chance(20) {
        let value =
            (*rng.pick(&["low", "orchestrator", "high", "none", "", "HIGH", "bogus"])).to_owned();
        fields.push(format!("card:{value}"));
        origin.cardinality = Some(value);
    }
    origin
}

/// A value and one of its many Go-accepted spellings.
fn gen_value(rng: &mut Rng) -> (f64, String) {
    match rng.below(12) {
        0 => (f64::NAN, (*rng.pick(&["NaN", "nan", "NAN"])).to_owned()),
        1 => {
            let negative = rng.chance(50);
            let spelling = *rng.pick(&["inf", "Inf", "infinity", "+Inf", "INFINITY"]);
            if negative {
                (
                    f64::NEG_INFINITY,
                    format!("-{}", spelling.trim_start_matches('+')),
                )
            } else {
                (f64::INFINITY, spelling.to_owned())
            }
        }
        2 => {
            let v = rng.below(1_000_000) as f64;
            (v, format!("+{v}"))
        }
        3 => {
            let v = f64::from_bits(rng.next());
            if v.is_finite() {
                (v, format!("{v:e}"))
            } else {
                (0.5, ".5".to_owned())
            }
        }
        4 => {
            let v = f64::from_bits(rng.next());
            if v.is_finite() {
                (v, format!("{v:?}"))
            } else {
                (1000.0, "1_000".to_owned())
            }
        }
        5 => (
            0.25,
            (*rng.pick(&["0x1p-2", "0X.4p0", "2.5e-1", "25e-2", "0.250"])).to_owned(),
        ),
        6 => {
            let v = (rng.below(2_000_001) as f64 - 1_000_000.0) / 1000.0;
            (v, format!("{v}"))
        }
        _ => {
            let v = rng.below(10_000) as f64;
            (v, format!("{v}"))
        }
    }
}

fn gen_metric(rng: &mut Rng) -> (String, Expected) {
    let mut name = non_empty_text(rng, 24, &[':', '|']);
    // Keep the classification: these prefixes would make it an event or a service check.
    if name.starts_with("_e{") || name.starts_with("_sc") {
        name.insert(0, 'm');
    }
    let metric_type = *rng.pick(&[
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Histogram,
        MetricType::Timer,
        MetricType::Distribution,
        MetricType::Set,
    ]);
    let mut values = Vec::new();
    let mut set_member = None;
    let raw_value = if metric_type == MetricType::Set {
        let member = non_empty_text(rng, 16, &['|']);
        set_member = Some(member.clone());
        member
    } else {
        let count = if rng.chance(70) { 1 } else { 2 + rng.below(6) };
        let mut spellings = Vec::new();
        for _ in 0..count {
            let (value, spelling) = gen_value(rng);
            values.push(value);
            spellings.push(spelling);
            if count > 1 && rng.chance(10) {
                spellings.push(String::new()); // `1::2` is skipped by the agent
            }
        }
        let mut raw = spellings.join(":");
        if count > 1 && rng.chance(10) {
            raw.push(':');
        }
        raw
    };

    let mut fields = Vec::new();
    let mut sample_rate = 1.0;
    if rng.chance(30) {
        let (rate, spelling) = gen_value(rng);
        sample_rate = rate;
        fields.push(format!("@{spelling}"));
    }
    let mut tags = String::new();
    if rng.chance(60) {
        tags = gen_tags(rng);
        fields.push(format!("#{tags}"));
    }
    let mut timestamp = None;
    if rng.chance(20) {
        let ts = if rng.chance(80) {
            1_600_000_000 + rng.below(200_000_000) as u64
        } else {
            1 + rng.next() % (i64::MAX as u64)
        };
        timestamp = Some(ts);
        fields.push(if rng.chance(10) {
            format!("T+{ts}")
        } else {
            format!("T{ts}")
        });
    }
    let origin = gen_origin(rng, &mut fields);
    if rng.chance(10) {
        fields.push((*rng.pick(&["m:test", "f:wow", "", "x", "zz:1"])).to_owned());
    }
    shuffle(rng, &mut fields);
    let mut line = format!("{name}:{raw_value}|{}", metric_type.symbol());
    for field in &fields {
        line.push('|');
        line.push_str(field);
    }
    (
        line,
        Expected::Metric {
            name,
            metric_type,
            values,
            set_member,
            sample_rate,
            tags,
            timestamp,
            origin,
        },
    )
}

fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

fn escape_sometimes(rng: &mut Rng, mut s: String) -> String {
    if rng.chance(20) {
        let at = s
            .char_indices()
            .map(|(i, _)| i)
            .nth(rng.below(s.chars().count() + 1))
            .unwrap_or(s.len());
        s.insert_str(at, "\\n");
    }
    s
}

/// An optional `prefix:value` field, 30% of the time.
fn optional(rng: &mut Rng, prefix: &str, fields: &mut Vec<String>) -> Option<String> {
    rng.chance(30).then(|| {
        let value = text(rng, 12, &['|']);
        fields.push(format!("{prefix}{value}"));
        value
    })
}

fn gen_event(rng: &mut Rng) -> (String, Expected) {
    let title = non_empty_text(rng, 20, &[]);
    let title_raw = escape_sometimes(rng, title);
    let body = text(rng, 40, &[]);
    let text_raw = escape_sometimes(rng, body);
    let mut fields = Vec::new();
    let mut timestamp = None;
    if rng.chance(30) {
        let ts = rng.next() as i64;
        timestamp = Some(ts);
        fields.push(format!("d:{ts}"));
    }
    let hostname = optional(rng, "h:", &mut fields);
    let aggregation_key = optional(rng, "k:", &mut fields);
    let source_type_name = optional(rng, "s:", &mut fields);
    let mut priority = Priority::Normal;
    if rng.chance(30) {
        priority = *rng.pick(&[Priority::Normal, Priority::Low]);
        fields.push(format!("p:{}", priority.as_str()));
    }
    let mut alert_type = AlertType::Info;
    if rng.chance(30) {
        alert_type = *rng.pick(&[
            AlertType::Error,
            AlertType::Warning,
            AlertType::Info,
            AlertType::Success,
        ]);
        fields.push(format!("t:{}", alert_type.as_str()));
    }
    let mut tags = String::new();
    if rng.chance(50) {
        tags = gen_tags(rng);
        fields.push(format!("#{tags}"));
    }
    let origin = gen_origin(rng, &mut fields);
    shuffle(rng, &mut fields);
    let mut line = format!(
        "_e{{{},{}}}:{title_raw}|{text_raw}",
        title_raw.len(),
        text_raw.len()
    );
    for field in &fields {
        line.push('|');
        line.push_str(field);
    }
    (
        line,
        Expected::Event {
            title: title_raw.replace("\\n", "\n"),
            text: text_raw.replace("\\n", "\n"),
            timestamp,
            hostname,
            aggregation_key,
            priority,
            source_type_name,
            alert_type,
            tags,
            origin,
        },
    )
}

fn gen_service_check(rng: &mut Rng) -> (String, Expected) {
    let name = non_empty_text(rng, 20, &['|']);
    let status = *rng.pick(&[
        ServiceCheckStatus::Ok,
        ServiceCheckStatus::Warning,
        ServiceCheckStatus::Critical,
        ServiceCheckStatus::Unknown,
    ]);
    let mut fields = Vec::new();
    let mut timestamp = None;
    if rng.chance(30) {
        let ts = rng.next() as i64;
        timestamp = Some(ts);
        fields.push(format!("d:{ts}"));
    }
    let mut hostname = None;
    if rng.chance(30) {
        let value = text(rng, 12, &['|']);
        fields.push(format!("h:{value}"));
        hostname = Some(value);
    }
    let mut message = None;
    if rng.chance(30) {
        let value = text(rng, 30, &['|']);
        fields.push(format!("m:{value}"));
        message = Some(value);
    }
    let mut tags = String::new();
    if rng.chance(50) {
        tags = gen_tags(rng);
        fields.push(format!("#{tags}"));
    }
    let origin = gen_origin(rng, &mut fields);
    shuffle(rng, &mut fields);
    let mut line = format!("_sc|{name}|{}", status.as_u8());
    for field in &fields {
        line.push('|');
        line.push_str(field);
    }
    (
        line,
        Expected::ServiceCheck {
            name,
            status,
            timestamp,
            hostname,
            message,
            tags,
            origin,
        },
    )
}

fn gen_message(rng: &mut Rng) -> (String, Expected) {
    match rng.below(10) {
        0 => gen_event(rng),
        1 => gen_service_check(rng),
        _ => gen_metric(rng),
    }
}

fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn check_tags(tags: &Tags<'_>, raw: &str) -> Result<(), String> {
    if tags.raw() != raw {
        return Err(format!("tags {:?} != {raw:?}", tags.raw()));
    }
    let expected: Vec<&str> = if raw.is_empty() {
        Vec::new()
    } else {
        raw.split(',').collect()
    };
    let got: Vec<&str> = tags.iter().collect();
    if got != expected || tags.len() != expected.len() {
        return Err(format!("tag list {got:?} != {expected:?}"));
    }
    Ok(())
}

fn check_origin(
    options: &ParseOptions,
    got: (Option<&str>, Option<&str>, Option<&str>),
    expected: &OriginFields,
) -> Result<(), String> {
    let expected = if options.honor_client_origin {
        (
            expected.local.as_deref(),
            expected.external.as_deref(),
            expected.cardinality.as_deref(),
        )
    } else {
        (None, None, None)
    };
    if got != expected {
        return Err(format!("origin {got:?} != {expected:?}"));
    }
    Ok(())
}

fn compare(
    message: &Message<'_>,
    expected: &Expected,
    options: &ParseOptions,
) -> Result<(), String> {
    match (message, expected) {
        (
            Message::Metric(m),
            Expected::Metric {
                name,
                metric_type,
                values,
                set_member,
                sample_rate,
                tags,
                timestamp,
                origin,
            },
        ) => {
            if m.name != name || m.metric_type != *metric_type {
                return Err(format!("metric {:?}/{:?}", m.name, m.metric_type));
            }
            let got: Vec<f64> = m.values.iter().collect();
            if got.len() != values.len() || !got.iter().zip(values).all(|(a, b)| same_float(*a, *b))
            {
                return Err(format!("values {got:?} != {values:?}"));
            }
            if m.values.set_member() != set_member.as_deref() {
                return Err(format!("set member {:?}", m.values.set_member()));
            }
            if set_member.is_none() && m.values.len() != values.len() {
                return Err("values.len()".to_owned());
            }
            if !same_float(m.sample_rate, *sample_rate) {
                return Err(format!("sample rate {} != {sample_rate}", m.sample_rate));
            }
            check_tags(&m.tags, tags)?;
            let expected_ts = if options.honor_timestamps {
                *timestamp
            } else {
                None
            };
            if m.timestamp != expected_ts {
                return Err(format!("timestamp {:?} != {expected_ts:?}", m.timestamp));
            }
            check_origin(
                options,
                (m.local_data, m.external_data, m.cardinality),
                origin,
            )
        }
        (
            Message::Event(e),
            Expected::Event {
                title,
                text,
                timestamp,
                hostname,
                aggregation_key,
                priority,
                source_type_name,
                alert_type,
                tags,
                origin,
            },
        ) => {
            let same = e.title == title.as_str()
                && e.text == text.as_str()
                && e.timestamp == *timestamp
                && e.hostname == hostname.as_deref()
                && e.aggregation_key == aggregation_key.as_deref()
                && e.priority == *priority
                && e.source_type_name == source_type_name.as_deref()
                && e.alert_type == *alert_type;
            if !same {
                return Err(format!("event {e:?}"));
            }
            check_tags(&e.tags, tags)?;
            check_origin(
                options,
                (e.local_data, e.external_data, e.cardinality),
                origin,
            )
        }
        (
            Message::ServiceCheck(c),
            Expected::ServiceCheck {
                name,
                status,
                timestamp,
                hostname,
                message,
                tags,
                origin,
            },
        ) => {
            let same = c.name == name
                && c.status == *status
                && c.timestamp == *timestamp
                && c.hostname == hostname.as_deref()
                && c.message == message.as_deref();
            if !same {
                return Err(format!("service check {c:?}"));
            }
            check_tags(&c.tags, tags)?;
            check_origin(
                options,
                (c.local_data, c.external_data, c.cardinality),
                origin,
            )
        }
        _ => Err(format!("wrong kind {:?}", message.kind())),
    }
}

const OPTIONS: [ParseOptions; 4] = [
    ParseOptions {
        honor_timestamps: true,
        honor_client_origin: false,
    },
    ParseOptions {
        honor_timestamps: false,
        honor_client_origin: false,
    },
    ParseOptions {
        honor_timestamps: true,
        honor_client_origin: true,
    },
    ParseOptions {
        honor_timestamps: false,
        honor_client_origin: true,
    },
];

/// Tokens the mutator splices in: separators, field prefixes, escapes, bad UTF-8.
const TOKENS: &[&[u8]] = &[
    b"|",
    b":",
    b"#",
    b"@",
    b",",
    b"\r",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\x9a",
    b"\xed\xa0\x80",
    b"\\n",
    b"_e{",
    b"_sc|",
    b"T",
    b"c:",
    b"e:",
    b"card:",
    b"d:",
    b"h:",
    b"m:",
    b"p:low",
    b"t:error",
    b"}",
    b"{",
    b"-",
    b"+",
    b".",
    b"e",
    b"_",
];

/// Replacements for digit runs: boundaries, overflows, odd spellings.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "-0",
    "99999999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "1e400",
    "1e-400",
    "NaN",
    "+Inf",
    "0x1p-1074",
    "0x1.fffffffffffffp1023",
    "1_0",
    "_1",
    "1e",
    ".",
    "",
    "4294967296",
    "00000000000000000000000001",
];

fn mutate(rng: &mut Rng, packet: &mut Vec<u8>) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = packet.len();
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                packet[i] ^= 1 << rng.below(8);
            }
            1 => packet.truncate(rng.below(len + 1)),
            2 => {
                let at = rng.below(len + 1);
                let token = *rng.pick(TOKENS);
                packet.splice(at..at, token.iter().copied());
            }
            3 => {
                // Duplicate a `|`-delimited field in place.
                let pipes: Vec<usize> = packet
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'|')
                    .map(|(i, _)| i)
                    .collect();
                if !pipes.is_empty() {
                    let start = *rng.pick(&pipes);
                    let end = packet[start + 1..]
                        .iter()
                        .position(|&b| b == b'|' || b == b'\n')
                        .map_or(packet.len(), |p| start + 1 + p);
                    let field = packet[start..end].to_vec();
                    packet.splice(end..end, field);
                }
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(8)).min(len);
                packet.drain(a..b);
            }
            5 => {
                // Replace a run of digits by a boundary value.
                let digit = (0..8)
                    .map(|_| rng.below(len.max(1)))
                    .find(|&i| packet.get(i).is_some_and(u8::is_ascii_digit));
                if let Some(start) = digit {
                    let mut end = start;
                    while end < packet.len() && packet[end].is_ascii_digit() {
                        end += 1;
                    }
                    let mut begin = start;
                    while begin > 0 && packet[begin - 1].is_ascii_digit() {
                        begin -= 1;
                    }
                    let number = rng.pick(NUMBERS).as_bytes();
                    packet.splice(begin..end, number.iter().copied());
                }
            }
            6 => {
                // Tamper with event lengths: `_e{a,b}` → other numbers.
                if let Some(at) = memchr::memmem::find(packet, b"_e{") {
                    let close = packet[at..].iter().position(|&b| b == b'}').map(|p| at + p);
                    if let Some(close) = close {
                        let a: i64 = *rng.pick(&[0, 1, -1, 2, 7, 100, 1 << 40, i64::MAX]);
                        let b: i64 = *rng.pick(&[0, 1, -1, 3, 64, 1 << 20, i64::MAX]);
                        let header = format!("_e{{{a},{b}}}");
                        packet.splice(at..=close, header.bytes());
                    }
                }
            }
            7 if len > 1 => {
                let a = rng.below(len);
                let b = rng.below(len);
                packet.swap(a, b);
            }
            8 if len < 4096 => {
                let copy = packet.clone();
                packet.extend_from_slice(b"\n");
                packet.extend_from_slice(&copy);
            }
            9 => {
                let at = rng.below(len + 1);
                let garbage: Vec<u8> = (0..1 + rng.below(6)).map(|_| rng.next() as u8).collect();
                packet.splice(at..at, garbage);
            }
            _ => {
                // Change the metric type symbol or a status digit.
                if let Some(at) = memchr::memchr(b'|', packet) {
                    let replacement = *rng.pick(&["|c", "|ms", "|s", "|x", "|", "|4", "|0|", "||"]);
                    packet.splice(at..(at + 2).min(packet.len()), replacement.bytes());
                }
            }
        }
    }
}

#[derive(Default)]
struct Stats {
    packets: u64,
    lines: u64,
    parses: u64,
    accepted: u64,
    rejected: BTreeMap<&'static str, u64>,
    mapped: u64,
}

fn fail(seed: u64, iteration: u64, input: &[u8], problem: &str) -> ! {
    panic!(
        "fuzz failure (DOGD_FUZZ_SEED={seed}, iteration {iteration}): {problem}\ninput: {:?}",
        String::from_utf8_lossy(input)
    );
}

/// Invariants that hold for anything accepted from a line cut by `split_messages`.
fn check_invariants(
    message: &Message<'_>,
    line: &[u8],
    mapper: &Mapper,
    stats: &mut Stats,
) -> Result<(), String> {
    let no_newline = |what: &str, s: &str| {
        if s.contains('\n') {
            Err(format!("{what} {s:?} holds a newline"))
        } else {
            Ok(())
        }
    };
    let tag_checks = |tags: &Tags<'_>, card: Option<&str>| -> Result<(), String> {
        for tag in tags.iter() {
            if tag.contains(['\n', '|', ',']) {
                return Err(format!("tag {tag:?}"));
            }
        }
        let mut out = Vec::new();
        let special = extract_special_tags(tags, card, &mut out);
        if out.len() > tags.len() {
            return Err(format!("special tags {special:?} / {out:?}"));
        }
        for tag in &out {
            let special_prefix = [
                "host:",
                "dd.internal.entity_id:",
                "dd.internal.jmx_check_name:",
            ]
            .iter()
            .any(|p| tag.starts_with(p));
            if special_prefix
                || (tag.starts_with(CARDINALITY_TAG_PREFIX) && special.cardinality.is_none())
            {
                return Err(format!("special tag {tag:?} left in {out:?}"));
            }
        }
        Ok(())
    };
    match message {
        Message::Metric(m) => {
            no_newline("name", m.name)?;
            if m.name.is_empty() || m.name.contains([':', '|']) {
                return Err(format!("name {:?}", m.name));
            }
            match m.values {
                MetricValues::Set(member) => {
                    no_newline("set member", member)?;
                    if member.is_empty() || member.contains('|') {
                        return Err(format!("set member {member:?}"));
                    }
                }
                values => {
                    let count = values.iter().count();
                    if count == 0 || count != values.len() {
                        return Err(format!("{count} values, len {}", values.len()));
                    }
                }
            }
            if m.timestamp == Some(0) {
                return Err("zero timestamp".to_owned());
            }
            tag_checks(&m.tags, m.cardinality)?;
            if let Some(mapped) = mapper.map(m.name) {
                stats.mapped += 1;
                if mapped.name.is_empty() || mapped.tags.iter().any(|t| !t.contains(':')) {
                    return Err(format!("mapped {mapped:?}"));
                }
            }
        }
        Message::Event(e) => {
            if e.title.is_empty() {
                return Err("empty title".to_owned());
            }
            // Newlines in title and text only come from `\n` escapes of the line.
            let escapes = memchr::memmem::find_iter(line, b"\\n").count();
            let newlines = e.title.matches('\n').count() + e.text.matches('\n').count();
            if newlines > escapes {
                return Err(format!("{newlines} newlines from {escapes} escapes"));
            }
            for (what, field) in [
                ("hostname", e.hostname),
                ("aggregation key", e.aggregation_key),
                ("source type", e.source_type_name),
            ] {
                no_newline(what, field.unwrap_or(""))?;
            }
            tag_checks(&e.tags, e.cardinality)?;
        }
        Message::ServiceCheck(c) => {
            no_newline("name", c.name)?;
            no_newline("message", c.message.unwrap_or(""))?;
            if c.name.is_empty() || c.name.contains('|') {
                return Err(format!("name {:?}", c.name));
            }
            tag_checks(&c.tags, c.cardinality)?;
        }
    }
    Ok(())
}

fn parse_packet(
    packet: &[u8],
    eol_required: bool,
    seed: u64,
    iteration: u64,
    mapper: &Mapper,
    stats: &mut Stats,
) {
    for line in split_messages(packet, eol_required) {
        let line = match line {
            Line::Message(line) => {
                if line.is_empty() || line.contains(&b'\n') {
                    fail(seed, iteration, packet, "bad split");
                }
                line
            }
            Line::Unterminated(line) => {
                if !eol_required || line.contains(&b'\n') {
                    fail(seed, iteration, packet, "bad unterminated fragment");
                }
                continue;
            }
        };
        stats.lines += 1;
        for options in [&OPTIONS[0], &OPTIONS[3]] {
            stats.parses += 1;
            match parse_message(line, options) {
                Ok(message) => {
                    stats.accepted += 1;
                    if let Err(problem) = check_invariants(&message, line, mapper, stats) {
                        fail(seed, iteration, line, &problem);
                    }
                    // Compared through `Debug`, where NaN equals NaN; sampled, as `Debug`
                    // formatting costs more than parsing.
                    if !stats.accepted.is_multiple_of(8) {
                        continue;
                    }
                    let again = parse_message(line, options).map(|m| format!("{m:?}"));
                    if again != Ok(format!("{message:?}")) {
                        fail(seed, iteration, line, "parsing is not deterministic");
                    }
                }
                Err(error) => {
                    *stats.rejected.entry(error.reason()).or_default() += 1;
                    if error.message_type() != dogd_dogstatsd::parse::MessageKind::of(line).as_str()
                    {
                        fail(
                            seed,
                            iteration,
                            line,
                            "error kind differs from the line kind",
                        );
                    }
                }
            }
        }
    }
}

fn fuzz_mapper() -> Mapper {
    let profiles = serde_json::json!([
        {"name": "app", "prefix": "a", "mappings": [
            {"match": "a*.*.x", "name": "app.$1", "tags": {"second": "$2", "whole": "$0$$"}},
            {"match": "a(.*)é(?P<rest>.*)", "match_type": "regex", "name": "accent.${rest}", "tags": {"head": "${1}"}},
        ]},
        {"name": "all", "prefix": "*", "mappings": [
            {"match": "*", "name": "one.$1"},
            {"match": "*.*", "name": "two", "tags": {"k": "$1", "v": "$2"}},
        ]},
    ]);
    match Mapper::from_profiles(&profiles, 512) {
        Ok(mapper) => mapper,
        Err(error) => panic!("fuzz mapper refused: {error}"),
    }
}

#[test]
fn generated_and_mutated_packets_never_panic_and_round_trip() {
    let iterations: u64 = std::env::var("DOGD_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("DOGD_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_D06D);
    let mut rng = Rng::new(seed);
    let mapper = fuzz_mapper();
    let mut stats = Stats::default();
    let started = Instant::now();

    for iteration in 0..iterations {
        // 1. A packet of valid messages, checked against what was generated.
        let count = 1 + rng.below(5);
        let mut packet = Vec::new();
        let mut expected = Vec::with_capacity(count);
        for i in 0..count {
            let (line, message) = gen_message(&mut rng);
            if i > 0 {
                packet.extend_from_slice(if rng.chance(20) { b"\r\n" } else { b"\n" });
            }
            packet.extend_from_slice(line.as_bytes());
            expected.push(message);
        }
        let terminated = rng.chance(50);
        if terminated {
            packet.push(b'\n');
        }
        stats.packets += 1;
        let lines: Vec<Line<'_>> = split_messages(&packet, false).collect();
        if lines.len() != expected.len() {
            fail(
                seed,
                iteration,
                &packet,
                &format!("{} lines for {} messages", lines.len(), expected.len()),
            );
        }
        for options in &OPTIONS {
            for (line, want) in lines.iter().zip(&expected) {
                let Line::Message(line) = *line else {
                    fail(
                        seed,
                        iteration,
                        &packet,
                        "unterminated line without eol_required",
                    );
                };
                stats.parses += 1;
                match parse_message(line, options) {
                    Ok(message) => {
                        stats.accepted += 1;
                        if let Err(problem) = compare(&message, want, options) {
                            fail(
                                seed,
                                iteration,
                                line,
                                &format!("round trip ({options:?}): {problem}"),
                            );
                        }
                    }
                    Err(error) => fail(
                        seed,
                        iteration,
                        line,
                        &format!("valid message rejected: {}", error.reason()),
                    ),
                }
            }
        }
        let unterminated = split_messages(&packet, true)
            .filter(|line| matches!(line, Line::Unterminated(_)))
            .count();
        if unterminated != usize::from(!terminated) {
            fail(seed, iteration, &packet, "eol_required split");
        }

        // 2. Mutations: no panic, invariants hold for whatever is accepted.
        let mut mutated = packet;
        mutate(&mut rng, &mut mutated);
        stats.packets += 1;
        parse_packet(
            &mutated,
            rng.chance(50),
            seed,
            iteration,
            &mapper,
            &mut stats,
        );
        // Unsplit input (newlines inside) must not panic either.
        for options in [&OPTIONS[0], &OPTIONS[3]] {
            stats.parses += 1;
            let _ = parse_message(&mutated, options);
        }
    }

    let elapsed = started.elapsed();
    println!(
        "fuzz: seed {seed}, {iterations} iterations, {} packets, {} lines, {} parses ({} accepted) in {:.2?} ({:.0} parses/s); {} mapped",
        stats.packets,
        stats.lines,
        stats.parses,
        stats.accepted,
        elapsed,
        stats.parses as f64 / elapsed.as_secs_f64(),
        stats.mapped,
    );
    println!("fuzz: rejections by reason: {:?}", stats.rejected);
    // The mutator must reach the rejection paths, or it is not fuzzing much.
    if iterations >= 10_000 {
        for reason in [
            "invalid_utf8",
            "invalid_value",
            "invalid_metric_type",
            "event_too_short",
            "invalid_service_check_status",
        ] {
            assert!(
                stats.rejected.contains_key(reason),
                "never rejected with {reason}"
            );
        }
    }
}
