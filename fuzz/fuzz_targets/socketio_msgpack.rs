//! Any binary message decodes as a msgpack packet or fails cleanly; what decodes
//! re-encodes to bytes that decode, and from then on the round trip is exact.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsbox::socketio::msgpack::{decode, encode};

fuzz_target!(|input: &[u8]| {
    if let Ok(packet) = decode(input, 10) {
        let settled = decode(&encode(&packet), usize::MAX).expect("its own encoding decodes");
        assert_eq!(decode(&encode(&settled), usize::MAX).ok(), Some(settled));
    }
});
