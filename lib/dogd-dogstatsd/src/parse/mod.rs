//! The DogStatsD datagram parser: packets → lines ([`split_messages`]) → messages
//! ([`parse_message`]).
//!
//! The parser follows the Go agent (`comp/dogstatsd/server/impl/parse*.go`) on what it
//! accepts and rejects, field by field; the few deliberate differences are listed here.
//!
//! * **Zero copy.** Every parsed string borrows from the input line. Nothing is allocated
//!   for metrics and service checks; events allocate only when their title or text holds a
//!   `\n` escape or is cut inside a UTF-8 sequence by its byte length.
//! * **UTF-8.** A line that is not valid UTF-8 is rejected with [`ParseError::InvalidUtf8`]
//!   (reason `invalid_utf8`), whatever its kind. The agent keeps such bytes as-is and would
//!   forward them to the intake; we refuse them so that every name, tag and field is a
//!   `&str`. The one place where valid UTF-8 can still be cut is an event title or text,
//!   whose lengths are in bytes: there each invalid byte becomes U+FFFD, which is what the
//!   agent's JSON encoder sends for them.
//! * **Numbers.** Values and sample rates use Go's `strconv.ParseFloat` syntax (so `1e3`,
//!   `+5`, `.5`, `1_000`, `0x1p-2`, `Inf`, `NaN` are accepted and an overflow such as
//!   `1e400` is rejected); timestamps and event lengths use `strconv.ParseInt` (optional
//!   sign, ASCII digits only). Like the agent, the parser passes `NaN`, infinities, zero or
//!   negative sample rates through unchanged: range policy belongs to the aggregator (the
//!   agent's drops `NaN` and ±Inf values in `ContextMetrics.AddSample` and
//!   `sketchMap.insert`, and does not check sample rates).
//! * **Raw origin fields.** `c:`, `e:` and `card:` are returned raw (when honoured): the
//!   agent's semantics depend on the raw text (an empty `card:` does not count as set, an
//!   unknown value still does); see [`Cardinality::parse`] for the tagger's reading.

mod event;
mod metric;
mod number;
mod service_check;

use std::borrow::Cow;
use std::fmt;

use memchr::memchr;

/// Parser settings taken from the agent configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Honour the `T<unix seconds>` metric field (`dogstatsd_no_aggregation_pipeline`,
    /// default `true`). When `false` the field is ignored, even when malformed.
    pub honor_timestamps: bool,
    /// Honour the `c:`, `e:` and `card:` fields (`dogstatsd_origin_detection_client`,
    /// default `false`). When `false` they are ignored.
    pub honor_client_origin: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            honor_timestamps: true,
            honor_client_origin: false,
        }
    }
}

/// The three message kinds, told apart by their prefix only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Anything that is not an event or a service check (garbage included).
    Metric,
    /// Lines starting with `_e{`.
    Event,
    /// Lines starting with `_sc`.
    ServiceCheck,
}

impl MessageKind {
    /// Classifies a line the way the agent does: `_e{` → event, `_sc` → service check,
    /// anything else → metric.
    pub fn of(line: &[u8]) -> Self {
        if line.starts_with(b"_e{") {
            Self::Event
        } else if line.starts_with(b"_sc") {
            Self::ServiceCheck
        } else {
            Self::Metric
        }
    }

    /// The `message_type` telemetry label: `metrics`, `events` or `service_checks`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metric => "metrics",
            Self::Event => "events",
            Self::ServiceCheck => "service_checks",
        }
    }
}

/// A DogStatsD metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `c`
    Counter,
    /// `g`
    Gauge,
    /// `h`
    Histogram,
    /// `ms`: a histogram whose unit is milliseconds.
    Timer,
    /// `d`
    Distribution,
    /// `s`: the value is a raw set member.
    Set,
}

impl MetricType {
    /// Parses the type field; it must match exactly.
    pub fn from_symbol(symbol: &str) -> Option<Self> {
        Some(match symbol {
            "c" => Self::Counter,
            "g" => Self::Gauge,
            "h" => Self::Histogram,
            "ms" => Self::Timer,
            "d" => Self::Distribution,
            "s" => Self::Set,
            _ => return None,
        })
    }

    /// The wire symbol (`c`, `g`, `h`, `ms`, `d`, `s`).
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Counter => "c",
            Self::Gauge => "g",
            Self::Histogram => "h",
            Self::Timer => "ms",
            Self::Distribution => "d",
            Self::Set => "s",
        }
    }

    /// The agent's `metric_type` telemetry label (`counter`, `gauge`, `histogram`,
    /// `timing`, `distribution`, `set`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Timer => "timing",
            Self::Distribution => "distribution",
            Self::Set => "set",
        }
    }
}

/// A tag cardinality as read by the agent's tagger (`card:` field, `dd.internal.card:` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cardinality {
    /// `none`: the client opts out of origin enrichment.
    None,
    /// `low`
    Low,
    /// `orchestrator` (or `orch`)
    Orchestrator,
    /// `high`
    High,
}

impl Cardinality {
    /// Reads a raw cardinality, case-insensitively; `None` for unknown values, which the
    /// agent's tagger treats as an error and replaces by `low`.
    pub fn parse(raw: &str) -> Option<Self> {
        let known = [
            ("none", Self::None),
            ("low", Self::Low),
            ("orchestrator", Self::Orchestrator),
            ("orch", Self::Orchestrator),
            ("high", Self::High),
        ];
        known
            .iter()
            .find(|(name, _)| raw.eq_ignore_ascii_case(name))
            .map(|&(_, cardinality)| cardinality)
    }
}

/// The raw `#` field of a message: tags separated by `,`.
///
/// Iteration follows the agent: an empty field has no tags, otherwise every `,` separates
/// a tag, so empty tags (`a,,b`) are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tags<'a> {
    raw: &'a str,
}

impl<'a> Tags<'a> {
    /// Wraps a raw tag list (without the leading `#`).
    pub fn new(raw: &'a str) -> Self {
        Self { raw }
    }

    /// Iterates over the tags, in order.
    pub fn iter(&self) -> TagsIter<'a> {
        TagsIter {
            rest: if self.raw.is_empty() {
                None
            } else {
                Some(self.raw)
            },
        }
    }

    /// `true` when there is no tag at all.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The number of tags (empty ones included).
    pub fn len(&self) -> usize {
        if self.raw.is_empty() {
            0
        } else {
            memchr::memchr_iter(b',', self.raw.as_bytes()).count() + 1
        }
    }

    /// The raw field, without the leading `#`.
    pub fn raw(&self) -> &'a str {
        self.raw
    }
}

impl<'a> IntoIterator for Tags<'a> {
    type Item = &'a str;
    type IntoIter = TagsIter<'a>;

    fn into_iter(self) -> TagsIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &Tags<'a> {
    type Item = &'a str;
    type IntoIter = TagsIter<'a>;

    fn into_iter(self) -> TagsIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Tags`].
#[derive(Debug, Clone)]
pub struct TagsIter<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for TagsIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match memchr(b',', rest.as_bytes()) {
            Some(i) => {
                // `,` is ASCII, so both sides are on character boundaries.
                let (tag, tail) = rest.split_at(i);
                self.rest = Some(&tail[1..]);
                Some(tag)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// The value part of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValues<'a> {
    /// One value (protocol v1.0).
    Single(f64),
    /// Several values packed as `v1:v2:…` (protocol v1.1), each one a sample.
    Packed(PackedValues<'a>),
    /// The raw member of a set (`s`), kept verbatim, `:` included.
    Set(&'a str),
}

impl<'a> MetricValues<'a> {
    /// The number of samples the message carries (1 for a single value or a set member).
    pub fn len(&self) -> usize {
        match self {
            Self::Single(_) | Self::Set(_) => 1,
            Self::Packed(packed) => packed.len(),
        }
    }

    /// Always `false`: a parsed metric has at least one value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Iterates over the numeric values; yields nothing for a set.
    pub fn iter(&self) -> ValuesIter<'a> {
        match *self {
            Self::Single(value) => ValuesIter::Single(Some(value)),
            Self::Packed(packed) => ValuesIter::Packed(packed.iter()),
            Self::Set(_) => ValuesIter::Single(None),
        }
    }

    /// The set member, for `s` metrics.
    pub fn set_member(&self) -> Option<&'a str> {
        match *self {
            Self::Set(member) => Some(member),
            _ => None,
        }
    }
}

/// Several packed values (`1:2::3`), validated at parse time and decoded again while
/// iterating, which keeps parsing free of allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedValues<'a> {
    raw: &'a str,
    len: usize,
}

impl<'a> PackedValues<'a> {
    /// The raw value field.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The number of values (empty items such as in `1::2` are skipped, like the agent).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: messages without any value are rejected.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates over the values.
    pub fn iter(&self) -> PackedValuesIter<'a> {
        PackedValuesIter {
            rest: self.raw.as_bytes(),
        }
    }
}

/// Iterator over [`PackedValues`].
#[derive(Debug, Clone)]
pub struct PackedValuesIter<'a> {
    rest: &'a [u8],
}

impl Iterator for PackedValuesIter<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        while !self.rest.is_empty() {
            let item = match memchr(b':', self.rest) {
                Some(i) => {
                    let item = &self.rest[..i];
                    self.rest = &self.rest[i + 1..];
                    item
                }
                None => std::mem::take(&mut self.rest),
            };
            if item.is_empty() {
                continue;
            }
            // Every item was validated by the parser, so this always yields a value.
            if let Some(value) = number::parse_float(item) {
                return Some(value);
            }
        }
        None
    }
}

/// Iterator over [`MetricValues`].
#[derive(Debug, Clone)]
pub enum ValuesIter<'a> {
    /// A single value (or none, for sets).
    Single(Option<f64>),
    /// Packed values.
    Packed(PackedValuesIter<'a>),
}

impl Iterator for ValuesIter<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        match self {
            Self::Single(value) => value.take(),
            Self::Packed(iter) => iter.next(),
        }
    }
}

/// A parsed metric line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricMessage<'a> {
    /// The name, as sent (never empty).
    pub name: &'a str,
    /// The type.
    pub metric_type: MetricType,
    /// The value(s).
    pub values: MetricValues<'a>,
    /// `@` sample rate, 1.0 when absent; not range-checked (the agent does not either).
    pub sample_rate: f64,
    /// `#` tags (the last `#` field wins).
    pub tags: Tags<'a>,
    /// `T` timestamp (unix seconds, ≥ 1), only when timestamps are honoured.
    pub timestamp: Option<u64>,
    /// Raw `c:` local data (container id / cgroup inode), only when client origin is
    /// honoured.
    pub local_data: Option<&'a str>,
    /// Raw `e:` external data (admission-controller data), only when client origin is
    /// honoured.
    pub external_data: Option<&'a str>,
    /// Raw `card:` cardinality, only when client origin is honoured; may be empty or an
    /// unknown value (see [`Cardinality::parse`]).
    pub cardinality: Option<&'a str>,
}

/// An event priority (`p:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// `normal` (the default).
    #[default]
    Normal,
    /// `low`
    Low,
}

impl Priority {
    /// The wire and intake spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }
}

/// An event alert type (`t:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AlertType {
    /// `error`
    Error,
    /// `warning`
    Warning,
    /// `info` (the default).
    #[default]
    Info,
    /// `success`
    Success,
}

impl AlertType {
    /// The wire and intake spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
            Self::Success => "success",
        }
    }
}

/// A parsed event line.
///
/// Bad optional fields (non-integer `d:`, unknown `p:` or `t:`) are ignored and the event
/// is kept, like the agent (which logs a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage<'a> {
    /// The title (never empty), with each literal `\n` turned into a newline.
    pub title: Cow<'a, str>,
    /// The text (may be empty), with each literal `\n` turned into a newline.
    pub text: Cow<'a, str>,
    /// `d:` date happened (any `i64`; the agent replaces 0 or absent by "now").
    pub timestamp: Option<i64>,
    /// `h:` hostname; the agent treats an empty one as absent.
    pub hostname: Option<&'a str>,
    /// `k:` aggregation key.
    pub aggregation_key: Option<&'a str>,
    /// `p:` priority.
    pub priority: Priority,
    /// `s:` source type name.
    pub source_type_name: Option<&'a str>,
    /// `t:` alert type.
    pub alert_type: AlertType,
    /// `#` tags.
    pub tags: Tags<'a>,
    /// Raw `c:` local data, only when client origin is honoured.
    pub local_data: Option<&'a str>,
    /// Raw `e:` external data, only when client origin is honoured.
    pub external_data: Option<&'a str>,
    /// Raw `card:` cardinality, only when client origin is honoured.
    pub cardinality: Option<&'a str>,
}

/// A service check status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceCheckStatus {
    /// `0`
    Ok = 0,
    /// `1`
    Warning = 1,
    /// `2`
    Critical = 2,
    /// `3`
    Unknown = 3,
}

impl ServiceCheckStatus {
    /// The numeric status sent to the intake.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A parsed service check line.
///
/// A bad `d:` is ignored and the check kept, like the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceCheckMessage<'a> {
    /// The check name (never empty).
    pub name: &'a str,
    /// The status.
    pub status: ServiceCheckStatus,
    /// `d:` timestamp (any `i64`).
    pub timestamp: Option<i64>,
    /// `h:` hostname; the agent treats an empty one as absent.
    pub hostname: Option<&'a str>,
    /// `m:` message, verbatim (the agent does not unescape it; it cannot contain `|`).
    pub message: Option<&'a str>,
    /// `#` tags.
    pub tags: Tags<'a>,
    /// Raw `c:` local data, only when client origin is honoured.
    pub local_data: Option<&'a str>,
    /// Raw `e:` external data, only when client origin is honoured.
    pub external_data: Option<&'a str>,
    /// Raw `card:` cardinality, only when client origin is honoured.
    pub cardinality: Option<&'a str>,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Message<'a> {
    /// A metric sample (or several, when packed).
    Metric(MetricMessage<'a>),
    /// An event.
    Event(EventMessage<'a>),
    /// A service check.
    ServiceCheck(ServiceCheckMessage<'a>),
}

impl Message<'_> {
    /// The kind of message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Metric(_) => MessageKind::Metric,
            Self::Event(_) => MessageKind::Event,
            Self::ServiceCheck(_) => MessageKind::ServiceCheck,
        }
    }
}

/// Why a line was rejected. Each variant has a stable [`reason`](Self::reason) label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParseError {
    /// The line is not valid UTF-8 (see the module documentation).
    #[error("invalid UTF-8 in {} message", .0.as_str())]
    InvalidUtf8(MessageKind),

    /// Metric without any `|`.
    #[error("invalid dogstatsd message format: no '|' field separator")]
    InvalidFormat,
    /// Metric whose first field has no `:` between name and value.
    #[error("invalid name and value: no ':' separator")]
    MissingValue,
    /// Metric with an empty name.
    #[error("invalid name and value: empty name")]
    EmptyName,
    /// Metric with an empty value.
    #[error("invalid name and value: empty value")]
    EmptyValue,
    /// Metric type other than `c`, `g`, `h`, `ms`, `d`, `s`.
    #[error("invalid metric type")]
    InvalidMetricType,
    /// A value that is not a float (Go `ParseFloat` syntax), or overflows.
    #[error("could not parse dogstatsd metric value")]
    InvalidValue,
    /// Packed values with only empty items (`a::|c`).
    #[error("could not parse dogstatsd metric values: no value found")]
    NoValues,
    /// A `@` field that is not a float.
    #[error("could not parse dogstatsd sample rate")]
    InvalidSampleRate,
    /// A `T` field that is not an integer (when timestamps are honoured).
    #[error("could not parse dogstatsd timestamp")]
    InvalidTimestamp,
    /// A `T` field below 1 (when timestamps are honoured).
    #[error("dogstatsd timestamp should be > 0")]
    NonPositiveTimestamp,

    /// Event without any `:` after its header.
    #[error("invalid event: no ':' after the header")]
    InvalidEventFormat,
    /// Event header (before the first `:`) shorter than `_e{1,0}`.
    #[error("invalid event header: too short")]
    EventHeaderTooShort,
    /// Event header without `,` between the lengths.
    #[error("invalid event header: no ',' between the lengths")]
    InvalidEventHeader,
    /// Event title length that is not an integer ≥ 0.
    #[error("invalid event header: bad title length")]
    InvalidEventTitleLength,
    /// Event text length that is not an integer ≥ 0.
    #[error("invalid event header: bad text length")]
    InvalidEventTextLength,
    /// Event title length of 0.
    #[error("invalid event: empty title")]
    EmptyEventTitle,
    /// Event shorter than its header's lengths say.
    #[error("invalid event: payload shorter than title and text lengths")]
    EventTooShort,

    /// Service check with fewer than two `|` or shorter than 4 bytes.
    #[error("invalid dogstatsd service check format")]
    InvalidServiceCheckFormat,
    /// Service check with an empty name.
    #[error("invalid dogstatsd service check name: empty name")]
    EmptyServiceCheckName,
    /// Service check status other than exactly `0`, `1`, `2` or `3`.
    #[error("invalid dogstatsd service check status")]
    InvalidServiceCheckStatus,
}

impl ParseError {
    /// A stable snake_case label for telemetry and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidUtf8(_) => "invalid_utf8",
            Self::InvalidFormat => "invalid_format",
            Self::MissingValue => "missing_value",
            Self::EmptyName => "empty_name",
            Self::EmptyValue => "empty_value",
            Self::InvalidMetricType => "invalid_metric_type",
            Self::InvalidValue => "invalid_value",
            Self::NoValues => "no_values",
            Self::InvalidSampleRate => "invalid_sample_rate",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::NonPositiveTimestamp => "non_positive_timestamp",
            Self::InvalidEventFormat => "invalid_event_format",
            Self::EventHeaderTooShort => "event_header_too_short",
            Self::InvalidEventHeader => "invalid_event_header",
            Self::InvalidEventTitleLength => "invalid_event_title_length",
            Self::InvalidEventTextLength => "invalid_event_text_length",
            Self::EmptyEventTitle => "empty_event_title",
            Self::EventTooShort => "event_too_short",
            Self::InvalidServiceCheckFormat => "invalid_service_check_format",
            Self::EmptyServiceCheckName => "empty_service_check_name",
            Self::InvalidServiceCheckStatus => "invalid_service_check_status",
        }
    }

    /// The kind of message that was rejected.
    pub fn message_kind(&self) -> MessageKind {
        match self {
            Self::InvalidUtf8(kind) => *kind,
            Self::InvalidFormat
            | Self::MissingValue
            | Self::EmptyName
            | Self::EmptyValue
            | Self::InvalidMetricType
            | Self::InvalidValue
            | Self::NoValues
            | Self::InvalidSampleRate
            | Self::InvalidTimestamp
            | Self::NonPositiveTimestamp => MessageKind::Metric,
            Self::InvalidEventFormat
            | Self::EventHeaderTooShort
            | Self::InvalidEventHeader
            | Self::InvalidEventTitleLength
            | Self::InvalidEventTextLength
            | Self::EmptyEventTitle
            | Self::EventTooShort => MessageKind::Event,
            Self::InvalidServiceCheckFormat
            | Self::EmptyServiceCheckName
            | Self::InvalidServiceCheckStatus => MessageKind::ServiceCheck,
        }
    }

    /// The `message_type` telemetry label: `metrics`, `events` or `service_checks`.
    pub fn message_type(&self) -> &'static str {
        self.message_kind().as_str()
    }
}

/// Parses one line (without its `\n`).
pub fn parse_message<'a>(
    line: &'a [u8],
    options: &ParseOptions,
) -> Result<Message<'a>, ParseError> {
    let kind = MessageKind::of(line);
    let text = std::str::from_utf8(line).map_err(|_| ParseError::InvalidUtf8(kind))?;
    match kind {
        MessageKind::Metric => metric::parse(text, options).map(Message::Metric),
        MessageKind::Event => event::parse(text, options).map(Message::Event),
        MessageKind::ServiceCheck => service_check::parse(text, options).map(Message::ServiceCheck),
    }
}

/// One line of a packet, as cut by [`split_messages`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A message to parse (never empty).
    Message(&'a [u8]),
    /// The final fragment of a packet that lacks its `\n` while end-of-line is required
    /// (`dogstatsd_eol_required`): to be dropped and counted (`UnterminatedMetricErrors`).
    /// Its trailing `\r` is removed, so it may be empty when the packet ended with `\r`.
    Unterminated(&'a [u8]),
}

impl fmt::Debug for Line<'_> {
    // Lines are mostly text: show them as such.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, bytes) = match self {
            Self::Message(bytes) => ("Message", bytes),
            Self::Unterminated(bytes) => ("Unterminated", bytes),
        };
        write!(f, "{name}({:?})", String::from_utf8_lossy(bytes))
    }
}

/// Splits a packet into lines like the agent: on `\n`, dropping one `\r` before it,
/// skipping empty lines. The final fragment without `\n` is a message, unless
/// `eol_required`, in which case it is reported as [`Line::Unterminated`] (even when only
/// a `\r` remains of it, as the agent counts that too).
pub fn split_messages(packet: &[u8], eol_required: bool) -> SplitMessages<'_> {
    SplitMessages {
        rest: packet,
        eol_required,
    }
}

/// Iterator returned by [`split_messages`].
#[derive(Debug, Clone)]
pub struct SplitMessages<'a> {
    rest: &'a [u8],
    eol_required: bool,
}

impl<'a> Iterator for SplitMessages<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        while !self.rest.is_empty() {
            let (line, terminated) = match memchr(b'\n', self.rest) {
                Some(i) => {
                    let line = &self.rest[..i];
                    self.rest = &self.rest[i + 1..];
                    (line, true)
                }
                None => (std::mem::take(&mut self.rest), false),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !terminated && self.eol_required {
                return Some(Line::Unterminated(line));
            }
            if !line.is_empty() {
                return Some(Line::Message(line));
            }
        }
        None
    }
}

/// Splits `s` at its first `|`: the field and, when there was a `|`, what follows it (the
/// agent's `nextField`).
fn next_field(s: &str) -> (&str, Option<&str>) {
    match memchr(b'|', s.as_bytes()) {
        Some(i) => {
            // `|` is ASCII, so both sides are on character boundaries.
            let (field, rest) = s.split_at(i);
            (field, Some(&rest[1..]))
        }
        None => (s, None),
    }
}
