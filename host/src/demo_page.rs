//! The demo page a newcomer meets at `/` of the public listener: the embedded example
//! tenants (the `acme` chat, the `t1` echo) through the official client that this
//! server serves itself, so it works on a machine with no network beyond it.

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::Full;

/// The page (`host/demo/index.html`): everything it shows from tenants and other
/// visitors is set as text, never as markup.
const PAGE: &str = include_str!("../demo/index.html");

/// The page, with a policy that lets it run only its own scripts and reach only this
/// server.
pub fn page() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:",
        ),
    );
    response
}
