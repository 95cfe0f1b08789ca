//! The frame parser on hand-picked streams: splits, several frames per read, and every
//! framing error of RFC 6455 section 5 it must refuse.

mod support;

use support::{frames, parse_in_chunks, Owned};
use wsframe::{
    encode_close, encode_frame, encode_ping, encode_pong, unmask, Event, FrameError, FrameHeader,
    FrameParser, Limits, Opcode,
};

fn header(opcode: Opcode, fin: bool, mask: Option<[u8; 4]>) -> FrameHeader {
    FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask,
        payload_len: 0,
    }
}

/// Runs the parser over `wire` in one chunk and returns the first error.
fn first_error(wire: &[u8], limits: Limits) -> (FrameError, Vec<Owned>) {
    let mut parser = FrameParser::new(limits);
    let mut input = wire;
    let mut events = Vec::new();
    loop {
        match parser.next_event(&mut input) {
            Ok(Some(Event::FrameStart(h))) => events.push(Owned::Start(h)),
            Ok(Some(Event::Payload { bytes, offset })) => {
                events.push(Owned::Payload(bytes.to_vec(), offset))
            }
            Ok(Some(Event::FrameEnd)) => events.push(Owned::End),
            Ok(None) => panic!("no error in {wire:?}"),
            Err(err) => {
                // Poisoned from now on.
                assert_eq!(
                    parser.next_event(&mut &[0x81, 0x00][..]),
                    Err(FrameError::Poisoned)
                );
                return (err, events);
            }
        }
    }
}

#[test]
fn several_frames_in_one_chunk() {
    let mut wire = Vec::new();
    encode_frame(&header(Opcode::Text, false, None), b"he", &mut wire);
    encode_ping(b"p", Some([1, 2, 3, 4]), &mut wire);
    encode_frame(&header(Opcode::Continuation, true, None), b"llo", &mut wire);
    encode_frame(&header(Opcode::Binary, true, None), b"", &mut wire);
    encode_pong(b"", None, &mut wire);
    encode_close(Some(1000), "bye", None, &mut wire);

    let events = parse_in_chunks(&wire, &[wire.len()], Limits::default()).expect("valid stream");
    let parsed = frames(&events);
    let kinds: Vec<_> = parsed
        .iter()
        .map(|f| (f.header.opcode, f.header.fin))
        .collect();
    assert_eq!(
        kinds,
        [
            (Opcode::Text, false),
            (Opcode::Ping, true),
            (Opcode::Continuation, true),
            (Opcode::Binary, true),
            (Opcode::Pong, true),
            (Opcode::Close, true),
        ]
    );
    assert_eq!(parsed[0].payload, b"he");
    assert_eq!(parsed[2].payload, b"llo");
    let mut ping = parsed[1].payload.clone();
    unmask(&mut ping, [1, 2, 3, 4], 0);
    assert_eq!(ping, b"p");
    assert_eq!(parsed[5].payload, b"\x03\xe8bye");
    // An empty frame is a start and an end, without a payload piece.
    assert!(events
        .windows(2)
        .any(|w| matches!(w, [Owned::Start(h), Owned::End] if h.opcode == Opcode::Binary)));
}

#[test]
fn a_header_split_at_every_byte() {
    // Headers of 2, 4 and 10 bytes, with and without a 4-byte mask key.
    for len in [5usize, 300, 70_000] {
        for mask in [None, Some([0xde, 0xad, 0xbe, 0xef])] {
            let payload = support::bytes(len, len as u64);
            let mut wire = Vec::new();
            encode_frame(&header(Opcode::Binary, true, mask), &payload, &mut wire);
            let header_len = wire.len() - len;
            let whole = parse_in_chunks(&wire, &[wire.len()], Limits::default()).expect("valid");
            for at in 1..=header_len {
                let split = parse_in_chunks(&wire, &[at, wire.len() - at], Limits::default())
                    .expect("valid");
                assert_eq!(frames(&split), frames(&whole), "split at {at}");
            }
            // One byte at a time through the header, then the rest.
            let mut sizes = vec![1; header_len];
            sizes.push(len);
            assert_eq!(
                frames(&parse_in_chunks(&wire, &sizes, Limits::default()).expect("valid")),
                frames(&whole)
            );
        }
    }
}

#[test]
fn frame_end_comes_without_more_input() {
    let mut wire = Vec::new();
    encode_frame(&header(Opcode::Binary, true, None), b"abc", &mut wire);
    let mut parser = FrameParser::new(Limits::default());
    let mut input = wire.as_slice();
    assert!(matches!(
        parser.next_event(&mut input),
        Ok(Some(Event::FrameStart(_)))
    ));
    assert_eq!(
        parser.next_event(&mut input),
        Ok(Some(Event::Payload {
            bytes: b"abc",
            offset: 0
        }))
    );
    assert!(input.is_empty());
    assert_eq!(parser.next_event(&mut input), Ok(Some(Event::FrameEnd)));
    assert!(parser.is_at_frame_boundary());
    assert_eq!(parser.next_event(&mut input), Ok(None));
}

#[test]
fn a_payload_split_reports_offsets() {
    let mut wire = Vec::new();
    encode_frame(
        &header(Opcode::Binary, true, Some([9, 9, 9, 9])),
        b"abcdefgh",
        &mut wire,
    );
    let events = parse_in_chunks(&wire, &[7, 3, 1, 3], Limits::default()).expect("valid");
    let pieces: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Owned::Payload(bytes, offset) => Some((bytes.len(), *offset)),
            _ => None,
        })
        .collect();
    assert_eq!(pieces, [(1, 0), (3, 1), (1, 4), (3, 5)]);
}

#[test]
fn rsv_bits_are_refused_as_an_extension() {
    for rsv in [0b100, 0b010, 0b001] {
        let mut wire = Vec::new();
        encode_frame(
            &FrameHeader {
                rsv,
                ..header(Opcode::Binary, true, None)
            },
            b"x",
            &mut wire,
        );
        assert_eq!(
            first_error(&wire, Limits::default()).0,
            FrameError::ReservedBitsSet
        );
        // Refused from the first byte: nothing more is waited for.
        assert_eq!(
            first_error(&wire[..1], Limits::default()).0,
            FrameError::ReservedBitsSet
        );
    }
}

#[test]
fn reserved_opcodes_are_refused() {
    for bits in [0x3, 0x7, 0xB, 0xF] {
        let mut wire = Vec::new();
        encode_frame(&header(Opcode::Reserved(bits), true, None), b"", &mut wire);
        assert_eq!(
            first_error(&wire, Limits::default()).0,
            FrameError::ReservedOpcode(bits)
        );
    }
}

#[test]
fn a_control_frame_over_125_bytes_is_refused() {
    for opcode in [Opcode::Ping, Opcode::Pong, Opcode::Close] {
        let mut wire = Vec::new();
        encode_frame(&header(opcode, true, None), &[0; 126], &mut wire);
        let (err, events) = first_error(&wire, Limits::default());
        assert_eq!(err, FrameError::ControlFrameTooLong(126));
        assert!(events.is_empty());
    }
    // 125 is the most a control frame may carry.
    let mut wire = Vec::new();
    encode_frame(&header(Opcode::Ping, true, None), &[0; 125], &mut wire);
    assert!(parse_in_chunks(&wire, &[wire.len()], Limits::default()).is_ok());
}

#[test]
fn a_fragmented_control_frame_is_refused() {
    let mut wire = Vec::new();
    encode_frame(&header(Opcode::Ping, false, None), b"", &mut wire);
    assert_eq!(
        first_error(&wire, Limits::default()).0,
        FrameError::FragmentedControlFrame
    );
}

#[test]
fn a_64_bit_length_over_the_limit_is_refused_before_any_payload() {
    let limits = Limits {
        max_payload: 1 << 20,
    };
    // The header alone: 0x82, 127, then 2^20 + 1 as 8 bytes. Nothing of the payload is sent.
    let mut wire = vec![0x82, 127];
    wire.extend_from_slice(&((1u64 << 20) + 1).to_be_bytes());
    let (err, events) = first_error(&wire, limits);
    assert_eq!(
        err,
        FrameError::PayloadTooLarge {
            length: (1 << 20) + 1,
            max: 1 << 20
        }
    );
    assert!(events.is_empty(), "no event before the error");
    // Also with the announced payload behind it: no piece of it is reported.
    wire.extend_from_slice(&[0; 100]);
    assert!(first_error(&wire, limits).1.is_empty());
    // A length with the most significant bit set is invalid whatever the limit.
    let mut wire = vec![0x82, 127];
    wire.extend_from_slice(&(1u64 << 63).to_be_bytes());
    assert_eq!(
        first_error(
            &wire,
            Limits {
                max_payload: u64::MAX
            }
        )
        .0,
        FrameError::InvalidPayloadLength(1 << 63)
    );
    // Exactly the limit is fine.
    let mut wire = Vec::new();
    encode_frame(
        &header(Opcode::Binary, true, None),
        &vec![1; 1 << 20],
        &mut wire,
    );
    assert!(parse_in_chunks(&wire, &[wire.len()], limits).is_ok());
}

#[test]
fn the_default_limit_is_16_mib() {
    assert_eq!(Limits::default().max_payload, 16 * 1024 * 1024);
    let mut wire = vec![0x82, 127];
    wire.extend_from_slice(&(16u64 * 1024 * 1024 + 1).to_be_bytes());
    assert!(matches!(
        first_error(&wire, Limits::default()).0,
        FrameError::PayloadTooLarge { .. }
    ));
}

#[test]
fn continuation_rules_are_enforced() {
    let mut wire = Vec::new();
    encode_frame(&header(Opcode::Continuation, true, None), b"x", &mut wire);
    assert_eq!(
        first_error(&wire, Limits::default()).0,
        FrameError::UnexpectedContinuation
    );

    let mut wire = Vec::new();
    encode_frame(&header(Opcode::Binary, false, None), b"x", &mut wire);
    encode_ping(b"", None, &mut wire); // Control frames between fragments are fine...
    encode_frame(&header(Opcode::Text, true, None), b"y", &mut wire); // ...a new message is not.
    let (err, events) = first_error(&wire, Limits::default());
    assert_eq!(err, FrameError::ExpectedContinuation);
    assert_eq!(frames(&events).len(), 2);

    let mut parser = FrameParser::new(Limits::default());
    let mut wire = Vec::new();
    encode_frame(&header(Opcode::Binary, false, None), b"x", &mut wire);
    let mut input = wire.as_slice();
    while parser.next_event(&mut input).expect("valid").is_some() {}
    assert!(parser.in_fragmented_message());
}

#[test]
fn non_minimal_lengths_are_accepted_as_the_peers_accept_them() {
    // "hi" with a 16-bit length, then with a 64-bit length.
    let wire = [
        0x82, 126, 0, 2, b'h', b'i', 0x82, 127, 0, 0, 0, 0, 0, 0, 0, 2, b'h', b'i',
    ];
    let parsed = frames(&parse_in_chunks(&wire, &[wire.len()], Limits::default()).expect("valid"));
    assert_eq!(parsed.len(), 2);
    assert!(parsed.iter().all(|f| f.payload == b"hi"));
}

#[test]
fn a_partial_header_is_held_across_calls() {
    // The longest header: 64-bit length and a mask key, 14 bytes, fed 13 then 1.
    let mut wire = Vec::new();
    encode_frame(
        &header(Opcode::Binary, true, Some([1, 2, 3, 4])),
        &[0x55; 70_000],
        &mut wire,
    );
    let mut parser = FrameParser::new(Limits::default());
    let mut input = &wire[..13];
    assert_eq!(parser.next_event(&mut input), Ok(None));
    assert!(input.is_empty(), "the partial header is consumed and held");
    assert!(!parser.is_at_frame_boundary());
    let mut input = &wire[13..];
    let Ok(Some(Event::FrameStart(h))) = parser.next_event(&mut input) else {
        panic!("expected the frame start");
    };
    assert_eq!((h.payload_len, h.mask), (70_000, Some([1, 2, 3, 4])));
    assert_eq!(input.len(), 70_000);
}
