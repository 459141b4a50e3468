//! From flushes to the intake: the serializer (series v2 and sketches in protobuf, service checks
//! and events in JSON, compressed and split under the intake's limits), the HTTP forwarder with
//! retries and a disk queue, and the local file sink used when no API key is set.

#![warn(missing_docs)]

mod local_sink;
pub mod serialize;
mod settings;
mod sink;
pub mod transport;

pub use local_sink::{LocalSink, LocalSinkError, LocalSinkStatus};
pub use serialize::{Compression, Limits, Serializer};
pub use sink::ForwardingSink;
pub use transport::{
    Endpoint, Forwarder, ForwarderConfig, ForwarderError, ForwarderHandle, ForwarderStatus, Proxy,
    ProxyConfig, StorageConfig, Transaction,
};
