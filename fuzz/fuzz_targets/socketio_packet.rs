//! Any Socket.IO text decodes or fails cleanly; attaching any number of attachments never
//! panics; a decoded packet re-encodes to one that decodes the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsbox::socketio::packet::{attach, Packet};

fuzz_target!(|input: (&str, u8)| {
    let (text, attachments) = input;
    if let Ok((packet, _)) = Packet::decode(text) {
        let (encoded, _) = packet.encode();
        let again = Packet::decode(&encoded).map(|(p, _)| p);
        assert_eq!(again.as_ref().ok(), Some(&packet), "{encoded}");
        let bins = vec![bytes_of(attachments); attachments as usize % 4];
        let _ = attach(packet, bins);
    }
});

fn bytes_of(n: u8) -> bytes::Bytes {
    bytes::Bytes::from(vec![n; 3])
}
