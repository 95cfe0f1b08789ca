//! The WebSocket frame parser on arbitrary bytes, split into reads of an arbitrary size: it
//! must never panic, must keep its event invariants, and must stay poisoned after an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsframe::{unmask, Event, FrameError, FrameParser, Limits, MAX_CONTROL_PAYLOAD};

fuzz_target!(|data: &[u8]| {
    // Byte 0: the read size and the limit; the rest is the stream.
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let read = usize::from(control & 0x7F) + 1;
    let max_payload = if control & 0x80 == 0 {
        1 << 16
    } else {
        u64::MAX
    };
    let mut parser = FrameParser::new(Limits { max_payload });
    // The open frame: its header and how much of its payload has been reported.
    let mut open: Option<(wsframe::FrameHeader, u64)> = None;
    for mut chunk in stream.chunks(read) {
        loop {
            match parser.next_event(&mut chunk) {
                Ok(Some(Event::FrameStart(header))) => {
                    assert!(open.is_none(), "frame start inside a frame");
                    assert_eq!(header.rsv, 0);
                    assert!(header.payload_len <= max_payload);
                    if header.opcode.is_control() {
                        assert!(header.fin && header.payload_len <= MAX_CONTROL_PAYLOAD as u64);
                    }
                    open = Some((header, 0));
                }
                Ok(Some(Event::Payload { bytes, offset })) => {
                    let (header, seen) = open.as_mut().expect("payload outside a frame");
                    assert!(!bytes.is_empty());
                    assert_eq!(offset, *seen);
                    *seen += bytes.len() as u64;
                    assert!(*seen <= header.payload_len);
                    if let Some(mask) = header.mask {
                        let mut copy = bytes.to_vec();
                        unmask(&mut copy, mask, offset);
                    }
                }
                Ok(Some(Event::FrameEnd)) => {
                    let (header, seen) = open.take().expect("frame end outside a frame");
                    assert_eq!(seen, header.payload_len);
                }
                Ok(None) => {
                    assert!(chunk.is_empty(), "input left unread");
                    break;
                }
                Err(_) => {
                    assert_eq!(parser.next_event(&mut chunk), Err(FrameError::Poisoned));
                    return;
                }
            }
        }
    }
});
