//! The flush sink that serializes flushes and hands the payloads to the forwarder.

use std::sync::Arc;

use async_trait::async_trait;
use dogd_aggregator::{Flush, FlushSink};
use dogd_telemetry::{Counter, Registry, TelemetryError};

use crate::serialize::Serializer;
use crate::transport::ForwarderHandle;

/// Serializes each flush (off the async threads: a large flush is CPU work) and submits the
/// payloads to the forwarder.
#[derive(Debug, Clone)]
pub struct ForwardingSink {
    serializer: Arc<Serializer>,
    forwarder: ForwarderHandle,
    too_big: Counter,
    compression_failed: Counter,
}

impl ForwardingSink {
    /// A sink serializing with `serializer` into `forwarder`.
    pub fn new(
        serializer: Serializer,
        forwarder: ForwarderHandle,
        registry: &Registry,
    ) -> Result<Self, TelemetryError> {
        let dropped = registry.counter(
            "serializer__dropped",
            "Items the serializer could not send, by reason.",
            &["reason"],
        )?;
        Ok(Self {
            serializer: Arc::new(serializer),
            forwarder,
            too_big: dropped.with(&["too_big"]),
            compression_failed: dropped.with(&["compression_failed"]),
        })
    }
}

#[async_trait]
impl FlushSink for ForwardingSink {
    async fn flush(&self, flush: Flush) {
        let serializer = self.serializer.clone();
        match tokio::task::spawn_blocking(move || serializer.serialize(&flush)).await {
            Ok(serialized) => {
                self.too_big.add(serialized.dropped.too_big);
                self.compression_failed
                    .add(serialized.dropped.compression_failed);
                self.forwarder.submit(serialized.transactions);
            }
            Err(error) => tracing::error!("serializing a flush failed: {error}"),
        }
    }
}
