//! Service checks (`/api/v1/check_run`) and events (`/intake/`) in the agent's JSON shapes.

use std::collections::BTreeMap;
use std::ops::Range;

use dogd_dogstatsd::sample::{Event, ServiceCheck};
use serde::Serialize;

use super::{Chunk, Dropped, Limits};

/// Content type of both JSON payloads.
pub(crate) const CONTENT_TYPE: &str = "application/json";

/// One service check, fields in the agent's order; `tags` is `null` when there are none.
#[derive(Serialize)]
struct CheckRun<'a> {
    check: &'a str,
    host_name: &'a str,
    timestamp: i64,
    status: u8,
    message: &'a str,
    tags: Option<&'a [String]>,
}

fn check_run(check: &ServiceCheck) -> CheckRun<'_> {
    CheckRun {
        check: &check.name,
        host_name: &check.host,
        timestamp: check.timestamp.unwrap_or(0),
        status: check.status,
        message: &check.message,
        tags: (!check.tags.is_empty()).then_some(check.tags.as_slice()),
    }
}

/// One event; empty optional fields are left out, as the agent's serializer does.
#[derive(Serialize)]
struct IntakeEvent<'a> {
    msg_title: &'a str,
    msg_text: &'a str,
    timestamp: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    priority: &'a str,
    host: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    alert_type: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    aggregation_key: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    source_type_name: &'a str,
}

fn intake_event(event: &Event) -> IntakeEvent<'_> {
    IntakeEvent {
        msg_title: &event.title,
        msg_text: &event.text,
        timestamp: event.timestamp.unwrap_or(0),
        priority: &event.priority,
        host: &event.host,
        tags: &event.tags,
        alert_type: &event.alert_type,
        aggregation_key: event.aggregation_key.as_deref().unwrap_or(""),
        source_type_name: event.source_type_name.as_deref().unwrap_or(""),
    }
}

/// The events payload: grouped by source type name (`api` when none), the API key left empty
/// (it travels in the `DD-API-KEY` header).
#[derive(Serialize)]
struct EventsPayload<'a> {
    #[serde(rename = "apiKey")]
    api_key: &'a str,
    events: BTreeMap<&'a str, Vec<IntakeEvent<'a>>>,
    #[serde(rename = "internalHostname")]
    internal_hostname: &'a str,
}

/// Groups items into JSON payloads of at most `max_bytes`, measuring each item's JSON.
fn chunk_json<T>(
    items: &[T],
    item_len: impl Fn(&T) -> usize,
    max_bytes: usize,
    encode: impl Fn(&[T]) -> Vec<u8>,
    dropped: &mut Dropped,
) -> Vec<(Chunk, Range<usize>)> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    let mut index = 0;
    while index < items.len() {
        // Separator and the payload's own framing are small: count a few bytes per item.
        let size = item_len(&items[index]) + 1;
        if size > max_bytes {
            dropped.too_big += 1;
            tracing::warn!(
                "dropping an item of {size} bytes: over the {max_bytes}-byte payload limit"
            );
            if start == index {
                start = index + 1;
            } else {
                chunks.push((
                    Chunk {
                        body: encode(&items[start..index]),
                        items: index - start,
                    },
                    start..index,
                ));
                start = index + 1;
                bytes = 0;
            }
            index += 1;
            continue;
        }
        if bytes + size > max_bytes && index > start {
            chunks.push((
                Chunk {
                    body: encode(&items[start..index]),
                    items: index - start,
                },
                start..index,
            ));
            start = index;
            bytes = 0;
        }
        bytes += size;
        index += 1;
    }
    if start < items.len() {
        chunks.push((
            Chunk {
                body: encode(&items[start..]),
                items: items.len() - start,
            },
            start..items.len(),
        ));
    }
    chunks
}

fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

/// Service check payload bodies.
pub(crate) fn service_check_chunks(
    checks: &[ServiceCheck],
    limits: &Limits,
    dropped: &mut Dropped,
) -> Vec<(Chunk, Range<usize>)> {
    chunk_json(
        checks,
        |check| json_len(&check_run(check)),
        limits.other_uncompressed.saturating_sub(2),
        |checks| {
            serde_json::to_vec(&checks.iter().map(check_run).collect::<Vec<_>>())
                .unwrap_or_default()
        },
        dropped,
    )
}

/// Event payload bodies.
pub(crate) fn event_chunks(
    events: &[Event],
    hostname: &str,
    limits: &Limits,
    dropped: &mut Dropped,
) -> Vec<(Chunk, Range<usize>)> {
    chunk_json(
        events,
        |event| json_len(&intake_event(event)),
        limits
            .other_uncompressed
            .saturating_sub(64 + hostname.len()),
        |events| {
            let mut grouped: BTreeMap<&str, Vec<IntakeEvent<'_>>> = BTreeMap::new();
            for event in events {
                let source = event
                    .source_type_name
                    .as_deref()
                    .filter(|name| !name.is_empty())
                    .unwrap_or("api");
                grouped.entry(source).or_default().push(intake_event(event));
            }
            serde_json::to_vec(&EventsPayload {
                api_key: "",
                events: grouped,
                internal_hostname: hostname,
            })
            .unwrap_or_default()
        },
        dropped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, tags: &[&str]) -> ServiceCheck {
        ServiceCheck {
            name: name.to_owned(),
            status: 2,
            timestamp: Some(1_700_000_000),
            host: "db-1".to_owned(),
            message: "connection refused".to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            origin: None,
        }
    }

    #[test]
    fn check_runs_use_the_agents_field_order_and_null_tags() {
        let chunks = service_check_chunks(
            &[check("db.can_connect", &["env:prod"]), check("other", &[])],
            &Limits::default(),
            &mut Dropped::default(),
        );
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            String::from_utf8(chunks[0].0.body.clone()).expect("utf8"),
            r#"[{"check":"db.can_connect","host_name":"db-1","timestamp":1700000000,"status":2,"message":"connection refused","tags":["env:prod"]},{"check":"other","host_name":"db-1","timestamp":1700000000,"status":2,"message":"connection refused","tags":null}]"#
        );
    }

    #[test]
    fn events_group_by_source_type_and_omit_empty_fields() {
        let event = |title: &str, source: Option<&str>| Event {
            title: title.to_owned(),
            text: "text".to_owned(),
            timestamp: Some(5),
            host: "h".to_owned(),
            aggregation_key: None,
            priority: "normal".to_owned(),
            source_type_name: source.map(str::to_owned),
            alert_type: "info".to_owned(),
            tags: Vec::new(),
            origin: None,
        };
        let chunks = event_chunks(
            &[event("a", None), event("b", Some("jenkins"))],
            "agent-host",
            &Limits::default(),
            &mut Dropped::default(),
        );
        let body: serde_json::Value = serde_json::from_slice(&chunks[0].0.body).expect("json");
        assert_eq!(body["apiKey"], "");
        assert_eq!(body["internalHostname"], "agent-host");
        assert_eq!(body["events"]["api"][0]["msg_title"], "a");
        assert_eq!(body["events"]["jenkins"][0]["source_type_name"], "jenkins");
        assert!(body["events"]["api"][0].get("tags").is_none());
        assert!(body["events"]["api"][0].get("aggregation_key").is_none());
    }

    #[test]
    fn payloads_split_under_the_size_limit_and_oversized_items_are_dropped() {
        let checks: Vec<ServiceCheck> =
            (0..10).map(|i| check(&format!("check.{i}"), &[])).collect();
        let small = Limits {
            other_uncompressed: 300,
            ..Limits::default()
        };
        let mut dropped = Dropped::default();
        let chunks = service_check_chunks(&checks, &small, &mut dropped);
        assert!(chunks.len() > 1);
        assert_eq!(
            chunks.iter().map(|(chunk, _)| chunk.items).sum::<usize>(),
            10
        );
        assert!(
            chunks.iter().all(|(chunk, _)| chunk.body.len() <= 300),
            "{:?}",
            chunks.iter().map(|(c, _)| c.body.len()).collect::<Vec<_>>()
        );
        let mut huge = check("huge", &[]);
        huge.message = "x".repeat(1000);
        let chunks = service_check_chunks(
            &[check("a", &[]), huge, check("b", &[])],
            &small,
            &mut dropped,
        );
        assert_eq!(dropped.too_big, 1);
        assert_eq!(
            chunks.iter().map(|(chunk, _)| chunk.items).sum::<usize>(),
            2
        );
    }
}
