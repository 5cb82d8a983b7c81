//! HTTP long-polling compression (Node's `httpCompression`): a poll's body at or above
//! a threshold is sent gzip- or deflate-encoded when the request accepts either, gzip
//! first, as engine.io chooses. Brotli too, for the client files Node's socket.io
//! serves compressed that way.

use std::io::Write;

use bytes::Bytes;
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use http::HeaderMap;

/// A `Content-Encoding` nsbox writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `br`.
    Brotli,
    /// `gzip`.
    Gzip,
    /// `deflate` (zlib-wrapped, as Node writes it).
    Deflate,
}

impl Encoding {
    /// Its name in `Accept-Encoding` and `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        }
    }

    /// The encoding a request accepts among gzip and deflate (what engine.io offers).
    pub(crate) fn accepted(headers: &HeaderMap) -> Option<Encoding> {
        Encoding::accepted_among(headers, &[Encoding::Gzip, Encoding::Deflate])
    }

    /// The encoding of `offered` a request accepts, by its `Accept-Encoding`, chosen as
    /// Node's `accepts`/`negotiator` choose: for each, its most specific entry (its name
    /// over `*`); then the higher quality, the more specific, the one listed first, the
    /// one offered first. None when it accepts none (or sends no header).
    pub fn accepted_among(headers: &HeaderMap, offered: &[Encoding]) -> Option<Encoding> {
        // (name, quality, position) of each entry.
        let entries: Vec<(String, f32, usize)> = headers
            .get_all(http::header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .enumerate()
            .filter_map(|(position, item)| {
                let mut parts = item.split(';');
                let name = parts.next()?.trim().to_ascii_lowercase();
                let quality = match parts.find_map(|p| p.trim().strip_prefix("q=")) {
                    Some(q) => q.trim().parse::<f32>().ok()?,
                    None => 1.0,
                };
                (!name.is_empty()).then_some((name, quality, position))
            })
            .collect();
        // (quality, specificity, position, server order) of each encoding's best entry.
        let mut ranked: Vec<(f32, u8, usize, usize, Encoding)> = offered
            .iter()
            .copied()
            .enumerate()
            .filter_map(|(order, encoding)| {
                entries
                    .iter()
                    .filter_map(|(name, q, position)| match name.as_str() {
                        n if n == encoding.name() => Some((*q, 1u8, *position)),
                        "*" => Some((*q, 0u8, *position)),
                        _ => None,
                    })
                    .max_by(|a, b| a.1.cmp(&b.1).then(a.0.total_cmp(&b.0)).then(a.2.cmp(&b.2)))
                    .map(|(q, s, position)| (q, s, position, order, encoding))
            })
            .filter(|(q, ..)| *q > 0.0)
            .collect();
        ranked.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(b.1.cmp(&a.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        ranked.first().map(|ranked| ranked.4)
    }

    /// `body` encoded (zlib's default level, Brotli's highest quality, as Node's).
    pub fn encode(self, body: &[u8]) -> Bytes {
        let out = Vec::with_capacity(body.len() / 2);
        // Writing to a Vec cannot fail.
        let encoded = match self {
            Encoding::Brotli => {
                // Node's defaults: quality 11, a window of 2^22.
                let mut encoder = brotli::CompressorWriter::new(out, 4096, 11, 22);
                let _ = encoder.write_all(body);
                Ok(encoder.into_inner())
            }
            Encoding::Gzip => {
                let mut encoder = GzEncoder::new(out, Compression::default());
                let _ = encoder.write_all(body);
                encoder.finish()
            }
            Encoding::Deflate => {
                let mut encoder = ZlibEncoder::new(out, Compression::default());
                let _ = encoder.write_all(body);
                encoder.finish()
            }
        };
        Bytes::from(encoded.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::{GzDecoder, ZlibDecoder};
    use std::io::Read;

    fn accepted(value: &str) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::ACCEPT_ENCODING,
            value.parse().expect("a header value"),
        );
        Encoding::accepted(&headers)
    }

    #[test]
    fn the_request_chooses_gzip_first_then_deflate_by_quality() {
        assert_eq!(Encoding::accepted(&HeaderMap::new()), None);
        assert_eq!(accepted("gzip, deflate, br"), Some(Encoding::Gzip));
        assert_eq!(accepted("deflate, gzip"), Some(Encoding::Deflate));
        assert_eq!(accepted("deflate"), Some(Encoding::Deflate));
        assert_eq!(accepted("gzip;q=0.5, deflate"), Some(Encoding::Deflate));
        assert_eq!(accepted("gzip;q=0, deflate;q=0"), None);
        assert_eq!(accepted("identity"), None);
        assert_eq!(accepted("br, *"), Some(Encoding::Gzip));
        assert_eq!(accepted("gzip;q=0.5, *"), Some(Encoding::Deflate));
        assert_eq!(accepted("*;q=0"), None);
        assert_eq!(accepted("GZIP;q=bad"), None);
    }

    #[test]
    fn what_is_encoded_decodes_back() {
        let body = "4hello".repeat(500);
        let mut out = String::new();
        GzDecoder::new(&Encoding::Gzip.encode(body.as_bytes())[..])
            .read_to_string(&mut out)
            .expect("gzip");
        assert_eq!(out, body);
        out.clear();
        ZlibDecoder::new(&Encoding::Deflate.encode(body.as_bytes())[..])
            .read_to_string(&mut out)
            .expect("deflate");
        assert_eq!(out, body);
    }
}
