//! Arbitrary bytes into the header-block codec: `HeaderBlock::decode_raw` directly, and
//! `HeaderInflater` as a sequence of compressed blocks of one direction. Neither may panic, and
//! the inflater must respect its cap. A block that decodes must re-encode to the same bytes.
//!
//! The first byte chooses how the rest is cut into blocks (its value is the block size, 0 means
//! one block), so runs of several blocks through one zlib context are explored.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spdyframe::{HeaderBlock, HeaderError, HeaderInflater};

const CAP: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = HeaderBlock::decode_raw(data) {
        let mut raw = Vec::new();
        block.encode_raw(&mut raw);
        assert_eq!(raw, data);
    }

    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let size = if size == 0 {
        rest.len().max(1)
    } else {
        usize::from(size)
    };
    let mut inflater = HeaderInflater::new(CAP);
    for compressed in rest.chunks(size) {
        match inflater.inflate(compressed) {
            Ok(block) => assert!(block.encoded_len() <= CAP),
            Err(HeaderError::Poisoned) => break,
            Err(_) => {}
        }
    }
});
