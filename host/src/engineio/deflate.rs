//! WebSocket `permessage-deflate` (RFC 7692), as Node's `ws` offers it to engine.io's
//! `perMessageDeflate`: the offer is agreed here, and a connection that agreed runs on
//! `yawc` (tungstenite refuses compressed frames), behind the same `Message` stream and
//! sink as an uncompressed one so the transport is written once.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use http::HeaderMap;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use yawc::frame::{Frame, OpCode};
use yawc::{close::CloseCode, WebSocketError};

/// The extension's name in `Sec-WebSocket-Extensions`.
const NAME: &str = "permessage-deflate";

/// Why the client's `Sec-WebSocket-Extensions` cannot be agreed to; `ws` answers such a
/// handshake `400`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadOffer;

/// The `permessage-deflate` answer to the client's offers, or `None` when it made none
/// that nsbox can honour (the connection then goes on uncompressed). As `ws` answers:
/// the first acceptable offer, its parameters in their order, without a
/// `client_max_window_bits` that carries no value. Offers asking the server for a window
/// under 15 bits are passed over: the deflate nsbox uses (miniz_oxide) has only that
/// one (browsers and `ws` ask for none).
pub(crate) fn agree(headers: &HeaderMap) -> Result<Option<String>, BadOffer> {
    let mut agreed = None;
    for value in headers.get_all(http::header::SEC_WEBSOCKET_EXTENSIONS) {
        let value = value.to_str().map_err(|_| BadOffer)?;
        for offer in value.split(',') {
            let mut parts = offer.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(BadOffer);
            }
            if name != NAME {
                continue;
            }
            // Every offer is checked (`ws` refuses a handshake with any invalid one).
            let answer = answer(parts)?;
            if agreed.is_none() {
                agreed = answer;
            }
        }
    }
    Ok(agreed)
}

/// The answer to one offer, given its parameters: `None` when it is valid but asks for
/// a server window nsbox cannot keep to.
fn answer<'a>(params: impl Iterator<Item = &'a str>) -> Result<Option<String>, BadOffer> {
    let mut answer = NAME.to_owned();
    let mut seen: Vec<&str> = Vec::new();
    let mut acceptable = true;
    for param in params {
        let (key, value) = match param.split_once('=') {
            Some((key, value)) => (key.trim(), Some(unquote(value.trim())?)),
            None => (param, None),
        };
        if seen.contains(&key) {
            return Err(BadOffer);
        }
        seen.push(key);
        match (key, value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {
                answer.push_str("; ");
                answer.push_str(key);
            }
            ("client_max_window_bits", None) => {}
            ("server_max_window_bits" | "client_max_window_bits", Some(bits)) => {
                let bits = window_bits(bits)?;
                if key == "server_max_window_bits" && bits < 15 {
                    acceptable = false;
                }
                answer.push_str(&format!("; {key}={bits}"));
            }
            _ => return Err(BadOffer),
        }
    }
    Ok(acceptable.then_some(answer))
}

fn unquote(value: &str) -> Result<&str, BadOffer> {
    match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').ok_or(BadOffer),
        None => Ok(value),
    }
}

/// A window size as RFC 7692 allows it: 8 to 15, digits only.
fn window_bits(value: &str) -> Result<u8, BadOffer> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadOffer);
    }
    match value.parse::<u8>() {
        Ok(bits @ 8..=15) => Ok(bits),
        _ => Err(BadOffer),
    }
}

/// A WebSocket that agreed to `permessage-deflate`, seen as tungstenite's messages.
pub(crate) struct Deflated<S>(pub(crate) yawc::WebSocket<S>);

impl<S> Deflated<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    /// Wraps `io`, whose handshake agreed to `extension` (the answer of [`agree`]).
    /// Messages of at least `threshold` bytes are sent compressed; a message that
    /// inflates past `max_payload` is a capacity error, as an oversized one is.
    pub(crate) fn new(
        io: S,
        extension: &str,
        threshold: usize,
        max_payload: usize,
    ) -> Result<Self, WebSocketError> {
        // yawc's limits are exclusive; `maxPayload` itself is allowed, as in `ws`. They
        // bound a frame, what it inflates to, and a message of many fragments.
        let limit = max_payload.saturating_add(1);
        let options = yawc::Options::default()
            .with_compression_threshold(threshold)
            .with_max_payload_read(limit)
            .with_max_read_buffer(limit)
            .with_utf8();
        let ws = yawc::WebSocket::from_stream_with_extensions(
            io,
            yawc::Role::Server,
            Some(extension),
            options,
        )?;
        Ok(Deflated(ws))
    }
}

fn to_message(frame: Frame) -> Result<Option<Message>, WsError> {
    let (opcode, _, payload) = frame.into_parts();
    Ok(Some(match opcode {
        OpCode::Text => {
            Message::Text(Utf8Bytes::try_from(payload).map_err(|_| WsError::Utf8(String::new()))?)
        }
        OpCode::Binary => Message::Binary(payload),
        OpCode::Ping => Message::Ping(payload),
        OpCode::Pong => Message::Pong(payload),
        OpCode::Close => Message::Close(None),
        OpCode::Continuation => return Ok(None),
    }))
}

fn to_frame(message: Message) -> Frame {
    match message {
        Message::Text(text) => Frame::text(Bytes::from(text)),
        Message::Binary(data) => Frame::binary(data),
        Message::Ping(data) => Frame::ping(data),
        Message::Pong(data) => Frame::pong(data),
        Message::Close(Some(close)) => Frame::close(
            CloseCode::from(u16::from(close.code)),
            close.reason.as_bytes(),
        ),
        Message::Close(None) | Message::Frame(_) => Frame::close(CloseCode::Normal, b""),
    }
}

fn to_ws_error(error: WebSocketError) -> WsError {
    match error {
        WebSocketError::FrameTooLarge => WsError::Capacity(CapacityError::MessageTooLong {
            size: 0,
            max_size: 0,
        }),
        WebSocketError::ConnectionClosed => WsError::ConnectionClosed,
        WebSocketError::IoError(error) => WsError::Io(error),
        _ => WsError::Protocol(ProtocolError::InvalidOpcode(0)),
    }
}

impl<S> Stream for Deflated<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    type Item = Result<Message, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            return Poll::Ready(match ready!(this.0.poll_next_frame(cx)) {
                Ok(frame) => match to_message(frame) {
                    Ok(Some(message)) => Some(Ok(message)),
                    Ok(None) => continue,
                    Err(error) => Some(Err(error)),
                },
                Err(WebSocketError::ConnectionClosed) => None,
                Err(error) => Some(Err(to_ws_error(error))),
            });
        }
    }
}

impl<S> Sink<Message> for Deflated<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().0)
            .poll_ready(cx)
            .map_err(to_ws_error)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), WsError> {
        Pin::new(&mut self.get_mut().0)
            .start_send(to_frame(message))
            .map_err(to_ws_error)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().0)
            .poll_flush(cx)
            .map_err(to_ws_error)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.get_mut().0)
            .poll_close(cx)
            .map_err(to_ws_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(values: &[&str]) -> Result<Option<String>, BadOffer> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                http::header::SEC_WEBSOCKET_EXTENSIONS,
                value.parse().expect("a header value"),
            );
        }
        agree(&headers)
    }

    #[test]
    fn answers_as_ws_does() {
        // What browsers and Node's `ws` client offer.
        assert_eq!(
            offered(&["permessage-deflate; client_max_window_bits"]),
            Ok(Some("permessage-deflate".to_owned()))
        );
        assert_eq!(offered(&[]), Ok(None));
        assert_eq!(offered(&["x-webkit-deflate-frame"]), Ok(None));
        assert_eq!(
            offered(&[
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=\"10\""
            ]),
            Ok(Some(
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
                    .to_owned()
            ))
        );
        // The first offer nsbox can keep to; one asking for a smaller server window is passed over.
        assert_eq!(
            offered(&["permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=15"]),
            Ok(Some("permessage-deflate; server_max_window_bits=15".to_owned()))
        );
        assert_eq!(
            offered(&["permessage-deflate; server_max_window_bits=10"]),
            Ok(None)
        );
    }

    #[test]
    fn refuses_what_ws_refuses() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=1x",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; unknown",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate, permessage-deflate; bogus",
            "; permessage-deflate",
        ] {
            assert_eq!(offered(&[bad]), Err(BadOffer), "{bad}");
        }
    }
}
