//! Service check lines: `_sc|<name>|<status>[|d:…][|h:…][|#…][|m:…][|c:…][|e:…][|card:…]`
//! (agent: `parse_service_checks.go`).
//!
//! Like the agent, the first four bytes are dropped without checking that they are `_sc|`.

use memchr::memchr_iter;

use super::number::parse_i64;
use super::{
    MessageKind, ParseError, ParseOptions, ServiceCheckMessage, ServiceCheckStatus, Tags,
    next_field,
};

pub(super) fn parse<'a>(
    line: &'a str,
    options: &ParseOptions,
) -> Result<ServiceCheckMessage<'a>, ParseError> {
    if line.len() < 4 || memchr_iter(b'|', line.as_bytes()).nth(1).is_none() {
        return Err(ParseError::InvalidServiceCheckFormat);
    }
    // The fourth byte may start a multi-byte character, leaving the name to begin inside
    // it: the agent would accept such a name, we cannot represent it.
    let body = line
        .get(4..)
        .ok_or(ParseError::InvalidUtf8(MessageKind::ServiceCheck))?;
    let (name, rest) = next_field(body);
    if name.is_empty() {
        return Err(ParseError::EmptyServiceCheckName);
    }
    let (raw_status, mut next) = match rest {
        Some(rest) => next_field(rest),
        None => ("", None),
    };
    let status = match raw_status {
        "0" => ServiceCheckStatus::Ok,
        "1" => ServiceCheckStatus::Warning,
        "2" => ServiceCheckStatus::Critical,
        "3" => ServiceCheckStatus::Unknown,
        _ => return Err(ParseError::InvalidServiceCheckStatus),
    };

    let mut check = ServiceCheckMessage {
        name,
        status,
        timestamp: None,
        hostname: None,
        message: None,
        tags: Tags::default(),
        local_data: None,
        external_data: None,
        cardinality: None,
    };
    while let Some(fields) = next {
        let (field, tail) = next_field(fields);
        next = tail;
        if let Some(tags) = field.strip_prefix('#') {
            check.tags = Tags::new(tags);
        } else if let Some(value) = field.strip_prefix("d:") {
            // A malformed timestamp is ignored (the agent logs a warning).
            if let Some(ts) = parse_i64(value.as_bytes()) {
                check.timestamp = Some(ts);
            }
        } else if let Some(value) = field.strip_prefix("h:") {
            check.hostname = Some(value);
        } else if let Some(value) = field.strip_prefix("m:") {
            check.message = Some(value);
        } else if options.honor_client_origin {
            if let Some(value) = field.strip_prefix("c:") {
                check.local_data = Some(value);
            } else if let Some(value) = field.strip_prefix("e:") {
                check.external_data = Some(value);
            } else if let Some(value) = field.strip_prefix("card:") {
                check.cardinality = Some(value);
            }
        }
    }
    Ok(check)
}
