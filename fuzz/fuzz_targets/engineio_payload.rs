//! Any polling body decodes or fails cleanly; a decoded payload re-encodes losslessly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsbox::engineio::payload;

fuzz_target!(|body: &str| {
    if let Ok(packets) = payload::decode(body) {
        assert_eq!(payload::decode(&payload::encode(&packets)).ok(), Some(packets));
    }
});
