//! Arbitrary bytes, split at arbitrary points, into `spdyframe::FrameParser`: it must never
//! panic, every chunk must be consumed unless an error stops it, data pieces must stay within
//! their frame, and the header blocks it yields go through a `HeaderInflater` as a tap would.
//!
//! The first byte chooses the split size (1 to 256 bytes; 0 means one chunk), the second the
//! control-frame limit, so small limits and tiny splits are both explored.

#![no_main]

use libfuzzer_sys::fuzz_target;
use spdyframe::{Event, FrameParser, HeaderInflater, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&[split, limit], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = if split == 0 {
        stream.len().max(1)
    } else {
        usize::from(split)
    };
    let limits = Limits {
        max_control_payload: u32::from(limit) * 64,
    };
    let mut parser = FrameParser::new(limits);
    let mut inflater = HeaderInflater::new(4096);
    let mut fed = 0usize;
    let mut reported = 0usize;
    'chunks: for mut chunk in stream.chunks(split) {
        fed += chunk.len();
        loop {
            match parser.next_event(&mut chunk) {
                Ok(Some(Event::Data {
                    bytes,
                    frame_start,
                    frame_end,
                    ..
                })) => {
                    assert!(!bytes.is_empty() || (frame_start && frame_end));
                    reported += bytes.len();
                }
                Ok(Some(Event::Control(frame))) => {
                    if let Some(block) = frame.header_block() {
                        let _ = inflater.inflate(block);
                    }
                    let _ = frame.settings_entries().map(Iterator::count);
                }
                Ok(None) => {
                    assert!(chunk.is_empty());
                    break;
                }
                Err(_) => {
                    assert!(parser.next_event(&mut chunk).is_err());
                    break 'chunks;
                }
            }
        }
    }
    assert!(reported <= fed);
});
