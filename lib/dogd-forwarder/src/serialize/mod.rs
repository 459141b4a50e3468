//! Turns a flush into the intake's payloads, as the agent's serializer does: series (v2
//! protobuf), sketches (protobuf), service checks and events (JSON); each compressed and split to
//! stay under the intake's size limits.

mod compress;
mod json;
mod protobuf;

use std::time::SystemTime;

use bytes::Bytes;
use dogd_aggregator::Flush;

pub use compress::{Compression, CompressionError};

use crate::transport::{Endpoint, Transaction};

/// The intake's limits (the agent's `serializer_max_*` defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Series payload, compressed (`serializer_max_series_payload_size`, 512,000).
    pub series_compressed: usize,
    /// Series payload, uncompressed (`serializer_max_series_uncompressed_payload_size`, 5 MiB).
    pub series_uncompressed: usize,
    /// Points per series payload (`serializer_max_series_points_per_payload`, 10,000).
    pub series_points: usize,
    /// Any other payload, compressed (`serializer_max_payload_size`, 2.5 MiB).
    pub other_compressed: usize,
    /// Any other payload, uncompressed (`serializer_max_uncompressed_payload_size`, 4 MiB).
    pub other_uncompressed: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            series_compressed: 512_000,
            series_uncompressed: 5_242_880,
            series_points: 10_000,
            other_compressed: 2_621_440,
            other_uncompressed: 4_194_304,
        }
    }
}

/// What the serializer could not send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Items larger than a whole payload may be (the agent's `ItemTooBig`).
    pub too_big: u64,
    /// Payloads whose compression failed.
    pub compression_failed: u64,
}

/// Serializes flushes.
#[derive(Clone, Debug)]
pub struct Serializer {
    /// Compression of every payload.
    pub compression: Compression,
    /// Payload limits.
    pub limits: Limits,
    /// The hostname put in the events payload (`internalHostname`).
    pub hostname: String,
}

/// The payloads of one flush, and what had to be dropped.
#[derive(Debug, Default)]
pub struct Serialized {
    /// Ready to send.
    pub transactions: Vec<Transaction>,
    /// Dropped items.
    pub dropped: Dropped,
}

/// One payload's uncompressed body and how many items (series, sketches, ...) it holds.
pub(crate) struct Chunk {
    pub(crate) body: Vec<u8>,
    pub(crate) items: usize,
}

/// Splits items into payload bodies under the uncompressed limits; each chunk says which items
/// (a range of the slice) it holds. Items too big for any payload are counted in `Dropped`.
type Chunker<'a, T> = dyn Fn(&[T], &mut Dropped) -> Vec<(Chunk, std::ops::Range<usize>)> + 'a;

impl Serializer {
    /// Serializes one flush.
    pub fn serialize(&self, flush: &Flush) -> Serialized {
        let mut out = Serialized::default();
        let limits = self.limits;
        self.payloads(
            Endpoint::Series,
            protobuf::CONTENT_TYPE,
            &flush.series,
            limits.series_compressed,
            &mut out,
            &|items: &[_], dropped: &mut Dropped| protobuf::series_chunks(items, &limits, dropped),
        );
        self.payloads(
            Endpoint::Sketches,
            protobuf::CONTENT_TYPE,
            &flush.sketches,
            limits.other_compressed,
            &mut out,
            &|items: &[_], dropped: &mut Dropped| protobuf::sketch_chunks(items, &limits, dropped),
        );
        self.payloads(
            Endpoint::CheckRun,
            json::CONTENT_TYPE,
            &flush.service_checks,
            limits.other_compressed,
            &mut out,
            &|items: &[_], dropped: &mut Dropped| {
                json::service_check_chunks(items, &limits, dropped)
            },
        );
        let hostname = self.hostname.as_str();
        self.payloads(
            Endpoint::Events,
            json::CONTENT_TYPE,
            &flush.events,
            limits.other_compressed,
            &mut out,
            &|items: &[_], dropped: &mut Dropped| {
                json::event_chunks(items, hostname, &limits, dropped)
            },
        );
        out
    }

    /// Chunks `items`, compresses each chunk, and re-splits in halves any chunk whose compressed
    /// size is over `limit`, until every payload fits.
    fn payloads<T>(
        &self,
        endpoint: Endpoint,
        content_type: &'static str,
        items: &[T],
        limit: usize,
        out: &mut Serialized,
        chunker: &Chunker<'_, T>,
    ) {
        if items.is_empty() {
            return;
        }
        let chunks = chunker(items, &mut out.dropped);
        self.compress_chunks(endpoint, content_type, items, chunks, limit, out, chunker);
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the recursive step of `payloads`"
    )]
    fn compress_chunks<T>(
        &self,
        endpoint: Endpoint,
        content_type: &'static str,
        items: &[T],
        chunks: Vec<(Chunk, std::ops::Range<usize>)>,
        limit: usize,
        out: &mut Serialized,
        chunker: &Chunker<'_, T>,
    ) {
        for (chunk, range) in chunks {
            let compressed = match self.compression.compress(&chunk.body) {
                Ok(compressed) => compressed,
                Err(error) => {
                    tracing::error!("cannot compress a {endpoint:?} payload: {error}");
                    out.dropped.compression_failed += 1;
                    continue;
                }
            };
            if compressed.len() <= limit {
                out.transactions.push(Transaction {
                    endpoint,
                    body: Bytes::from(compressed),
                    content_type,
                    content_encoding: self.compression.content_encoding(),
                    created_at: SystemTime::now(),
                });
                continue;
            }
            if chunk.items <= 1 {
                tracing::warn!(
                    "dropping a {endpoint:?} item: {} bytes compressed, over the {limit}-byte payload limit",
                    compressed.len()
                );
                out.dropped.too_big += 1;
                continue;
            }
            // Too big once compressed: serialize each half of its items again.
            let middle = range.start + (range.end - range.start) / 2;
            for half in [range.start..middle, middle..range.end] {
                let sub: Vec<_> = chunker(&items[half.clone()], &mut Dropped::default())
                    .into_iter()
                    .map(|(chunk, r)| (chunk, (r.start + half.start)..(r.end + half.start)))
                    .collect();
                self.compress_chunks(endpoint, content_type, items, sub, limit, out, chunker);
            }
        }
    }
}
