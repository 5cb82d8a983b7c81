//! The console: one page on the admin listener (`/`) for operators and tenant authors,
//! over the admin API alone. Its files are compiled in; nothing builds them.

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::{BodyExt, Full};

use super::reply::Reply;

const PAGE: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/console.js");
const STYLE: &str = include_str!("../../console/console.css");

/// What the page may do: run its own script and style only (no inline script, so text a
/// tenant controls could not run even if it reached the page as markup), and talk to
/// this listener only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The console's file at `path` (the request path's segments), if it is one.
pub fn asset(path: &[&str]) -> Option<Reply> {
    let (body, kind) = match path {
        [""] => (PAGE, "text/html; charset=utf-8"),
        ["console.js"] => (SCRIPT, "text/javascript; charset=utf-8"),
        ["console.css"] => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(response)
}
