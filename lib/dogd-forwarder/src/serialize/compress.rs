//! Payload compression: zstd (the agent's default) or zlib (`Content-Encoding: deflate`, which the
//! intake expects with zlib framing, not raw deflate).

use std::io::Write as _;

/// How payloads are compressed (`serializer_compressor_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// zstd at this level (`serializer_zstd_compressor_level`, default 1).
    Zstd(i32),
    /// zlib.
    Zlib,
}

/// A compressor failed (out of memory, in practice).
#[derive(Debug, thiserror::Error)]
#[error("compression failed: {0}")]
pub struct CompressionError(#[from] std::io::Error);

impl Compression {
    /// From `serializer_compressor_kind` (`zstd` or `zlib`) and the zstd level.
    pub fn from_settings(kind: &str, zstd_level: i32) -> Option<Self> {
        match kind.trim().to_ascii_lowercase().as_str() {
            "zstd" => Some(Self::Zstd(zstd_level)),
            "zlib" | "deflate" => Some(Self::Zlib),
            _ => None,
        }
    }

    /// The `Content-Encoding` header value.
    pub fn content_encoding(self) -> Option<&'static str> {
        Some(match self {
            Self::Zstd(_) => "zstd",
            Self::Zlib => "deflate",
        })
    }

    /// Compresses a whole payload.
    pub fn compress(self, body: &[u8]) -> Result<Vec<u8>, CompressionError> {
        match self {
            Self::Zstd(level) => Ok(zstd::bulk::compress(body, level)?),
            Self::Zlib => {
                let mut encoder = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::default(),
                );
                encoder.write_all(body)?;
                Ok(encoder.finish()?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn both_encodings_round_trip() {
        let body = b"series series series series series".repeat(100);
        let zstd = Compression::Zstd(1).compress(&body).expect("zstd");
        assert_eq!(zstd::stream::decode_all(&zstd[..]).expect("decode"), body);
        let zlib = Compression::Zlib.compress(&body).expect("zlib");
        // zlib framing: a 0x78 header byte, so the intake's deflate reader accepts it.
        assert_eq!(zlib[0], 0x78);
        let mut decoded = Vec::new();
        flate2::read::ZlibDecoder::new(&zlib[..])
            .read_to_end(&mut decoded)
            .expect("inflate");
        assert_eq!(decoded, body);
        assert!(zstd.len() < body.len() && zlib.len() < body.len());
    }

    #[test]
    fn settings_choose_the_encoding() {
        assert_eq!(
            Compression::from_settings("zstd", 3),
            Some(Compression::Zstd(3))
        );
        assert_eq!(
            Compression::from_settings("ZLIB", 1),
            Some(Compression::Zlib)
        );
        assert_eq!(Compression::from_settings("lz4", 1), None);
        assert_eq!(Compression::Zlib.content_encoding(), Some("deflate"));
    }
}
