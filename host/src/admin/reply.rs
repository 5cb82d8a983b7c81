//! JSON answers and errors of the admin API.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::Stream;
use http::{header, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};

/// An answer of the admin API: whole, or streamed (server-sent events).
pub type Reply = Response<UnsyncBoxBody<Bytes, Infallible>>;

fn whole(body: impl Into<Bytes>) -> Reply {
    Response::new(Full::new(body.into()).boxed_unsync())
}

/// A JSON answer.
pub fn json(status: StatusCode, body: Value) -> Reply {
    let mut response = whole(body.to_string());
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
    let mut response = whole(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// A stream of server-sent events (`text/event-stream`), each item one whole event.
pub fn events(stream: impl Stream<Item = Bytes> + Send + 'static) -> Reply {
    use futures_util::StreamExt;
    let body = StreamBody::new(stream.map(|event| Ok::<_, Infallible>(Frame::data(event))));
    let mut response = Response::new(BodyExt::boxed_unsync(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}
