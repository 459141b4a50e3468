//! The Datadog Agent's gRPC API as Rust types: prost messages, tonic clients and servers, and
//! proto3 JSON (serde) for every message.
//!
//! Modules mirror the protobuf packages, so `datadog.model.v1.HostnameReply` is
//! [`datadog::model::v1::HostnameReply`]. The `.proto` sources under `proto/` are ours; their
//! names and field numbers follow the agent (see `PROTO_NOTES.md` for what was checked where).
//! They are compiled at build time with protox, so no `protoc` is needed.

#![warn(missing_docs)]

/// Declares the module for one protobuf package and includes the code generated for it: prost
/// messages and tonic clients/servers, then the pbjson serde impls.
///
/// The allows are the only ones in the crate and cover generated code alone: it has no docs
/// (`missing_docs` fires on every message and field), and clippy's default lints may flag its
/// shapes (large oneof variants, enum variant names) as protos grow. We never edit it by hand.
macro_rules! generated_package {
    ($(#[$attr:meta])* $module:ident => $package:literal) => {
        $(#[$attr])*
        #[allow(missing_docs, clippy::all)]
        pub mod $module {
            include!(concat!(env!("OUT_DIR"), "/", $package, ".rs"));
            include!(concat!(env!("OUT_DIR"), "/", $package, ".serde.rs"));
        }
    };
}

/// Package tree `datadog.*`.
pub mod datadog {
    /// Package tree `datadog.api`.
    pub mod api {
        generated_package! {
            /// Package `datadog.api.v1`: the `Agent` and `AgentSecure` services.
            v1 => "datadog.api.v1"
        }
    }

    /// Package tree `datadog.model`.
    pub mod model {
        generated_package! {
            /// Package `datadog.model.v1`: hostname, tagger, DogStatsD capture, host tags and
            /// config stream messages.
            v1 => "datadog.model.v1"
        }
    }

    generated_package! {
        /// Package `datadog.workloadmeta`: the workloadmeta entity stream.
        workloadmeta => "datadog.workloadmeta"
    }

    generated_package! {
        /// Package `datadog.config`: remote configuration.
        config => "datadog.config"
    }

    generated_package! {
        /// Package `datadog.autodiscovery`: the autodiscovery config stream.
        autodiscovery => "datadog.autodiscovery"
    }

    generated_package! {
        /// Package `datadog.agentpayload`: the intake's series (v2) and sketch payloads.
        agentpayload => "datadog.agentpayload"
    }

    /// Package tree `datadog.remoteagent`.
    pub mod remoteagent {
        generated_package! {
            /// Package `datadog.remoteagent.v1`: remote agent registration and the
            /// `RemoteAgent` service.
            v1 => "datadog.remoteagent.v1"
        }
    }
}

/// The encoded `google.protobuf.FileDescriptorSet` of every file above, imports (well-known
/// types) included. Feed it to gRPC reflection or to a descriptor pool.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/dogd_descriptor.bin"));

/// Full path (`/package.Service/Method`) of every gRPC method defined here, in declaration
/// order. Telemetry uses it as the bounded set of values for a method label; any other path is
/// an unknown method.
pub const GRPC_METHODS: &[&str] = include!(concat!(env!("OUT_DIR"), "/grpc_methods.rs"));
