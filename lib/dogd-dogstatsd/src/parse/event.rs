//! Event lines: `_e{<title bytes>,<text bytes>}:<title>|<text>[|d:…][|h:…][|k:…][|p:…]`
//! `[|s:…][|t:…][|#…][|c:…][|e:…][|card:…]` (agent: `parse_events.go`).
//!
//! The agent's quirks are kept on purpose, since clients only ever see its behaviour:
//! * the header is everything before the first `:` of the line; its last byte is dropped
//!   without checking that it is `}`;
//! * the byte between title and text is not checked to be `|`;
//! * optional fields start right after the text: whatever sits between the end of the text
//!   and the next `|` is a field of its own (normally empty).

use std::borrow::Cow;

use memchr::memchr;

use super::number::parse_i64;
use super::{AlertType, EventMessage, ParseError, ParseOptions, Priority, Tags};

pub(super) fn parse<'a>(
    line: &'a str,
    options: &ParseOptions,
) -> Result<EventMessage<'a>, ParseError> {
    let bytes = line.as_bytes();
    let Some(colon) = memchr(b':', bytes) else {
        return Err(ParseError::InvalidEventFormat);
    };
    let header = &bytes[..colon];
    // `_e{1,0}` is the shortest header that can be valid.
    if header.len() < 7 {
        return Err(ParseError::EventHeaderTooShort);
    }
    let lengths = &header[3..header.len() - 1];
    let Some(comma) = memchr(b',', lengths) else {
        return Err(ParseError::InvalidEventHeader);
    };
    let title_len = parse_i64(&lengths[..comma])
        .and_then(|len| u64::try_from(len).ok())
        .ok_or(ParseError::InvalidEventTitleLength)?;
    if title_len == 0 {
        return Err(ParseError::EmptyEventTitle);
    }
    let text_len = parse_i64(&lengths[comma + 1..])
        .and_then(|len| u64::try_from(len).ok())
        .ok_or(ParseError::InvalidEventTextLength)?;

    let payload = &bytes[colon + 1..];
    // Lengths are attacker-controlled: every step is checked.
    let title_len = usize::try_from(title_len).map_err(|_| ParseError::EventTooShort)?;
    let text_len = usize::try_from(text_len).map_err(|_| ParseError::EventTooShort)?;
    let text_start = title_len.checked_add(1).ok_or(ParseError::EventTooShort)?;
    let content_end = text_start
        .checked_add(text_len)
        .ok_or(ParseError::EventTooShort)?;
    if payload.len() < content_end {
        return Err(ParseError::EventTooShort);
    }

    let mut event = EventMessage {
        title: unescape_newlines(text_from_bytes(&payload[..title_len])),
        text: unescape_newlines(text_from_bytes(&payload[text_start..content_end])),
        timestamp: None,
        hostname: None,
        aggregation_key: None,
        priority: Priority::Normal,
        source_type_name: None,
        alert_type: AlertType::Info,
        tags: Tags::default(),
        local_data: None,
        external_data: None,
        cardinality: None,
    };
    if payload.len() == content_end {
        return Ok(event);
    }
    let mut next = Some(&payload[content_end..]);
    while let Some(fields) = next {
        let field = match memchr(b'|', fields) {
            Some(i) => {
                next = Some(&fields[i + 1..]);
                &fields[..i]
            }
            None => {
                next = None;
                fields
            }
        };
        apply_field(&mut event, field, options);
    }
    Ok(event)
}

/// Applies one optional field; a malformed one is ignored, keeping the previous value.
fn apply_field<'a>(event: &mut EventMessage<'a>, field: &'a [u8], options: &ParseOptions) {
    // Only the first field can start inside a UTF-8 sequence (when the text length cuts
    // one); such a field matches no prefix below, so skipping it changes nothing.
    let Ok(field) = std::str::from_utf8(field) else {
        return;
    };
    let Some(&first) = field.as_bytes().first() else {
        return;
    };
    if first == b'#' {
        event.tags = Tags::new(&field[1..]);
        return;
    }
    let Some((prefix, value)) = field.split_at_checked(2) else {
        return;
    };
    match prefix {
        "d:" => {
            if let Some(ts) = parse_i64(value.as_bytes()) {
                event.timestamp = Some(ts);
            }
        }
        "h:" => event.hostname = Some(value),
        "k:" => event.aggregation_key = Some(value),
        "p:" => match value {
            "normal" => event.priority = Priority::Normal,
            "low" => event.priority = Priority::Low,
            _ => {}
        },
        "s:" => event.source_type_name = Some(value),
        "t:" => match value {
            "error" => event.alert_type = AlertType::Error,
            "warning" => event.alert_type = AlertType::Warning,
            "info" => event.alert_type = AlertType::Info,
            "success" => event.alert_type = AlertType::Success,
            _ => {}
        },
        "c:" if options.honor_client_origin => event.local_data = Some(value),
        "e:" if options.honor_client_origin => event.external_data = Some(value),
        _ if options.honor_client_origin => {
            if let Some(value) = field.strip_prefix("card:") {
                event.cardinality = Some(value);
            }
        }
        // Unknown fields are ignored, for forward compatibility.
        _ => {}
    }
}

/// Title and text are cut by byte length, possibly inside a UTF-8 sequence: each invalid
/// byte becomes U+FFFD, which is what the agent's JSON encoder emits for it.
fn text_from_bytes(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            let mut text = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                text.push_str(chunk.valid());
                for _ in chunk.invalid() {
                    text.push(char::REPLACEMENT_CHARACTER);
                }
            }
            Cow::Owned(text)
        }
    }
}

/// Turns each literal two-byte `\n` into a newline (left to right, non-overlapping, like
/// Go's `bytes.Replace`).
fn unescape_newlines(text: Cow<'_, str>) -> Cow<'_, str> {
    if memchr::memmem::find(text.as_bytes(), b"\\n").is_none() {
        return text;
    }
    Cow::Owned(text.replace("\\n", "\n"))
}
