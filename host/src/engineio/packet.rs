//! Engine.IO v4 packets: pure encode/decode, no IO.
//!
//! A text packet is one ASCII digit (the type) followed by its data; a binary
//! packet is raw bytes on WebSocket and `b<base64>` inside a polling payload.

use base64::Engine as _;
use bytes::Bytes;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0{json}`: the handshake, sent by the server only.
    Open(String),
    /// `1`: either side closes the session.
    Close,
    /// `2`: heartbeat ping (server-initiated in v4; clients may send it too).
    Ping,
    /// `3`: answer to a ping.
    Pong,
    /// `2probe`: the client tests a new WebSocket during an upgrade.
    PingProbe,
    /// `3probe`: the server's answer to a probe.
    PongProbe,
    /// `4<text>`: a text message for the layer above.
    Message(String),
    /// A `4<text>` message already in its text form, `4` included, in a buffer that
    /// cloning shares: one encoding serves every recipient of a broadcast, and the
    /// WebSocket sends it as it is. Only sent, never decoded.
    Encoded(Utf8Bytes),
    /// A binary message for the layer above.
    Binary(Bytes),
    /// `5`: the client completes an upgrade.
    Upgrade,
    /// `6`: does nothing; used to release a pending long-poll.
    Noop,
}

/// Why an Engine.IO packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet was empty.
    #[error("empty packet")]
    Empty,
    /// The first character is not a known packet type.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// A `b` packet whose base64 does not decode.
    #[error("invalid base64 in binary packet")]
    Base64,
}

impl Packet {
    /// Decodes a text packet (a WebSocket text frame, or one record of a polling payload
    /// that does not start with `b`).
    pub fn decode_text(text: &str) -> Result<Packet, DecodeError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(DecodeError::Empty)?;
        let data = chars.as_str();
        Ok(match kind {
            '0' => Packet::Open(data.to_owned()),
            '1' => Packet::Close,
            '2' if data == "probe" => Packet::PingProbe,
            '2' => Packet::Ping,
            '3' if data == "probe" => Packet::PongProbe,
            '3' => Packet::Pong,
            '4' => Packet::Message(data.to_owned()),
            '5' => Packet::Upgrade,
            '6' => Packet::Noop,
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// Decodes one record of a polling payload: `b<base64>` or a text packet.
    pub fn decode_polling_record(record: &str) -> Result<Packet, DecodeError> {
        match record.strip_prefix('b') {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(|bytes| Packet::Binary(Bytes::from(bytes)))
                .map_err(|_| DecodeError::Base64),
            None => Packet::decode_text(record),
        }
    }

    /// Encodes this packet as text; binary packets become `b<base64>`, as polling carries them.
    pub fn encode_text(&self, out: &mut String) {
        match self {
            Packet::Open(json) => {
                out.push('0');
                out.push_str(json);
            }
            Packet::Close => out.push('1'),
            Packet::Ping => out.push('2'),
            Packet::Pong => out.push('3'),
            Packet::PingProbe => out.push_str("2probe"),
            Packet::PongProbe => out.push_str("3probe"),
            Packet::Message(text) => {
                out.push('4');
                out.push_str(text);
            }
            Packet::Encoded(text) => out.push_str(text),
            Packet::Binary(bytes) => {
                out.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
            }
            Packet::Upgrade => out.push('5'),
            Packet::Noop => out.push('6'),
        }
    }

    /// A message whose text `write` writes (and returns what else it made): written
    /// once, straight into the buffer that is sent, after the `4`; `capacity` is about
    /// what it will write.
    pub fn message_with<R>(capacity: usize, write: impl FnOnce(&mut String) -> R) -> (Packet, R) {
        let mut text = String::with_capacity(capacity.saturating_add(1));
        text.push('4');
        let made = write(&mut text);
        // A buffer its text fills becomes the message's without another allocation (a
        // partly filled one needs a shared header); shrinking is in place when the
        // estimate was close.
        text.shrink_to_fit();
        (Packet::Encoded(Utf8Bytes::from(text)), made)
    }

    /// Encodes this packet on its own, as text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.encode_text(&mut out);
        out
    }

    /// Roughly how many bytes the text encoding takes; used to size buffers and to bound
    /// a session's queue. Never 0: a session has nothing queued exactly when its queued
    /// bytes are 0.
    pub fn size_hint(&self) -> usize {
        match self {
            Packet::Open(text) | Packet::Message(text) => text.len() + 1,
            Packet::Encoded(text) => text.len().max(1),
            Packet::Binary(bytes) => bytes.len() * 4 / 3 + 4,
            Packet::PingProbe | Packet::PongProbe => 6,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_packet_counts_at_least_one_byte_toward_its_queue() {
        let empty = [
            Packet::Message(String::new()),
            Packet::Encoded(Utf8Bytes::default()),
            Packet::Binary(Bytes::new()),
            Packet::Noop,
        ];
        for packet in empty {
            assert!(packet.size_hint() >= 1, "{packet:?}");
        }
    }

    #[test]
    fn a_message_written_in_place_encodes_like_a_message() {
        let (shared, made) = Packet::message_with(8, |out| {
            out.push_str("2[\"hi\"]");
            7
        });
        assert_eq!(made, 7);
        let plain = Packet::Message("2[\"hi\"]".into());
        assert_eq!(shared.to_text(), plain.to_text());
        assert_eq!(shared.size_hint(), plain.size_hint());
        // Clones share the one buffer.
        let (Packet::Encoded(a), Packet::Encoded(b)) = (&shared, &shared.clone()) else {
            panic!("expected encoded messages");
        };
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr());
    }

    #[test]
    fn decodes_every_text_type() {
        let cases = [
            ("0{}", Packet::Open("{}".into())),
            ("1", Packet::Close),
            ("2", Packet::Ping),
            ("2probe", Packet::PingProbe),
            ("3", Packet::Pong),
            ("3probe", Packet::PongProbe),
            ("4hello", Packet::Message("hello".into())),
            ("4", Packet::Message(String::new())),
            ("5", Packet::Upgrade),
            ("6", Packet::Noop),
        ];
        for (text, packet) in cases {
            assert_eq!(Packet::decode_text(text), Ok(packet.clone()), "{text}");
            assert_eq!(packet.to_text(), text);
        }
    }

    #[test]
    fn rejects_malformed_text() {
        assert_eq!(Packet::decode_text(""), Err(DecodeError::Empty));
        assert_eq!(
            Packet::decode_text("abc"),
            Err(DecodeError::UnknownType('a'))
        );
        assert_eq!(Packet::decode_text("7"), Err(DecodeError::UnknownType('7')));
        assert_eq!(Packet::decode_text("é"), Err(DecodeError::UnknownType('é')));
    }

    #[test]
    fn binary_round_trips_as_base64() {
        let packet = Packet::Binary(Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(packet.to_text(), "bAQIDBA==");
        assert_eq!(Packet::decode_polling_record("bAQIDBA=="), Ok(packet));
        assert_eq!(
            Packet::decode_polling_record("b!!"),
            Err(DecodeError::Base64)
        );
        assert_eq!(
            Packet::decode_polling_record("b"),
            Ok(Packet::Binary(Bytes::new()))
        );
    }

    #[test]
    fn message_keeps_unicode() {
        let packet = Packet::decode_text("4héllo €").expect("valid");
        assert_eq!(packet, Packet::Message("héllo €".into()));
        assert_eq!(packet.to_text(), "4héllo €");
    }
}
