//! Encodes messages and compares them with protobuf bytes worked out by hand from the agent's
//! field numbers and types. A wrong number or type (say sint32 for int32) changes the bytes.

use dogd_proto::datadog::model::v1::{
    EntityId, HostnameReply, StreamTagsRequest, TagCardinality, UnixDogstatsdMsg,
};
use dogd_proto::datadog::workloadmeta::{Container, ContainerSecurityContext, ContainerState};
use prost::Message;

/// Encodes `message`, checks the bytes, and checks they decode back to the same message.
fn assert_wire<M: Message + Default + PartialEq + std::fmt::Debug>(message: &M, expected: &[u8]) {
    let encoded = message.encode_to_vec();
    assert_eq!(encoded, expected, "encoding of {message:?}");
    let decoded = M::decode(expected).expect("hand-written bytes decode");
    assert_eq!(&decoded, message);
}

#[test]
fn hostname_reply_encodes_field_one_as_a_string() {
    let reply = HostnameReply {
        hostname: "h".to_owned(),
    };
    // Tag 0x0a = field 1, wire type 2 (length-delimited); length 1; "h".
    assert_wire(&reply, &[0x0a, 0x01, b'h']);
}

#[test]
fn unix_dogstatsd_msg_encodes_all_six_fields_with_their_numbers_and_types() {
    let msg = UnixDogstatsdMsg {
        timestamp: 1,
        payload_size: 2,
        payload: b"ab".to_vec(),
        pid: 300,
        ancillary_size: -1,
        ancillary: b"x".to_vec(),
    };
    let expected = [
        0x08, 0x01, // timestamp: field 1, varint
        0x10, 0x02, // payloadSize: field 2, varint
        0x1a, 0x02, b'a', b'b', // payload: field 3, bytes
        0x20, 0xac, 0x02, // pid: field 4, varint 300
        // ancillarySize: field 5; int32 -1 is a ten-byte varint (sint32 would be 0x01).
        0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, //
        0x32, 0x01, b'x', // ancillary: field 6, bytes
    ];
    assert_wire(&msg, &expected);
}

#[test]
fn entity_id_encodes_prefix_as_field_one_and_uid_as_field_two() {
    let id = EntityId {
        prefix: "container_id".to_owned(),
        uid: "abc".to_owned(),
    };
    let mut expected = vec![0x0a, 0x0c];
    expected.extend_from_slice(b"container_id");
    expected.extend_from_slice(&[0x12, 0x03]);
    expected.extend_from_slice(b"abc");
    assert_wire(&id, &expected);
}

#[test]
fn stream_tags_request_encodes_prefixes_as_field_four_and_streaming_id_as_field_five() {
    let request = StreamTagsRequest {
        cardinality: TagCardinality::High as i32,
        include_filter: None,
        exclude_filter: None,
        prefixes: vec!["a".to_owned(), "b".to_owned()],
        streaming_id: "s".to_owned(),
    };
    let expected = [
        0x08, 0x02, // cardinality: field 1, HIGH = 2
        0x22, 0x01, b'a', // prefixes: field 4, one record per element
        0x22, 0x01, b'b', //
        0x2a, 0x01, b's', // streamingID: field 5
    ];
    assert_wire(&request, &expected);
}

#[test]
fn tag_cardinality_and_event_type_keep_the_agent_enum_values() {
    use dogd_proto::datadog::model::v1::EventType;
    assert_eq!(TagCardinality::Low as i32, 0);
    assert_eq!(TagCardinality::Orchestrator as i32, 1);
    assert_eq!(TagCardinality::High as i32, 2);
    assert_eq!(EventType::Added as i32, 0);
    assert_eq!(EventType::Modified as i32, 1);
    assert_eq!(EventType::Deleted as i32, 2);
}

#[test]
fn workloadmeta_container_encodes_fields_ten_twelve_and_sixteen() {
    let container = Container {
        state: Some(ContainerState {
            running: true,
            exit_code: 137,
            ..Default::default()
        }),
        cgroup_path: "/c".to_owned(),
        security_context: Some(ContainerSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    };
    let expected = [
        // state: field 10, length-delimited (10 << 3 | 2 = 0x52), 5 bytes:
        0x52, 0x05, //
        0x08, 0x01, // running: field 1, true
        0x38, 0x89, 0x01, // exitCode: field 7, varint 137
        // cgroupPath: field 12 (12 << 3 | 2 = 0x62)
        0x62, 0x02, b'/', b'c', //
        // securityContext: field 16, its tag (130) takes a two-byte varint.
        0x82, 0x01, 0x02, //
        0x10, 0x01, // privileged: field 2, true
    ];
    assert_wire(&container, &expected);
}

#[test]
fn unknown_fields_from_newer_agents_are_skipped_when_decoding() {
    // HostnameReply followed by field 9 (varint 1) that we do not know.
    let bytes = [0x0a, 0x01, b'h', 0x48, 0x01];
    let reply = HostnameReply::decode(&bytes[..]).expect("unknown fields are skipped");
    assert_eq!(reply.hostname, "h");
}
