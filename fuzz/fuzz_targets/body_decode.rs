//! Any body section, gzip on or off: decoding into typed values is an error
//! or a value, never a panic, and gzip never inflates past its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teleport::codec::{Codecs, decode_section, gzip};

fuzz_target!(|data: &[u8]| {
    let codecs = Codecs::default();
    for level in [0, 5] {
        let _ = decode_section::<(u64, String, Vec<String>)>(data, level, &codecs, 1 << 16);
        let _ = decode_section::<String>(data, level, &codecs, 1 << 16);
    }
    if let Ok(out) = gzip::decompress(data, 1 << 16) {
        assert!(out.len() <= 1 << 16);
    }
});
