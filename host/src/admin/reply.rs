//! JSON answers and errors of the admin API.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// An answer of the admin API.
pub type Reply = Response<Full<Bytes>>;

/// A JSON answer.
pub fn json(status: StatusCode, body: Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// An error: `{"error": {"code": ..., "message": ...}}`.
pub fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Reply {
    let mut response = json(
        status,
        json!({ "error": { "code": code, "message": message.to_string() } }),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Plain text in the Prometheus exposition format.
pub fn text(body: String) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
