//! Series (v2) and sketch payloads in protobuf, with DogStatsD's origin metadata.

use std::ops::Range;

use dogd_aggregator::{Serie, SeriesType, SketchSerie};
use dogd_proto::datadog::agentpayload::metric_payload::{
    MetricPoint, MetricSeries, MetricType, Resource,
};
use dogd_proto::datadog::agentpayload::sketch_payload::Sketch;
use dogd_proto::datadog::agentpayload::sketch_payload::sketch::Dogsketch;
use dogd_proto::datadog::agentpayload::{
    CommonMetadata, Metadata, MetricPayload, Origin, SketchPayload,
};
use prost::Message as _;

use super::{Chunk, Dropped, Limits};

/// Content type of both protobuf payloads.
pub(crate) const CONTENT_TYPE: &str = "application/x-protobuf";

/// DogStatsD's origin: product Agent (10), category DogStatsD (10), service 0, as the agent's
/// `origin_mapping.go` sets for plain DogStatsD metrics.
fn dogstatsd_origin() -> Metadata {
    Metadata {
        origin: Some(Origin {
            origin_product: 10,
            origin_category: 10,
            origin_service: 0,
        }),
    }
}

fn metric_type(series_type: SeriesType) -> MetricType {
    match series_type {
        SeriesType::Count => MetricType::Count,
        SeriesType::Rate => MetricType::Rate,
        SeriesType::Gauge => MetricType::Gauge,
    }
}

/// The protobuf form of a series.
pub(crate) fn series_message(serie: &Serie) -> MetricSeries {
    MetricSeries {
        resources: vec![Resource {
            r#type: "host".to_owned(),
            name: serie.host.to_string(),
        }],
        metric: serie.name.to_string(),
        tags: serie.tags.iter().map(|tag| tag.to_string()).collect(),
        points: serie
            .points
            .iter()
            .map(|(timestamp, value)| MetricPoint {
                value: *value,
                timestamp: *timestamp,
            })
            .collect(),
        r#type: metric_type(serie.series_type) as i32,
        unit: String::new(),
        source_type_name: String::new(),
        interval: serie.interval,
        metadata: Some(dogstatsd_origin()),
    }
}

/// The protobuf form of a sketch series: one Dogsketch per bucket.
pub(crate) fn sketch_message(serie: &SketchSerie) -> Sketch {
    Sketch {
        metric: serie.name.to_string(),
        host: serie.host.to_string(),
        distributions: Vec::new(),
        tags: serie.tags.iter().map(|tag| tag.to_string()).collect(),
        dogsketches: serie
            .points
            .iter()
            .map(|(timestamp, sketch)| {
                let (k, n) = sketch.bins();
                Dogsketch {
                    ts: *timestamp,
                    cnt: i64::try_from(sketch.count()).unwrap_or(i64::MAX),
                    min: sketch.min(),
                    max: sketch.max(),
                    avg: sketch.avg(),
                    sum: sketch.sum(),
                    k,
                    n,
                }
            })
            .collect(),
        metadata: Some(dogstatsd_origin()),
    }
}

/// Bytes a repeated message field adds to its parent: tag, length, body.
fn field_len(body: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(body as u64) + body
}

/// Groups consecutive items into payloads under `max_bytes` (and `max_points`, when given), then
/// encodes each group with `encode`.
fn chunk_by_size<T, M>(
    items: &[T],
    to_message: impl Fn(&T) -> M,
    points: impl Fn(&T) -> usize,
    max_bytes: usize,
    max_points: Option<usize>,
    encode: impl Fn(Vec<M>) -> Vec<u8>,
    dropped: &mut Dropped,
) -> Vec<(Chunk, Range<usize>)>
where
    M: prost::Message,
{
    let mut chunks = Vec::new();
    let mut group: Vec<M> = Vec::new();
    let (mut start, mut bytes, mut point_count) = (0, 0, 0);
    for (index, item) in items.iter().enumerate() {
        let message = to_message(item);
        let size = field_len(message.encoded_len());
        let item_points = points(item);
        if size > max_bytes || max_points.is_some_and(|max| item_points > max) {
            dropped.too_big += 1;
            tracing::warn!(
                "dropping an item of {size} bytes: over the {max_bytes}-byte payload limit"
            );
            if group.is_empty() {
                start = index + 1;
            }
            continue;
        }
        let full = bytes + size > max_bytes
            || max_points.is_some_and(|max| point_count + item_points > max);
        if full && !group.is_empty() {
            let items_in = group.len();
            chunks.push((
                Chunk {
                    body: encode(std::mem::take(&mut group)),
                    items: items_in,
                },
                start..index,
            ));
            start = index;
            bytes = 0;
            point_count = 0;
        }
        if group.is_empty() {
            start = index;
        }
        bytes += size;
        point_count += item_points;
        group.push(message);
    }
    if !group.is_empty() {
        let items_in = group.len();
        chunks.push((
            Chunk {
                body: encode(group),
                items: items_in,
            },
            start..items.len(),
        ));
    }
    chunks
}

/// Series payload bodies under the series limits.
pub(crate) fn series_chunks(
    series: &[Serie],
    limits: &Limits,
    dropped: &mut Dropped,
) -> Vec<(Chunk, Range<usize>)> {
    chunk_by_size(
        series,
        series_message,
        |serie| serie.points.len(),
        limits.series_uncompressed,
        Some(limits.series_points),
        |series| MetricPayload { series }.encode_to_vec(),
        dropped,
    )
}

/// Sketch payload bodies under the generic limits.
pub(crate) fn sketch_chunks(
    sketches: &[SketchSerie],
    limits: &Limits,
    dropped: &mut Dropped,
) -> Vec<(Chunk, Range<usize>)> {
    chunk_by_size(
        sketches,
        sketch_message,
        |_| 0,
        // Room for the (empty) CommonMetadata field.
        limits.other_uncompressed.saturating_sub(16),
        None,
        |sketches| {
            SketchPayload {
                sketches,
                metadata: Some(CommonMetadata::default()),
            }
            .encode_to_vec()
        },
        dropped,
    )
}
