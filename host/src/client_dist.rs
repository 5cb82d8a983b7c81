//! The official client's browser builds, served as Node's socket.io serves them
//! (`serveClient`): `socket.io.js` and its minified, ESM and msgpack builds with their
//! source maps, under the endpoint's path. They are the `client-dist` files of the npm
//! package `socket.io` 4.8.4, the version `tests/js`'s lockfile pins (copied into
//! `host/client-dist/`; a test checks they are those bytes), so a page can load the
//! client from the server it talks to, with no CDN.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::engineio::Encoding;

/// The package the files come from, whose version is their `ETag`, as in Node.
const VERSION: &str = "4.8.4";

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../client-dist/", $name)))),*]
    };
}

/// The files, by the name they are served under.
const FILES: &[(&str, &[u8])] = files![
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.msgpack.min.js",
    "socket.io.msgpack.min.js.map",
];

/// The encodings a file is sent in, in Node's order of preference.
const ENCODINGS: [Encoding; 3] = [Encoding::Brotli, Encoding::Gzip, Encoding::Deflate];

/// Each file compressed each way, made once when first asked for.
static COMPRESSED: [[OnceLock<Bytes>; ENCODINGS.len()]; FILES.len()] =
    [const { [const { OnceLock::new() }; ENCODINGS.len()] }; FILES.len()];

/// Which file `name` is, if it is one.
pub fn index(name: &str) -> Option<usize> {
    FILES.iter().position(|(file, _)| *file == name)
}

/// The answer to a GET of file `index`, as Node's `serve`: `304` for a matching
/// `If-None-Match` (its version, strong or weak), else `200` with `Cache-Control`,
/// `Content-Type` and `ETag`, compressed as the request accepts (Brotli, gzip or
/// deflate; compressing happens once a file and an encoding, off the async threads).
pub async fn serve(index: usize, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let etag = format!("\"{VERSION}\"");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| given == etag || given.strip_prefix("W/") == Some(&etag));
    if matches {
        let mut response = Response::new(Full::default());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    let (name, bytes) = FILES[index];
    let encoding = Encoding::accepted_among(headers, &ENCODINGS);
    let body = match encoding {
        Some(encoding) => compressed(index, encoding, bytes).await,
        None => Bytes::from_static(bytes),
    };
    let mut response = Response::new(Full::new(body));
    let out = response.headers_mut();
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=0"),
    );
    let kind = if name.ends_with(".map") {
        "application/json; charset=utf-8"
    } else {
        "application/javascript; charset=utf-8"
    };
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, etag);
    }
    if let Some(encoding) = encoding {
        out.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.name()),
        );
    }
    response
}

async fn compressed(index: usize, encoding: Encoding, bytes: &'static [u8]) -> Bytes {
    let Some(slot) = ENCODINGS
        .iter()
        .position(|e| *e == encoding)
        .map(|e| &COMPRESSED[index][e])
    else {
        return Bytes::from_static(bytes);
    };
    if let Some(done) = slot.get() {
        return done.clone();
    }
    let made = tokio::task::spawn_blocking(move || encoding.encode(bytes))
        .await
        .unwrap_or_else(|_| Bytes::from_static(bytes));
    slot.get_or_init(|| made).clone()
}
