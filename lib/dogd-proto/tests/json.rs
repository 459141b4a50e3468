//! Proto3 JSON mapping (pbjson): lowerCamelCase or json_name keys, enums by name, 64-bit
//! integers as strings, bytes as base64, default values omitted.

use dogd_proto::datadog::model::v1::{
    ConfigEvent, HostnameReply, StreamTagsRequest, TagCardinality, UnixDogstatsdMsg, config_event,
};
use dogd_proto::datadog::workloadmeta::WorkloadmetaStreamResponse;
use serde_json::json;

#[test]
fn hostname_reply_serializes_to_a_hostname_key() {
    let reply = HostnameReply {
        hostname: "h".to_owned(),
    };
    let text = serde_json::to_string(&reply).expect("serializes");
    assert_eq!(text, r#"{"hostname":"h"}"#);
}

#[test]
fn snake_case_fields_serialize_under_their_lower_camel_case_name() {
    let response = WorkloadmetaStreamResponse {
        events: Vec::new(),
        initial_snapshot_complete: true,
    };
    let value = serde_json::to_value(&response).expect("serializes");
    assert_eq!(value, json!({ "initialSnapshotComplete": true }));
}

#[test]
fn fields_named_in_camel_case_keep_their_proto_spelling_and_enums_serialize_by_name() {
    let request = StreamTagsRequest {
        cardinality: TagCardinality::Orchestrator as i32,
        prefixes: vec!["container_id".to_owned()],
        streaming_id: "s1".to_owned(),
        ..Default::default()
    };
    let value = serde_json::to_value(&request).expect("serializes");
    assert_eq!(
        value,
        json!({ "cardinality": "ORCHESTRATOR", "prefixes": ["container_id"], "streamingID": "s1" })
    );
}

#[test]
fn int64_serializes_as_a_string_and_bytes_as_base64() {
    let msg = UnixDogstatsdMsg {
        timestamp: 42,
        payload: b"hi".to_vec(),
        ..Default::default()
    };
    let value = serde_json::to_value(&msg).expect("serializes");
    assert_eq!(value, json!({ "timestamp": "42", "payload": "aGk=" }));
}

#[test]
fn json_with_proto_field_names_and_unknown_keys_still_parses() {
    // Proto names are accepted next to JSON names; unknown keys come from newer agents.
    let response: WorkloadmetaStreamResponse =
        serde_json::from_str(r#"{"initial_snapshot_complete":true,"addedLater":1}"#)
            .expect("parses");
    assert!(response.initial_snapshot_complete);
}

#[test]
fn config_event_round_trips_through_json_with_a_dynamic_value() {
    let text = r#"{"update":{"origin":"core","sequenceId":3,"setting":{"source":"file","key":"log_level","value":"debug"}}}"#;
    let event: ConfigEvent = serde_json::from_str(text).expect("parses");
    let Some(config_event::Event::Update(update)) = &event.event else {
        panic!("expected an update, got {event:?}");
    };
    assert_eq!(update.sequence_id, 3);
    let setting = update.setting.as_ref().expect("setting is present");
    assert_eq!(setting.value, Some(pbjson_types::Value::from("debug")));

    let back = serde_json::to_value(&event).expect("serializes");
    let original: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
    assert_eq!(back, original);
}
