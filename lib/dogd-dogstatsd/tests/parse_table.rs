//! Table tests of the DogStatsD parser: one row per accepted form (with what it must parse
//! to) and one row per rejected form (with its reason label), after the agent's own tests
//! (`comp/dogstatsd/server/impl/parse_*_test.go`) and its source.

use std::borrow::Cow;

use dogd_dogstatsd::parse::{
    AlertType, Cardinality, Line, Message, MessageKind, MetricType, MetricValues, ParseError,
    ParseOptions, Priority, ServiceCheckStatus, Tags, parse_message, split_messages,
};

const DEFAULT: ParseOptions = ParseOptions {
    honor_timestamps: true,
    honor_client_origin: false,
};
const NO_TIMESTAMPS: ParseOptions = ParseOptions {
    honor_timestamps: false,
    honor_client_origin: false,
};
const ORIGIN: ParseOptions = ParseOptions {
    honor_timestamps: true,
    honor_client_origin: true,
};

/// A float compared bit for bit, so that NaN equals NaN and -0 differs from 0.
#[derive(Debug, Clone, Copy)]
struct F(f64);

impl PartialEq for F {
    fn eq(&self, other: &Self) -> bool {
        (self.0.is_nan() && other.0.is_nan()) || self.0.to_bits() == other.0.to_bits()
    }
}

/// An owned, comparable view of a parsed message.
#[derive(Debug, Clone, PartialEq)]
enum Parsed {
    Metric {
        name: String,
        metric_type: MetricType,
        values: Vec<F>,
        set: Option<String>,
        sample_rate: F,
        tags: Vec<String>,
        timestamp: Option<u64>,
        origin: Origin,
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
        tags: Vec<String>,
        origin: Origin,
    },
    ServiceCheck {
        name: String,
        status: ServiceCheckStatus,
        timestamp: Option<i64>,
        hostname: Option<String>,
        message: Option<String>,
        tags: Vec<String>,
        origin: Origin,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Origin {
    local: Option<String>,
    external: Option<String>,
    cardinality: Option<String>,
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

fn tags_of(tags: &Tags<'_>) -> Vec<String> {
    assert_eq!(
        tags.len(),
        tags.iter().count(),
        "Tags::len matches iteration"
    );
    assert_eq!(tags.is_empty(), tags.iter().next().is_none());
    tags.iter().map(str::to_owned).collect()
}

impl From<&Message<'_>> for Parsed {
    fn from(message: &Message<'_>) -> Self {
        match message {
            Message::Metric(m) => {
                let values: Vec<F> = m.values.iter().map(F).collect();
                match m.values {
                    MetricValues::Set(_) => assert!(values.is_empty()),
                    _ => assert_eq!(values.len(), m.values.len()),
                }
                Parsed::Metric {
                    name: m.name.to_owned(),
                    metric_type: m.metric_type,
                    values,
                    set: owned(m.values.set_member()),
                    sample_rate: F(m.sample_rate),
                    tags: tags_of(&m.tags),
                    timestamp: m.timestamp,
                    origin: Origin {
                        local: owned(m.local_data),
                        external: owned(m.external_data),
                        cardinality: owned(m.cardinality),
                    },
                }
            }
            Message::Event(e) => Parsed::Event {
                title: e.title.to_string(),
                text: e.text.to_string(),
                timestamp: e.timestamp,
                hostname: owned(e.hostname),
                aggregation_key: owned(e.aggregation_key),
                priority: e.priority,
                source_type_name: owned(e.source_type_name),
                alert_type: e.alert_type,
                tags: tags_of(&e.tags),
                origin: Origin {
                    local: owned(e.local_data),
                    external: owned(e.external_data),
                    cardinality: owned(e.cardinality),
                },
            },
            Message::ServiceCheck(c) => Parsed::ServiceCheck {
                name: c.name.to_owned(),
                status: c.status,
                timestamp: c.timestamp,
                hostname: owned(c.hostname),
                message: owned(c.message),
                tags: tags_of(&c.tags),
                origin: Origin {
                    local: owned(c.local_data),
                    external: owned(c.external_data),
                    cardinality: owned(c.cardinality),
                },
            },
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Builders for expected messages: defaults plus the fields a row cares about.
fn metric(name: &str, metric_type: MetricType, values: &[f64]) -> Parsed {
    Parsed::Metric {
        name: name.to_owned(),
        metric_type,
        values: values.iter().copied().map(F).collect(),
        set: None,
        sample_rate: F(1.0),
        tags: Vec::new(),
        timestamp: None,
        origin: Origin::default(),
    }
}

fn set(name: &str, member: &str) -> Parsed {
    match metric(name, MetricType::Set, &[]) {
        Parsed::Metric {
            name,
            metric_type,
            values,
            sample_rate,
            tags,
            timestamp,
            origin,
            ..
        } => Parsed::Metric {
            name,
            metric_type,
            values,
            set: Some(member.to_owned()),
            sample_rate,
            tags,
            timestamp,
            origin,
        },
        other => other,
    }
}

fn event(title: &str, text: &str) -> Parsed {
    Parsed::Event {
        title: title.to_owned(),
        text: text.to_owned(),
        timestamp: None,
        hostname: None,
        aggregation_key: None,
        priority: Priority::Normal,
        source_type_name: None,
        alert_type: AlertType::Info,
        tags: Vec::new(),
        origin: Origin::default(),
    }
}

fn check(name: &str, status: ServiceCheckStatus) -> Parsed {
    Parsed::ServiceCheck {
        name: name.to_owned(),
        status,
        timestamp: None,
        hostname: None,
        message: None,
        tags: Vec::new(),
        origin: Origin::default(),
    }
}

impl Parsed {
    fn rate(mut self, value: f64) -> Self {
        if let Parsed::Metric { sample_rate, .. } = &mut self {
            *sample_rate = F(value);
        }
        self
    }

    fn tags(mut self, list: &[&str]) -> Self {
        match &mut self {
            Parsed::Metric { tags, .. }
            | Parsed::Event { tags, .. }
            | Parsed::ServiceCheck { tags, .. } => *tags = strings(list),
        }
        self
    }

    fn ts(mut self, value: i64) -> Self {
        match &mut self {
            Parsed::Metric { timestamp, .. } => *timestamp = u64::try_from(value).ok(),
            Parsed::Event { timestamp, .. } | Parsed::ServiceCheck { timestamp, .. } => {
                *timestamp = Some(value);
            }
        }
        self
    }

    fn host(mut self, value: &str) -> Self {
        match &mut self {
            Parsed::Event { hostname, .. } | Parsed::ServiceCheck { hostname, .. } => {
                *hostname = Some(value.to_owned());
            }
            Parsed::Metric { .. } => {}
        }
        self
    }

    fn origin(mut self, local: Option<&str>, external: Option<&str>, card: Option<&str>) -> Self {
        let value = Origin {
            local: owned(local),
            external: owned(external),
            cardinality: owned(card),
        };
        match &mut self {
            Parsed::Metric { origin, .. }
            | Parsed::Event { origin, .. }
            | Parsed::ServiceCheck { origin, .. } => *origin = value,
        }
        self
    }

    fn event_fields(
        mut self,
        key: Option<&str>,
        prio: Priority,
        source: Option<&str>,
        alert: AlertType,
    ) -> Self {
        if let Parsed::Event {
            aggregation_key,
            priority,
            source_type_name,
            alert_type,
            ..
        } = &mut self
        {
            *aggregation_key = owned(key);
            *priority = prio;
            *source_type_name = owned(source);
            *alert_type = alert;
        }
        self
    }

    fn alert(self, alert: AlertType) -> Self {
        self.event_fields(None, Priority::Normal, None, alert)
    }

    fn message(mut self, value: &str) -> Self {
        if let Parsed::ServiceCheck { message, .. } = &mut self {
            *message = Some(value.to_owned());
        }
        self
    }
}

use MetricType::{Counter, Distribution, Gauge, Histogram, Timer};
use ServiceCheckStatus::{Critical, Unknown, Warning};

fn accepted_rows() -> Vec<(&'static str, &'static [u8], ParseOptions, Parsed)> {
    vec![
        // Every metric type.
        ("counter", b"page.views:1|c", DEFAULT, metric("page.views", Counter, &[1.0])),
        ("gauge", b"daemon:666|g", DEFAULT, metric("daemon", Gauge, &[666.0])),
        ("histogram", b"daemon:21|h", DEFAULT, metric("daemon", Histogram, &[21.0])),
        ("timer", b"daemon:21|ms", DEFAULT, metric("daemon", Timer, &[21.0])),
        ("distribution", b"daemon:3.5|d", DEFAULT, metric("daemon", Distribution, &[3.5])),
        ("set", b"users.online:alice|s", DEFAULT, set("users.online", "alice")),
        ("set member keeps its colons", b"daemon:abc:def|s", DEFAULT, set("daemon", "abc:def")),
        ("set member is not a float", b"daemon:1e999|s", DEFAULT, set("daemon", "1e999")),
        (
            "set member in unicode",
            "daemon:♬†øU†øU¥ºuT0♪|s".as_bytes(),
            DEFAULT,
            set("daemon", "♬†øU†øU¥ºuT0♪"),
        ),
        // Multi-value packing (protocol v1.1).
        ("two packed values", b"daemon:666:777|g", DEFAULT, metric("daemon", Gauge, &[666.0, 777.0])),
        (
            "packed values skip empty items",
            b"daemon:1::2:|h",
            DEFAULT,
            metric("daemon", Histogram, &[1.0, 2.0]),
        ),
        ("packed values skip a leading empty item", b"daemon::1|c", DEFAULT, metric("daemon", Counter, &[1.0])),
        (
            "packed values of every type but sets",
            b"api.latency:12.5:13.1:9.8|ms|@0.5|#env:prod,service:web",
            DEFAULT,
            metric("api.latency", Timer, &[12.5, 13.1, 9.8])
                .rate(0.5)
                .tags(&["env:prod", "service:web"]),
        ),
        // Go ParseFloat syntax.
        ("exponent", b"a:1e3|g", DEFAULT, metric("a", Gauge, &[1000.0])),
        ("explicit plus sign", b"a:+5|g", DEFAULT, metric("a", Gauge, &[5.0])),
        ("leading dot", b"a:.5|g", DEFAULT, metric("a", Gauge, &[0.5])),
        ("trailing dot", b"a:5.|g", DEFAULT, metric("a", Gauge, &[5.0])),
        ("negative zero", b"a:-0|g", DEFAULT, metric("a", Gauge, &[-0.0])),
        ("digit separators", b"a:1_000|c", DEFAULT, metric("a", Counter, &[1000.0])),
        ("hexadecimal float", b"a:0x1p-2|g", DEFAULT, metric("a", Gauge, &[0.25])),
        ("infinity", b"a:Inf|g", DEFAULT, metric("a", Gauge, &[f64::INFINITY])),
        ("negative infinity", b"a:-infinity|g", DEFAULT, metric("a", Gauge, &[f64::NEG_INFINITY])),
        ("not a number", b"a:NaN|g", DEFAULT, metric("a", Gauge, &[f64::NAN])),
        ("underflow to zero", b"a:1e-400|g", DEFAULT, metric("a", Gauge, &[0.0])),
        ("long mantissa", b"a:3.14159265358979323846264338327950288|g", DEFAULT, metric("a", Gauge, &[std::f64::consts::PI])),
        // Sample rate.
        ("sample rate", b"daemon:666|g|@0.21", DEFAULT, metric("daemon", Gauge, &[666.0]).rate(0.21)),
        ("sample rate of zero is not range-checked", b"a:1|c|@0", DEFAULT, metric("a", Counter, &[1.0]).rate(0.0)),
        ("negative sample rate is not range-checked", b"a:1|c|@-1", DEFAULT, metric("a", Counter, &[1.0]).rate(-1.0)),
        ("sample rate above one", b"a:1|c|@1e3", DEFAULT, metric("a", Counter, &[1.0]).rate(1000.0)),
        ("sample rate NaN", b"a:1|c|@NaN", DEFAULT, metric("a", Counter, &[1.0]).rate(f64::NAN)),
        ("the last sample rate wins", b"a:1|c|@0.5|@0.25", DEFAULT, metric("a", Counter, &[1.0]).rate(0.25)),
        // Tags.
        (
            "tags",
            b"custom_counter:1|c|#protocol:http,bench",
            DEFAULT,
            metric("custom_counter", Counter, &[1.0]).tags(&["protocol:http", "bench"]),
        ),
        ("a lone pound means no tags", b"daemon:666|g|#", DEFAULT, metric("daemon", Gauge, &[666.0])),
        ("empty tags are kept", b"a:1|c|#a,,b,", DEFAULT, metric("a", Counter, &[1.0]).tags(&["a", "", "b", ""])),
        ("the last tags field wins", b"a:1|c|#x,y|#z", DEFAULT, metric("a", Counter, &[1.0]).tags(&["z"])),
        (
            "unicode name and tags",
            "♬†øU†øU¥ºuT0♪:666|g|#intitulé:T0µ".as_bytes(),
            DEFAULT,
            metric("♬†øU†øU¥ºuT0♪", Gauge, &[666.0]).tags(&["intitulé:T0µ"]),
        ),
        (
            "tags may hold colons, pounds and at signs",
            b"a:1|c|#url:http://x:80/#top,@me",
            DEFAULT,
            metric("a", Counter, &[1.0]).tags(&["url:http://x:80/#top", "@me"]),
        ),
        (
            "special tags are left to enrichment",
            b"a:1|c|#host:h,dd.internal.entity_id:u,dd.internal.card:high",
            DEFAULT,
            metric("a", Counter, &[1.0]).tags(&["host:h", "dd.internal.entity_id:u", "dd.internal.card:high"]),
        ),
        // Timestamps.
        (
            "timestamp honoured",
            b"metric:1234|g|#onetag|T1657100430",
            DEFAULT,
            metric("metric", Gauge, &[1234.0]).tags(&["onetag"]).ts(1657100430),
        ),
        (
            "timestamp ignored when the no-aggregation pipeline is off",
            b"metric:1234|g|#onetag|T1657100430",
            NO_TIMESTAMPS,
            metric("metric", Gauge, &[1234.0]).tags(&["onetag"]),
        ),
        ("malformed timestamp ignored when not honoured", b"a:1|g|TABCD", NO_TIMESTAMPS, metric("a", Gauge, &[1.0])),
        ("negative timestamp ignored when not honoured", b"a:1|g|T-5", NO_TIMESTAMPS, metric("a", Gauge, &[1.0])),
        ("timestamp with a plus sign", b"a:1|g|T+5", DEFAULT, metric("a", Gauge, &[1.0]).ts(5)),
        ("timestamp of one", b"a:1|g|T1", DEFAULT, metric("a", Gauge, &[1.0]).ts(1)),
        ("largest timestamp", b"a:1|g|T9223372036854775807", DEFAULT, metric("a", Gauge, &[1.0]).ts(i64::MAX)),
        ("the last timestamp wins", b"a:1|g|T1|T2", DEFAULT, metric("a", Gauge, &[1.0]).ts(2)),
        (
            "fields in any order",
            b"metric:1234|g|T1657100540|@0.25|#atag",
            DEFAULT,
            metric("metric", Gauge, &[1234.0]).rate(0.25).tags(&["atag"]).ts(1657100540),
        ),
        (
            "weird tags field then timestamp",
            b"metric:1234|g|#|T1657100430",
            DEFAULT,
            metric("metric", Gauge, &[1234.0]).ts(1657100430),
        ),
        // Client origin fields.
        (
            "origin fields honoured",
            b"request.size:512|d|#route:/x|c:ci-3a6f,in-12345|e:it-false,cn-app,pu-42|card:high",
            ORIGIN,
            metric("request.size", Distribution, &[512.0])
                .tags(&["route:/x"])
                .origin(Some("ci-3a6f,in-12345"), Some("it-false,cn-app,pu-42"), Some("high")),
        ),
        (
            "origin fields ignored by default",
            b"request.size:512|d|#route:/x|c:ci-3a6f,in-12345|e:it-false,cn-app,pu-42|card:high",
            DEFAULT,
            metric("request.size", Distribution, &[512.0]).tags(&["route:/x"]),
        ),
        (
            "legacy container id",
            b"metric:1234|g|c:1234567890abcdef",
            ORIGIN,
            metric("metric", Gauge, &[1234.0]).origin(Some("1234567890abcdef"), None, None),
        ),
        (
            "empty and unknown origin values are kept raw",
            b"a:1|c|c:|e:|card:bogus",
            ORIGIN,
            metric("a", Counter, &[1.0]).origin(Some(""), Some(""), Some("bogus")),
        ),
        (
            "the last origin fields win",
            b"a:1|c|c:one|c:two|card:low|card:",
            ORIGIN,
            metric("a", Counter, &[1.0]).origin(Some("two"), None, Some("")),
        ),
        // Unknown and odd fields.
        ("unknown fields are ignored", b"daemon:666|g|m:test|f:cool|f2:cooler", DEFAULT, metric("daemon", Gauge, &[666.0])),
        ("trailing pipe", b"a:1|c|", DEFAULT, metric("a", Counter, &[1.0])),
        ("empty fields", b"a:1|c|||#t||", DEFAULT, metric("a", Counter, &[1.0]).tags(&["t"])),
        (
            "many pipes",
            b"example.metric:2.39283|d|@1.000000|#environment:dev|c:2a25f7fc8fbf|f:wow",
            DEFAULT,
            metric("example.metric", Distribution, &[2.39283]).tags(&["environment:dev"]),
        ),
        ("the name may hold anything but colon and pipe", b"my metric#@,T:1|c", DEFAULT, metric("my metric#@,T", Counter, &[1.0])),
        ("a name starting like an event without its brace", b"_e:1|c", DEFAULT, metric("_e", Counter, &[1.0])),
        ("an inner carriage return is data", b"a\rb:1|c", DEFAULT, metric("a\rb", Counter, &[1.0])),
        // Events.
        ("minimal event", b"_e{10,9}:test title|test text", DEFAULT, event("test title", "test text")),
        (
            "event with every field",
            b"_e{10,9}:test title|test text|d:12345|h:some.host|k:aggKey|p:low|s:source test|t:warning|#tag1,tag2:test",
            DEFAULT,
            event("test title", "test text")
                .ts(12345)
                .host("some.host")
                .event_fields(Some("aggKey"), Priority::Low, Some("source test"), AlertType::Warning)
                .tags(&["tag1", "tag2:test"]),
        ),
        ("event alert type error", b"_e{1,1}:a|b|t:error", DEFAULT, event("a", "b").alert(AlertType::Error)),
        ("event alert type warning", b"_e{1,1}:a|b|t:warning", DEFAULT, event("a", "b").alert(AlertType::Warning)),
        ("event alert type info", b"_e{1,1}:a|b|t:info", DEFAULT, event("a", "b").alert(AlertType::Info)),
        ("event alert type success", b"_e{1,1}:a|b|t:success", DEFAULT, event("a", "b").alert(AlertType::Success)),
        (
            "event priority normal",
            b"_e{1,1}:a|b|p:low|p:normal",
            DEFAULT,
            event("a", "b").event_fields(None, Priority::Normal, None, AlertType::Info),
        ),
        (
            "event escapes become newlines",
            b"_e{10,24}:test title|test\\line1\\nline2\\nline3",
            DEFAULT,
            event("test title", "test\\line1\nline2\nline3"),
        ),
        ("event title escape", b"_e{7,1}:a\\nb\\nc|d", DEFAULT, event("a\nb\nc", "d")),
        (
            "event title holding a pipe",
            b"_e{10,24}:test|title|test\\line1\\nline2\\nline3",
            DEFAULT,
            event("test|title", "test\\line1\nline2\nline3"),
        ),
        ("event text holding pipes and fields", b"_e{1,9}:a|b|t:error|d:5", DEFAULT, event("a", "b|t:error").ts(5)),
        ("event lengths count bytes", "_e{6,5}:héllo|wörl".as_bytes(), DEFAULT, event("héllo", "wörl")),
        ("event lengths count four-byte characters", "_e{4,8}:🚀|ok🚀ok".as_bytes(), DEFAULT, event("🚀", "ok🚀ok")),
        (
            "event title cut inside a character",
            "_e{1,1}:éa|b".as_bytes(),
            DEFAULT,
            event("\u{fffd}", "a"),
        ),
        ("event with empty text", b"_e{10,0}:test title|", DEFAULT, event("test title", "")),
        (
            "event with empty text and alert type",
            b"_e{10,0}:test title||t:warning",
            DEFAULT,
            event("test title", "").alert(AlertType::Warning),
        ),
        ("event with a bad timestamp kept", b"_e{5,4}:title|text|d:abc", DEFAULT, event("title", "text")),
        ("event with a bad priority kept", b"_e{5,4}:title|text|p:urgent", DEFAULT, event("title", "text")),
        ("event with a bad alert type kept", b"_e{5,4}:title|text|t:test", DEFAULT, event("title", "text")),
        ("event with unknown metadata", b"_e{5,4}:title|text|x:1234", DEFAULT, event("title", "text")),
        (
            "event keeps the previous value on a bad field",
            b"_e{5,4}:title|text|p:low|p:urgent|d:7|d:x",
            DEFAULT,
            event("title", "text")
                .ts(7)
                .event_fields(None, Priority::Low, None, AlertType::Info),
        ),
        ("event negative timestamp", b"_e{1,1}:a|b|d:-5", DEFAULT, event("a", "b").ts(-5)),
        ("event last hostname wins", b"_e{1,1}:a|b|h:x|h:y", DEFAULT, event("a", "b").host("y")),
        ("event empty hostname", b"_e{1,1}:a|b|h:", DEFAULT, event("a", "b").host("")),
        (
            "event origin fields honoured",
            b"_e{1,1}:a|b|c:ci-1|e:pu-2|card:orchestrator",
            ORIGIN,
            event("a", "b").origin(Some("ci-1"), Some("pu-2"), Some("orchestrator")),
        ),
        ("event origin fields ignored by default", b"_e{1,1}:a|b|c:ci-1|e:pu-2|card:low", DEFAULT, event("a", "b")),
        ("event lengths with signs", b"_e{+5,+4}:title|text", DEFAULT, event("title", "text")),
        ("event header end is not checked", b"_e{5,4]:title|text", DEFAULT, event("title", "text")),
        ("event title and text separator is not checked", b"_e{5,4}:titleXtext", DEFAULT, event("title", "text")),
        ("event fields start right after the text", b"_e{5,4}:title|textd:7|h:x", DEFAULT, event("title", "text").ts(7).host("x")),
        (
            "event lengths given in characters cut at byte offsets",
            "_e{5,4}:héllo|text".as_bytes(),
            DEFAULT,
            event("héll", "|tex"),
        ),
        ("event title may hold a colon", b"_e{3,1}:a:b|c", DEFAULT, event("a:b", "c")),
        // Service checks.
        ("minimal service check", b"_sc|agent.up|0", DEFAULT, check("agent.up", ServiceCheckStatus::Ok)),
        ("service check warning", b"_sc|agent.up|1", DEFAULT, check("agent.up", Warning)),
        ("service check critical", b"_sc|agent.up|2", DEFAULT, check("agent.up", Critical)),
        ("service check unknown", b"_sc|agent.up|3", DEFAULT, check("agent.up", Unknown)),
        (
            "service check with every field",
            b"_sc|agent.up|2|d:21|h:localhost|#tag1,tag2:x|m:this is: #fine",
            DEFAULT,
            check("agent.up", Critical)
                .ts(21)
                .host("localhost")
                .tags(&["tag1", "tag2:x"])
                .message("this is: #fine"),
        ),
        ("service check message is not unescaped", b"_sc|a|0|m:line\\nnext", DEFAULT, check("a", ServiceCheckStatus::Ok).message("line\\nnext")),
        ("service check empty message", b"_sc|a|0|m:", DEFAULT, check("a", ServiceCheckStatus::Ok).message("")),
        ("service check bad timestamp ignored", b"_sc|a|0|d:abc", DEFAULT, check("a", ServiceCheckStatus::Ok)),
        ("service check keeps the previous timestamp", b"_sc|a|0|d:5|d:x", DEFAULT, check("a", ServiceCheckStatus::Ok).ts(5)),
        ("service check negative timestamp", b"_sc|a|0|d:-1", DEFAULT, check("a", ServiceCheckStatus::Ok).ts(-1)),
        ("service check unknown field", b"_sc|a|0|x:y|", DEFAULT, check("a", ServiceCheckStatus::Ok)),
        (
            "service check origin fields honoured",
            b"_sc|a|0|c:ci-1|e:cn-x|card:none",
            ORIGIN,
            check("a", ServiceCheckStatus::Ok).origin(Some("ci-1"), Some("cn-x"), Some("none")),
        ),
        ("service check origin fields ignored by default", b"_sc|a|0|c:ci-1|e:cn-x|card:none", DEFAULT, check("a", ServiceCheckStatus::Ok)),
        ("service check fourth byte is not checked", b"_sc:name|0|", DEFAULT, check("name", ServiceCheckStatus::Ok)),
        ("service check unicode name", "_sc|sérvice|0".as_bytes(), DEFAULT, check("sérvice", ServiceCheckStatus::Ok)),
    ]
}

#[test]
fn every_accepted_form_parses_to_what_the_agent_reads() {
    let mut failures = Vec::new();
    for (description, line, options, expected) in accepted_rows() {
        match parse_message(line, &options) {
            Ok(message) => {
                let parsed = Parsed::from(&message);
                if parsed != expected {
                    failures.push(format!(
                        "{description}: {line:?}\n  got      {parsed:?}\n  expected {expected:?}"
                    ));
                }
            }
            Err(error) => failures.push(format!(
                "{description}: {line:?} rejected: {} ({error})",
                error.reason()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn rejected_rows() -> Vec<(
    &'static str,
    &'static [u8],
    ParseOptions,
    &'static str,
    &'static str,
)> {
    vec![
        // Metrics.
        (
            "no pipe",
            b"daemon:666",
            DEFAULT,
            "invalid_format",
            "metrics",
        ),
        (
            "empty type",
            b"daemon:666|",
            DEFAULT,
            "invalid_metric_type",
            "metrics",
        ),
        (
            "empty value",
            b"daemon:|g",
            DEFAULT,
            "empty_value",
            "metrics",
        ),
        ("empty name", b":666|g", DEFAULT, "empty_name", "metrics"),
        (
            "empty name and value",
            b":|g",
            DEFAULT,
            "empty_name",
            "metrics",
        ),
        ("no colon", b"abc666|g", DEFAULT, "missing_value", "metrics"),
        (
            "colon after the first pipe only",
            b"abc|g:1",
            DEFAULT,
            "missing_value",
            "metrics",
        ),
        (
            "bad value",
            b"daemon:abc|g",
            DEFAULT,
            "invalid_value",
            "metrics",
        ),
        (
            "unknown type",
            b"daemon:666|unknown",
            DEFAULT,
            "invalid_metric_type",
            "metrics",
        ),
        (
            "types are case-sensitive",
            b"daemon:666|G",
            DEFAULT,
            "invalid_metric_type",
            "metrics",
        ),
        (
            "type with trailing space",
            b"daemon:666|c ",
            DEFAULT,
            "invalid_metric_type",
            "metrics",
        ),
        (
            "bad sample rate",
            b"daemon:666|g|@abc",
            DEFAULT,
            "invalid_sample_rate",
            "metrics",
        ),
        (
            "empty sample rate",
            b"daemon:666|g|@",
            DEFAULT,
            "invalid_sample_rate",
            "metrics",
        ),
        (
            "bad sample rate after a good one",
            b"a:1|c|@0.5|@x",
            DEFAULT,
            "invalid_sample_rate",
            "metrics",
        ),
        (
            "bad packed value",
            b"a:1:x|g",
            DEFAULT,
            "invalid_value",
            "metrics",
        ),
        (
            "only empty packed values",
            b"a::|g",
            DEFAULT,
            "no_values",
            "metrics",
        ),
        (
            "overflowing value",
            b"a:1e400|g",
            DEFAULT,
            "invalid_value",
            "metrics",
        ),
        (
            "signed NaN",
            b"a:+nan|g",
            DEFAULT,
            "invalid_value",
            "metrics",
        ),
        (
            "decimal comma",
            b"a:1,5|g",
            DEFAULT,
            "invalid_value",
            "metrics",
        ),
        (
            "space before value",
            b"a: 1|g",
            DEFAULT,
            "invalid_value",
            "metrics",
        ),
        (
            "misplaced digit separator",
            b"a:1__0|g",
            DEFAULT,
            "invalid_value",
            "metrics",
        ),
        (
            "hexadecimal without exponent",
            b"a:0x10|g",
            DEFAULT,
            "invalid_value",
            "metrics",
        ),
        (
            "bad timestamp",
            b"metric:1234|g|#onetag|TABCD",
            DEFAULT,
            "invalid_timestamp",
            "metrics",
        ),
        (
            "empty timestamp",
            b"metric:1234|g|#onetag|T",
            DEFAULT,
            "invalid_timestamp",
            "metrics",
        ),
        (
            "fractional timestamp",
            b"a:1|g|T1.5",
            DEFAULT,
            "invalid_timestamp",
            "metrics",
        ),
        (
            "overflowing timestamp",
            b"a:1|g|T9223372036854775808",
            DEFAULT,
            "invalid_timestamp",
            "metrics",
        ),
        (
            "negative timestamp",
            b"metric:1234|g|#onetag|T-102348932",
            DEFAULT,
            "non_positive_timestamp",
            "metrics",
        ),
        (
            "zero timestamp",
            b"a:1|g|T0",
            DEFAULT,
            "non_positive_timestamp",
            "metrics",
        ),
        (
            "any field starting with T is a timestamp",
            b"a:1|g|Tags",
            DEFAULT,
            "invalid_timestamp",
            "metrics",
        ),
        (
            "invalid UTF-8 metric",
            b"a\xff:1|c",
            DEFAULT,
            "invalid_utf8",
            "metrics",
        ),
        (
            "invalid UTF-8 tag",
            b"a:1|c|#caf\xe9",
            DEFAULT,
            "invalid_utf8",
            "metrics",
        ),
        (
            "an event without its brace is a metric",
            b"_e:title|text",
            DEFAULT,
            "invalid_metric_type",
            "metrics",
        ),
        (
            "an event without header is a metric",
            b"_e|text",
            DEFAULT,
            "missing_value",
            "metrics",
        ),
        (
            "garbage is a metric",
            b"\x01\x02garbage",
            DEFAULT,
            "invalid_format",
            "metrics",
        ),
        // Events.
        (
            "event longer than the packet",
            b"_e{10,10}:title|text",
            DEFAULT,
            "event_too_short",
            "events",
        ),
        (
            "event zero-length title",
            b"_e{0,0}:a|a",
            DEFAULT,
            "empty_event_title",
            "events",
        ),
        (
            "event zero-length title with text",
            b"_e{0,4}:text",
            DEFAULT,
            "empty_event_title",
            "events",
        ),
        (
            "event empty title",
            b"_e{0,9}:|test text",
            DEFAULT,
            "empty_event_title",
            "events",
        ),
        (
            "event header without comma",
            b"_e{5555:title|text",
            DEFAULT,
            "invalid_event_header",
            "events",
        ),
        (
            "event bad title length",
            b"_e{a,1}:title|text",
            DEFAULT,
            "invalid_event_title_length",
            "events",
        ),
        (
            "event bad text length",
            b"_e{1,a}:title|text",
            DEFAULT,
            "invalid_event_text_length",
            "events",
        ),
        (
            "event short header missing text length",
            b"_e{5,}:title|text",
            DEFAULT,
            "event_header_too_short",
            "events",
        ),
        (
            "event missing text length",
            b"_e{55,}:title|text",
            DEFAULT,
            "invalid_event_text_length",
            "events",
        ),
        (
            "event short header missing title length",
            b"_e{,4}:title|text",
            DEFAULT,
            "event_header_too_short",
            "events",
        ),
        (
            "event missing title length",
            b"_e{,44}:title|text",
            DEFAULT,
            "invalid_event_title_length",
            "events",
        ),
        (
            "event empty header",
            b"_e{}:title|text",
            DEFAULT,
            "event_header_too_short",
            "events",
        ),
        (
            "event header with only a comma",
            b"_e{,}:title|text",
            DEFAULT,
            "event_header_too_short",
            "events",
        ),
        (
            "event negative lengths",
            b"_e{-123,-987}:",
            DEFAULT,
            "invalid_event_title_length",
            "events",
        ),
        (
            "event negative text length",
            b"_e{5,-987}:title",
            DEFAULT,
            "invalid_event_text_length",
            "events",
        ),
        (
            "event header without colon",
            b"_e{0001,-9876",
            DEFAULT,
            "invalid_event_format",
            "events",
        ),
        (
            "event without payload",
            b"_e{1,0}",
            DEFAULT,
            "invalid_event_format",
            "events",
        ),
        (
            "event overflowing title length",
            b"_e{99999999999999999999,1}:a|b",
            DEFAULT,
            "invalid_event_title_length",
            "events",
        ),
        (
            "event lengths adding past the integer range",
            b"_e{9223372036854775807,9223372036854775807}:a|b",
            DEFAULT,
            "event_too_short",
            "events",
        ),
        (
            "event one byte short",
            b"_e{5,4}:title|tex",
            DEFAULT,
            "event_too_short",
            "events",
        ),
        (
            "event lengths with spaces",
            b"_e{ 5,4}:title|text",
            DEFAULT,
            "invalid_event_title_length",
            "events",
        ),
        (
            "invalid UTF-8 event",
            b"_e{1,1}:\xff|b",
            DEFAULT,
            "invalid_utf8",
            "events",
        ),
        // Service checks.
        (
            "service check without status",
            b"_sc|agent.up",
            DEFAULT,
            "invalid_service_check_format",
            "service_checks",
        ),
        (
            "service check prefix only",
            b"_sc",
            DEFAULT,
            "invalid_service_check_format",
            "service_checks",
        ),
        (
            "service check too short",
            b"_sc|",
            DEFAULT,
            "invalid_service_check_format",
            "service_checks",
        ),
        (
            "service check empty name",
            b"_sc||0",
            DEFAULT,
            "empty_service_check_name",
            "service_checks",
        ),
        (
            "service check status 4",
            b"_sc|agent.up|4",
            DEFAULT,
            "invalid_service_check_status",
            "service_checks",
        ),
        (
            "service check empty status",
            b"_sc|agent.up|",
            DEFAULT,
            "invalid_service_check_status",
            "service_checks",
        ),
        (
            "service check padded status",
            b"_sc|agent.up|00",
            DEFAULT,
            "invalid_service_check_status",
            "service_checks",
        ),
        (
            "service check status with space",
            b"_sc|agent.up| 0",
            DEFAULT,
            "invalid_service_check_status",
            "service_checks",
        ),
        (
            "service check status by name",
            b"_sc|agent.up|OK",
            DEFAULT,
            "invalid_service_check_status",
            "service_checks",
        ),
        (
            "service check negative status",
            b"_sc|agent.up|-1",
            DEFAULT,
            "invalid_service_check_status",
            "service_checks",
        ),
        (
            "service check fourth byte dropped unchecked",
            b"_scX|name|0",
            DEFAULT,
            "empty_service_check_name",
            "service_checks",
        ),
        (
            "metric named like a service check",
            b"_scale:1|c",
            DEFAULT,
            "invalid_service_check_format",
            "service_checks",
        ),
        (
            "invalid UTF-8 service check",
            b"_sc|\xff|0",
            DEFAULT,
            "invalid_utf8",
            "service_checks",
        ),
        (
            "service check name starting inside a character",
            "_scé|0|".as_bytes(),
            DEFAULT,
            "invalid_utf8",
            "service_checks",
        ),
    ]
}

#[test]
fn every_rejected_form_reports_its_reason() {
    let mut failures = Vec::new();
    for (description, line, options, reason, message_type) in rejected_rows() {
        match parse_message(line, &options) {
            Ok(message) => {
                failures.push(format!("{description}: {line:?} accepted as {message:?}"))
            }
            Err(error) => {
                if error.reason() != reason || error.message_type() != message_type {
                    failures.push(format!(
                        "{description}: {line:?} got {}/{}, expected {reason}/{message_type}",
                        error.reason(),
                        error.message_type()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rejections_do_not_depend_on_origin_options() {
    for (description, line, _, reason, _) in rejected_rows() {
        for options in [DEFAULT, ORIGIN] {
            let error = parse_message(line, &options).err();
            assert_eq!(error.map(|e| e.reason()), Some(reason), "{description}");
        }
    }
}

#[test]
fn every_reason_label_is_stable_snake_case_with_a_message() {
    let all = [
        ParseError::InvalidUtf8(MessageKind::Metric),
        ParseError::InvalidFormat,
        ParseError::MissingValue,
        ParseError::EmptyName,
        ParseError::EmptyValue,
        ParseError::InvalidMetricType,
        ParseError::InvalidValue,
        ParseError::NoValues,
        ParseError::InvalidSampleRate,
        ParseError::InvalidTimestamp,
        ParseError::NonPositiveTimestamp,
        ParseError::InvalidEventFormat,
        ParseError::EventHeaderTooShort,
        ParseError::InvalidEventHeader,
        ParseError::InvalidEventTitleLength,
        ParseError::InvalidEventTextLength,
        ParseError::EmptyEventTitle,
        ParseError::EventTooShort,
        ParseError::InvalidServiceCheckFormat,
        ParseError::EmptyServiceCheckName,
        ParseError::InvalidServiceCheckStatus,
    ];
    let mut reasons = std::collections::HashSet::new();
    for error in all {
        let reason = error.reason();
        assert!(
            reason
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{reason}"
        );
        assert!(reasons.insert(reason), "duplicate reason {reason}");
        assert!(!error.to_string().is_empty());
        assert!(["metrics", "events", "service_checks"].contains(&error.message_type()));
    }
    assert_eq!(
        ParseError::InvalidUtf8(MessageKind::Event).message_type(),
        "events"
    );
    assert_eq!(
        ParseError::InvalidUtf8(MessageKind::ServiceCheck).message_type(),
        "service_checks"
    );
}

#[test]
fn messages_are_classified_by_prefix_only() {
    assert_eq!(MessageKind::of(b"_e{1,1}:a|b"), MessageKind::Event);
    assert_eq!(MessageKind::of(b"_e{"), MessageKind::Event);
    assert_eq!(MessageKind::of(b"_sc|a|0"), MessageKind::ServiceCheck);
    assert_eq!(MessageKind::of(b"_scale:1|c"), MessageKind::ServiceCheck);
    assert_eq!(MessageKind::of(b"_e:1|c"), MessageKind::Metric);
    assert_eq!(MessageKind::of(b""), MessageKind::Metric);
    let parsed = parse_message(b"_sc|a|0", &DEFAULT);
    assert_eq!(parsed.map(|m| m.kind()), Ok(MessageKind::ServiceCheck));
}

#[test]
fn event_title_and_text_are_borrowed_unless_rewritten() {
    let Ok(Message::Event(plain)) = parse_message(b"_e{5,4}:title|text", &DEFAULT) else {
        panic!("event expected");
    };
    assert!(matches!(plain.title, Cow::Borrowed("title")));
    assert!(matches!(plain.text, Cow::Borrowed("text")));
    let Ok(Message::Event(escaped)) = parse_message(b"_e{5,4}:title|a\\nb", &DEFAULT) else {
        panic!("event expected");
    };
    assert!(matches!(escaped.title, Cow::Borrowed(_)));
    assert!(matches!(escaped.text, Cow::Owned(_)));
}

#[test]
fn metric_values_expose_their_shape() {
    let Ok(Message::Metric(single)) = parse_message(b"a:1.5|h", &DEFAULT) else {
        panic!("metric expected");
    };
    assert_eq!(single.values, MetricValues::Single(1.5));
    assert_eq!(single.values.len(), 1);
    assert!(!single.values.is_empty());

    let Ok(Message::Metric(packed)) = parse_message(b"a:1:2::3|h", &DEFAULT) else {
        panic!("metric expected");
    };
    let MetricValues::Packed(values) = packed.values else {
        panic!("packed values expected");
    };
    assert_eq!(values.raw(), "1:2::3");
    assert_eq!(values.len(), 3);
    assert_eq!(values.iter().collect::<Vec<_>>(), [1.0, 2.0, 3.0]);

    let Ok(Message::Metric(member)) = parse_message(b"a:x:y|s", &DEFAULT) else {
        panic!("metric expected");
    };
    assert_eq!(member.values.set_member(), Some("x:y"));
    assert_eq!(member.values.iter().count(), 0);
    assert_eq!(member.metric_type.symbol(), "s");
    assert_eq!(member.metric_type.as_str(), "set");
}

#[test]
fn cardinality_values_are_read_like_the_tagger() {
    assert_eq!(Cardinality::parse("none"), Some(Cardinality::None));
    assert_eq!(Cardinality::parse("LOW"), Some(Cardinality::Low));
    assert_eq!(Cardinality::parse("orch"), Some(Cardinality::Orchestrator));
    assert_eq!(
        Cardinality::parse("Orchestrator"),
        Some(Cardinality::Orchestrator)
    );
    assert_eq!(Cardinality::parse("high"), Some(Cardinality::High));
    assert_eq!(Cardinality::parse(""), None);
    assert_eq!(Cardinality::parse("bogus"), None);
}

#[test]
fn default_options_honour_timestamps_but_not_client_origin() {
    assert_eq!(ParseOptions::default(), DEFAULT);
}

fn split(packet: &[u8], eol_required: bool) -> Vec<Line<'_>> {
    split_messages(packet, eol_required).collect()
}

#[test]
fn packets_split_on_newlines_like_the_agent() {
    use Line::{Message as M, Unterminated as U};
    let cases: Vec<(&[u8], bool, Vec<Line<'_>>)> = vec![
        (b"", false, vec![]),
        (b"", true, vec![]),
        (b"a:1|c", false, vec![M(b"a:1|c")]),
        (b"a:1|c", true, vec![U(b"a:1|c")]),
        (b"a\nb", false, vec![M(b"a"), M(b"b")]),
        (b"a\nb", true, vec![M(b"a"), U(b"b")]),
        (b"a\nb\n", true, vec![M(b"a"), M(b"b")]),
        (b"a\r\nb\r\n", false, vec![M(b"a"), M(b"b")]),
        (b"a\r\nb\r", false, vec![M(b"a"), M(b"b")]),
        (b"a\r\nb\r", true, vec![M(b"a"), U(b"b")]),
        (b"\n\n a \n\r\n\n", false, vec![M(b" a ")]),
        (b"a\n\r", false, vec![M(b"a")]),
        (b"a\n\r", true, vec![M(b"a"), U(b"")]),
        (b"\r", false, vec![]),
        (b"\n", true, vec![]),
        (b"a\r\r\n", false, vec![M(b"a\r")]),
        (b"a\rb\n", false, vec![M(b"a\rb")]),
        (b"x\n\ny\n\n", true, vec![M(b"x"), M(b"y")]),
    ];
    for (packet, eol_required, expected) in cases {
        assert_eq!(
            split(packet, eol_required),
            expected,
            "{packet:?} eol_required={eol_required}"
        );
    }
}

#[test]
fn a_packet_of_many_messages_parses_line_by_line() {
    let packet = b"page.views:1|c\n_e{5,4}:title|text\r\n\n_sc|db|2|m:down\nbad line\nqueue:42|g|#region:eu|T1700000000";
    let mut kinds = Vec::new();
    let mut errors = Vec::new();
    for line in split_messages(packet, false) {
        let Line::Message(line) = line else {
            panic!("no unterminated lines without eol_required");
        };
        match parse_message(line, &DEFAULT) {
            Ok(message) => kinds.push(message.kind()),
            Err(error) => errors.push(error.reason()),
        }
    }
    assert_eq!(
        kinds,
        [
            MessageKind::Metric,
            MessageKind::Event,
            MessageKind::ServiceCheck,
            MessageKind::Metric
        ]
    );
    assert_eq!(errors, ["invalid_format"]);
}
