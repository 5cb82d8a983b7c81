//! Polling payload framing: several packets in one HTTP body, separated by the
//! record separator `\x1e`. Pure, no IO.

use super::packet::{DecodeError, Packet};

/// The byte that separates packets in a polling payload.
pub const SEPARATOR: char = '\x1e';

/// Decodes a POST body into its packets; one bad record makes the whole payload invalid.
pub fn decode(body: &str) -> Result<Vec<Packet>, DecodeError> {
    body.split(SEPARATOR)
        .map(Packet::decode_polling_record)
        .collect()
}

/// Encodes packets as one GET body.
pub fn encode(packets: &[Packet]) -> String {
    let mut out = String::with_capacity(packets.iter().map(|p| p.size_hint() + 1).sum());
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        packet.encode_text(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn several_packets_round_trip() {
        let body = "4test1\x1e4test2\x1ebAQIDBA==";
        let packets = decode(body).expect("valid payload");
        assert_eq!(
            packets,
            vec![
                Packet::Message("test1".into()),
                Packet::Message("test2".into()),
                Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])),
            ]
        );
        assert_eq!(encode(&packets), body);
    }

    #[test]
    fn one_bad_record_fails_the_payload() {
        assert!(decode("4ok\x1eabc").is_err());
        assert!(decode("").is_err());
        assert!(decode("4ok\x1e").is_err());
    }

    #[test]
    fn single_packet_has_no_separator() {
        assert_eq!(encode(&[Packet::Noop]), "6");
        assert_eq!(encode(&[]), "");
    }
}
