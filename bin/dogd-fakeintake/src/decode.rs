//! Turning a request body into JSON: decompress by `Content-Encoding`, then decode the protobuf
//! (series, sketches) or parse the JSON (check runs, events).

use std::io::Read;

use dogd_proto::datadog::agentpayload::metric_payload::{MetricSeries, MetricType};
use dogd_proto::datadog::agentpayload::sketch_payload::Sketch;
use dogd_proto::datadog::agentpayload::{Metadata, MetricPayload, SketchPayload};
use prost::Message as _;
use serde_json::{Value, json};

/// The intake endpoints the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `POST /api/v2/series` (protobuf `MetricPayload`).
    Series,
    /// `POST /api/beta/sketches` (protobuf `SketchPayload`).
    Sketches,
    /// `POST /api/v1/check_run` (JSON service checks).
    CheckRun,
    /// `POST /intake/` (JSON events).
    Events,
}

impl Kind {
    /// Every endpoint.
    pub const ALL: [Kind; 4] = [Kind::Series, Kind::Sketches, Kind::CheckRun, Kind::Events];

    /// The name used in `?endpoint=` and in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Series => "series",
            Kind::Sketches => "sketches",
            Kind::CheckRun => "check_run",
            Kind::Events => "events",
        }
    }

    /// The endpoint called `name` (`series`, `sketches`, `check_run`, `events`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Series => "/api/v2/series",
            Kind::Sketches => "/api/beta/sketches",
            Kind::CheckRun => "/api/v1/check_run",
            Kind::Events => "/intake/",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Kind::Series | Kind::Sketches => "application/x-protobuf",
            Kind::CheckRun | Kind::Events => "application/json",
        }
    }
}

/// Decompresses `body` as `encoding` says, refusing more than `limit` bytes of output.
pub(crate) fn decompress(
    encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, String> {
    let encoding = encoding.map(|value| value.trim().to_ascii_lowercase());
    let reader: Box<dyn Read + '_> = match encoding.as_deref() {
        None | Some("" | "identity") => {
            if body.len() > limit {
                return Err(format!("body larger than {limit} bytes"));
            }
            return Ok(body.to_vec());
        }
        Some("zstd") => Box::new(
            zstd::stream::read::Decoder::new(body)
                .map_err(|error| format!("zstd: cannot start decoding: {error}"))?,
        ),
        // HTTP's `deflate` is zlib framing (RFC 1950), which is what the agent sends; raw deflate
        // is refused so that a serializer emitting it is caught here rather than at the intake.
        Some("deflate") => Box::new(flate2::read::ZlibDecoder::new(body)),
        Some("gzip") => Box::new(flate2::read::GzDecoder::new(body)),
        Some(other) => {
            return Err(format!(
                "unsupported Content-Encoding {other:?} (expected zstd, deflate, gzip or none)"
            ));
        }
    };
    let name = encoding.as_deref().unwrap_or("identity");
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| format!("{name}: cannot decompress the body: {error}"))?;
    if out.len() > limit {
        return Err(format!(
            "{name}: the body decompresses to more than {limit} bytes"
        ));
    }
    Ok(out)
}

/// Checks the media type (parameters such as `charset` ignored).
pub(crate) fn check_content_type(kind: Kind, content_type: Option<&str>) -> Result<(), String> {
    let media = content_type
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if media == kind.content_type() {
        Ok(())
    } else {
        Err(format!(
            "Content-Type {:?} is not {} (expected for {})",
            content_type.unwrap_or(""),
            kind.content_type(),
            kind.path()
        ))
    }
}

/// Decodes a decompressed payload to JSON.
pub(crate) fn decode(kind: Kind, data: &[u8]) -> Result<Value, String> {
    match kind {
        Kind::Series => {
            let payload = MetricPayload::decode(data)
                .map_err(|error| format!("not a MetricPayload protobuf: {error}"))?;
            Ok(json!({ "series": payload.series.iter().map(series_json).collect::<Vec<_>>() }))
        }
        Kind::Sketches => {
            let payload = SketchPayload::decode(data)
                .map_err(|error| format!("not a SketchPayload protobuf: {error}"))?;
            Ok(json!({ "sketches": payload.sketches.iter().map(sketch_json).collect::<Vec<_>>() }))
        }
        Kind::CheckRun => {
            let value: Value = serde_json::from_slice(data)
                .map_err(|error| format!("check runs are not JSON: {error}"))?;
            if !value.is_array() {
                return Err("check runs must be a JSON array".to_owned());
            }
            Ok(value)
        }
        Kind::Events => {
            let value: Value = serde_json::from_slice(data)
                .map_err(|error| format!("events are not JSON: {error}"))?;
            if !value.is_object() {
                return Err("an events payload must be a JSON object".to_owned());
            }
            Ok(value)
        }
    }
}

fn metric_type_name(value: i32) -> String {
    MetricType::try_from(value).map_or_else(
        |_| format!("unknown({value})"),
        |known| known.as_str_name().to_ascii_lowercase(),
    )
}

fn origin_json(metadata: Option<&Metadata>) -> Value {
    metadata
        .and_then(|metadata| metadata.origin.as_ref())
        .map_or(Value::Null, |origin| {
            json!({
                "product": origin.origin_product,
                "category": origin.origin_category,
                "service": origin.origin_service,
            })
        })
}

fn series_json(series: &MetricSeries) -> Value {
    let host = series
        .resources
        .iter()
        .find(|resource| resource.r#type == "host")
        .map(|resource| resource.name.clone());
    json!({
        "metric": series.metric,
        "type": metric_type_name(series.r#type),
        "interval": series.interval,
        "tags": series.tags,
        "host": host,
        "resources": series
            .resources
            .iter()
            .map(|resource| json!({ "type": resource.r#type, "name": resource.name }))
            .collect::<Vec<_>>(),
        "points": series
            .points
            .iter()
            .map(|point| json!([point.timestamp, point.value]))
            .collect::<Vec<_>>(),
        "unit": series.unit,
        "source_type_name": series.source_type_name,
        "origin": origin_json(series.metadata.as_ref()),
    })
}

fn sketch_json(sketch: &Sketch) -> Value {
    json!({
        "metric": sketch.metric,
        "host": sketch.host,
        "tags": sketch.tags,
        "dogsketches": sketch
            .dogsketches
            .iter()
            .map(|dog| {
                json!({
                    "ts": dog.ts,
                    "cnt": dog.cnt,
                    "min": dog.min,
                    "max": dog.max,
                    "avg": dog.avg,
                    "sum": dog.sum,
                    "k": dog.k,
                    "n": dog.n,
                })
            })
            .collect::<Vec<_>>(),
        "legacy_distributions": sketch.distributions.len(),
        "origin": origin_json(sketch.metadata.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn every_supported_encoding_round_trips() {
        let data = b"{\"events\":{}}".repeat(10);
        let zstd = zstd::encode_all(&data[..], 1).expect("zstd");
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&data).expect("zlib");
        let zlib = zlib.finish().expect("zlib");
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&data).expect("gzip");
        let gzip = gzip.finish().expect("gzip");
        for (encoding, body) in [
            (Some("zstd"), &zstd),
            (Some("deflate"), &zlib),
            (Some("gzip"), &gzip),
            (None, &data),
        ] {
            assert_eq!(decompress(encoding, body, 1 << 20).expect("decodes"), data);
        }
    }

    #[test]
    fn raw_deflate_and_bombs_are_refused() {
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"hello").expect("deflate");
        let raw = raw.finish().expect("deflate");
        assert!(decompress(Some("deflate"), &raw, 1024).is_err());
        let bomb = zstd::encode_all(&vec![0u8; 10_000][..], 3).expect("zstd");
        let error = decompress(Some("zstd"), &bomb, 1000).expect_err("too big");
        assert!(error.contains("more than 1000 bytes"), "{error}");
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        assert!(check_content_type(Kind::Events, Some("application/json; charset=utf-8")).is_ok());
        assert!(check_content_type(Kind::Series, Some("application/json")).is_err());
        assert!(check_content_type(Kind::Series, None).is_err());
    }
}
