//! Metric lines: `name:value[:value…]|type[|@rate][|#tags][|T<ts>][|c:…][|e:…][|card:…]`
//! (agent: `parseMetricSample` in `comp/dogstatsd/server/impl/parse.go`).

use memchr::memchr;

use super::number::{parse_float, parse_i64};
use super::{
    MetricMessage, MetricType, MetricValues, PackedValues, ParseError, ParseOptions, Tags,
    next_field,
};

pub(super) fn parse<'a>(
    line: &'a str,
    options: &ParseOptions,
) -> Result<MetricMessage<'a>, ParseError> {
    let (name_and_value, rest) = next_field(line);
    let Some(rest) = rest else {
        return Err(ParseError::InvalidFormat);
    };
    // The first ':' splits the name from the value; further ones belong to the value.
    let Some(colon) = memchr(b':', name_and_value.as_bytes()) else {
        return Err(ParseError::MissingValue);
    };
    let (name, raw_value) = name_and_value.split_at(colon);
    let raw_value = &raw_value[1..];
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    if raw_value.is_empty() {
        return Err(ParseError::EmptyValue);
    }

    let (type_field, after_type) = next_field(rest);
    let metric_type = MetricType::from_symbol(type_field).ok_or(ParseError::InvalidMetricType)?;
    let values = parse_values(metric_type, raw_value)?;

    let mut message = MetricMessage {
        name,
        metric_type,
        values,
        sample_rate: 1.0,
        tags: Tags::default(),
        timestamp: None,
        local_data: None,
        external_data: None,
        cardinality: None,
    };
    let mut next = after_type;
    while let Some(fields) = next {
        let (field, tail) = next_field(fields);
        next = tail;
        match field.as_bytes().first() {
            Some(b'#') => message.tags = Tags::new(&field[1..]),
            Some(b'@') => {
                message.sample_rate =
                    parse_float(&field.as_bytes()[1..]).ok_or(ParseError::InvalidSampleRate)?;
            }
            Some(b'T') if options.honor_timestamps => {
                let ts = parse_i64(&field.as_bytes()[1..]).ok_or(ParseError::InvalidTimestamp)?;
                // Negative values fail the conversion as well as the `< 1` check.
                let ts = u64::try_from(ts)
                    .ok()
                    .filter(|&ts| ts >= 1)
                    .ok_or(ParseError::NonPositiveTimestamp)?;
                message.timestamp = Some(ts);
            }
            Some(b'c' | b'e') if options.honor_client_origin => {
                if let Some(value) = field.strip_prefix("c:") {
                    message.local_data = Some(value);
                } else if let Some(value) = field.strip_prefix("e:") {
                    message.external_data = Some(value);
                } else if let Some(value) = field.strip_prefix("card:") {
                    message.cardinality = Some(value);
                }
            }
            // Unknown fields are ignored, for forward compatibility.
            _ => {}
        }
    }
    Ok(message)
}

fn parse_values(metric_type: MetricType, raw: &str) -> Result<MetricValues<'_>, ParseError> {
    if metric_type == MetricType::Set {
        return Ok(MetricValues::Set(raw));
    }
    let bytes = raw.as_bytes();
    if memchr(b':', bytes).is_none() {
        return parse_float(bytes)
            .map(MetricValues::Single)
            .ok_or(ParseError::InvalidValue);
    }
    let mut len = 0;
    for item in bytes.split(|&c| c == b':') {
        // Empty items (`1::2`, a trailing `:`) are skipped like the agent does.
        if item.is_empty() {
            continue;
        }
        parse_float(item).ok_or(ParseError::InvalidValue)?;
        len += 1;
    }
    if len == 0 {
        return Err(ParseError::NoValues);
    }
    Ok(MetricValues::Packed(PackedValues { raw, len }))
}
