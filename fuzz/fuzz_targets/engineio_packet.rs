//! Any text decodes to a packet or an error, never a panic; a decoded packet re-encodes to
//! something that decodes to the same packet.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsbox::engineio::packet::Packet;

fuzz_target!(|text: &str| {
    if let Ok(packet) = Packet::decode_text(text) {
        assert_eq!(Packet::decode_text(&packet.to_text()).ok(), Some(packet));
    }
});
