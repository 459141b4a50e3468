//! The generated services and the method list telemetry relies on.

use std::collections::HashSet;
use std::path::Path;

use dogd_proto::GRPC_METHODS;
use dogd_proto::datadog::api::v1::agent_secure_server::{self, AgentSecureServer};
use dogd_proto::datadog::api::v1::agent_server::{self, Agent, AgentServer};
use dogd_proto::datadog::model::v1::{HostnameReply, HostnameRequest};
use prost::Message;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

/// Counts `rpc` definitions in every `.proto` file under `dir`, by reading the sources.
fn count_rpc_definitions(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("proto directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            count += count_rpc_definitions(&path);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            let text = std::fs::read_to_string(&path).expect("proto file is readable");
            count += text
                .lines()
                .filter(|line| line.trim_start().starts_with("rpc "))
                .count();
        }
    }
    count
}

#[test]
fn grpc_methods_lists_the_hostname_and_tagger_stream_paths() {
    assert!(GRPC_METHODS.contains(&"/datadog.api.v1.Agent/GetHostname"));
    assert!(GRPC_METHODS.contains(&"/datadog.api.v1.AgentSecure/TaggerStreamEntities"));
    assert!(GRPC_METHODS.contains(&"/datadog.api.v1.AgentSecure/CreateConfigSubscription"));
    assert!(GRPC_METHODS.contains(&"/datadog.api.v1.AgentSecure/StreamConfigEvents"));
}

#[test]
fn grpc_methods_has_one_entry_per_rpc_definition() {
    let proto_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    assert_eq!(GRPC_METHODS.len(), count_rpc_definitions(&proto_dir));
    let unique: HashSet<_> = GRPC_METHODS.iter().collect();
    assert_eq!(unique.len(), GRPC_METHODS.len(), "paths are unique");
}

#[test]
fn grpc_methods_are_full_paths_of_package_service_and_method() {
    for path in GRPC_METHODS {
        let mut parts = path.split('/');
        assert_eq!(parts.next(), Some(""), "{path} starts with a slash");
        let service = parts.next().expect("service part");
        let method = parts.next().expect("method part");
        assert_eq!(parts.next(), None, "{path} has exactly two slashes");
        assert!(
            service.starts_with("datadog."),
            "{path} names a datadog package"
        );
        assert!(
            !method.is_empty() && method.chars().all(char::is_alphanumeric),
            "{path}"
        );
    }
}

#[test]
fn agent_secure_serves_the_seventeen_agent_methods() {
    let secure = GRPC_METHODS
        .iter()
        .filter(|path| path.starts_with("/datadog.api.v1.AgentSecure/"))
        .count();
    assert_eq!(secure, 17);
}

/// A minimal `Agent` implementation, enough to build an `AgentServer`.
#[derive(Debug)]
struct FixedHostname;

#[tonic::async_trait]
impl Agent for FixedHostname {
    async fn get_hostname(
        &self,
        _request: Request<HostnameRequest>,
    ) -> Result<Response<HostnameReply>, Status> {
        Ok(Response::new(HostnameReply {
            hostname: "h".to_owned(),
        }))
    }
}

#[test]
fn generated_servers_carry_the_agent_service_names() {
    assert_eq!(
        <AgentServer<FixedHostname> as NamedService>::NAME,
        "datadog.api.v1.Agent"
    );
    assert_eq!(agent_server::SERVICE_NAME, "datadog.api.v1.Agent");
    assert_eq!(
        agent_secure_server::SERVICE_NAME,
        "datadog.api.v1.AgentSecure"
    );
    // The secure server type exists at the expected path (any inner type names it).
    assert!(
        std::any::type_name::<AgentSecureServer<()>>()
            .ends_with("agent_secure_server::AgentSecureServer<()>")
    );
    let _server = AgentServer::new(FixedHostname);
}

#[test]
fn file_descriptor_set_decodes_and_holds_every_datadog_package() {
    let set = decode_descriptor_set(dogd_proto::FILE_DESCRIPTOR_SET);
    let packages: HashSet<&str> = set.file.iter().map(|file| file.package()).collect();
    for package in [
        "datadog.api.v1",
        "datadog.model.v1",
        "datadog.workloadmeta",
        "datadog.config",
        "datadog.autodiscovery",
        "datadog.remoteagent.v1",
        "google.protobuf",
    ] {
        assert!(
            packages.contains(package),
            "{package} is in the descriptor set"
        );
    }
}

fn decode_descriptor_set(bytes: &[u8]) -> descriptor::FileDescriptorSet {
    descriptor::FileDescriptorSet::decode(bytes).expect("descriptor set decodes")
}

/// Just enough of `google.protobuf.FileDescriptorSet` to read package names, so the test does
/// not need prost-types as a dependency. The derive adds a `package()` getter for the optional
/// field.
mod descriptor {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        pub(crate) file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct FileDescriptorProto {
        #[prost(string, optional, tag = "2")]
        pub(crate) package: Option<String>,
    }
}
