//! Errors that reach the wire, and the one place each is mapped to what the client sees.

use http::StatusCode;

/// A request the Engine.IO endpoint refuses, with the code and message Node's engine.io sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// `transport` missing, unknown or disabled.
    #[error("Transport unknown")]
    UnknownTransport,
    /// `sid` names no live session.
    #[error("Session ID unknown")]
    UnknownSid,
    /// A handshake that is not a GET.
    #[error("Bad handshake method")]
    BadHandshakeMethod,
    /// Anything else that is wrong with the request.
    #[error("Bad request")]
    BadRequest,
    /// `EIO` missing or not `4`.
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion,
    /// A polling body larger than `maxPayload`.
    #[error("Payload too large")]
    PayloadTooLarge,
    /// A polling body that did not all arrive within the body timeout.
    #[error("Request timeout")]
    BodyTimeout,
}

impl HttpError {
    /// The numeric code of Node's engine.io for this error.
    pub fn code(self) -> u8 {
        match self {
            HttpError::UnknownTransport => 0,
            HttpError::UnknownSid => 1,
            HttpError::BadHandshakeMethod => 2,
            HttpError::BadRequest | HttpError::PayloadTooLarge | HttpError::BodyTimeout => 3,
            HttpError::UnsupportedProtocolVersion => 5,
        }
    }

    /// The HTTP status: 413 for an oversized body, 408 for a late one (Node's HTTP
    /// server's `requestTimeout` answer), 400 for all the rest (as Node).
    pub fn status(self) -> StatusCode {
        match self {
            HttpError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON body: `{"code":N,"message":"..."}`.
    pub fn body(self) -> String {
        serde_json::json!({ "code": self.code(), "message": self.to_string() }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_node() {
        assert_eq!(
            HttpError::UnsupportedProtocolVersion.body(),
            r#"{"code":5,"message":"Unsupported protocol version"}"#
        );
        assert_eq!(
            HttpError::UnknownTransport.body(),
            r#"{"code":0,"message":"Transport unknown"}"#
        );
        assert_eq!(
            HttpError::BadHandshakeMethod.body(),
            r#"{"code":2,"message":"Bad handshake method"}"#
        );
        assert_eq!(
            HttpError::UnknownSid.body(),
            r#"{"code":1,"message":"Session ID unknown"}"#
        );
        assert_eq!(
            HttpError::PayloadTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
