//! Compiles the `.proto` files under `proto/` without a `protoc` binary.
//!
//! Outputs, all in `OUT_DIR`:
//! - `<package>.rs`: prost messages and tonic clients/servers (tonic-prost-build);
//! - `<package>.serde.rs`: proto3 JSON `Serialize`/`Deserialize` impls (pbjson-build);
//! - `dogd_descriptor.bin`: the encoded `FileDescriptorSet`, imports included;
//! - `grpc_methods.rs`: a `&[&str]` expression listing every full method path.
//!
//! A failure here is a build failure, so `expect` with a message is the error handling.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost::Message as _;

/// Our `.proto` files, relative to `proto/`. Well-known types come from protox.
const PROTO_FILES: &[&str] = &[
    "datadog/api/v1/api.proto",
    "datadog/model/v1/model.proto",
    "datadog/workloadmeta/workloadmeta.proto",
    "datadog/remoteconfig/remoteconfig.proto",
    "datadog/autodiscovery/autodiscovery.proto",
    "datadog/remoteagent/remoteagent.proto",
    "datadog/agentpayload/agent_payload.proto",
];

/// Packages under this prefix are ours; the rest (google.protobuf) come from pbjson_types.
const OWN_PACKAGE_PREFIX: &str = "datadog";

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let proto_dir = manifest_dir.join("proto");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", proto_dir.display());

    let full_set = protox::compile(PROTO_FILES, [&proto_dir]).unwrap_or_else(|err| {
        panic!(
            "compiling the .proto files under {}: {err}",
            proto_dir.display()
        )
    });

    let encoded = full_set.encode_to_vec();
    write(&out_dir.join("dogd_descriptor.bin"), &encoded);
    write(
        &out_dir.join("grpc_methods.rs"),
        grpc_methods_source(&full_set).as_bytes(),
    );

    // google.protobuf maps to pbjson_types, whose well-known types carry proto3 JSON impls
    // (prost_types would not serialize). The google files stay in the set because prost
    // needs them to resolve field types; being extern, they get no code of their own.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // Components each implement only their area of AgentSecure; the rest answer Unimplemented.
        .generate_default_stubs(true)
        // prost maps google.protobuf to prost_types unless told the well-known types are
        // handled elsewhere; this flag plus the extern path points them at pbjson_types.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .out_dir(&out_dir)
        .compile_fds(full_set.clone())
        .expect("generating prost messages and tonic services");

    pbjson_build::Builder::new()
        .register_descriptors(&encoded)
        .expect("registering the descriptor set with pbjson-build")
        .extern_path(".google.protobuf", "::pbjson_types")
        // Newer agents add fields; reading their JSON must not fail because of them.
        .ignore_unknown_fields()
        .out_dir(&out_dir)
        .build(&[format!(".{OWN_PACKAGE_PREFIX}")])
        .expect("generating proto3 JSON impls");

    // pbjson writes nothing for a package without messages (datadog.api.v1 has only
    // services), but lib.rs includes one serde file per package.
    for file in full_set
        .file
        .iter()
        .filter(|file| is_own_package(file.package()))
    {
        let serde_file = out_dir.join(format!("{}.serde.rs", file.package()));
        if !serde_file.exists() {
            write(&serde_file, b"// No messages in this package.\n");
        }
    }
}

fn is_own_package(package: &str) -> bool {
    package == OWN_PACKAGE_PREFIX || package.starts_with(&format!("{OWN_PACKAGE_PREFIX}."))
}

/// Renders `&["/pkg.Service/Method", ...]`, in declaration order, for every service in the set.
fn grpc_methods_source(set: &prost_types::FileDescriptorSet) -> String {
    let mut source = String::from("&[\n");
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                writeln!(source, "    {path:?},").expect("writing to a String cannot fail");
            }
        }
    }
    source.push(']');
    source
}

fn write(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents)
        .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}
