//! The incremental parser on hand-picked streams: stream ids, chunking, limits and bad input.

mod common;

use common::{id, parse_chunks, pattern, Frame};
use spdyframe::{
    encode_control, encode_data, frame_type, ControlFrame, Event, FrameError, FrameParser, Limits,
    StreamId, FLAG_FIN, MAX_PAYLOAD,
};

fn control(frame: &ControlFrame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_control(frame, &mut out);
    out
}

fn data(stream_id: StreamId, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_data(stream_id, flags, payload, &mut out).expect("fits");
    out
}

#[test]
fn stream_ids_of_128_and_above_and_near_2_pow_31() {
    for n in [
        127,
        128,
        129,
        255,
        256,
        0x7fff,
        0x8000,
        0x00ff_ffff,
        0x7fff_fffe,
        0x7fff_ffff,
    ] {
        let mut wire = control(&ControlFrame::SynReply {
            stream_id: id(n),
            flags: 0,
            header_block: b"",
        });
        wire.extend(data(id(n), FLAG_FIN, b"x"));
        let mut parser = FrameParser::default();
        let mut input = wire.as_slice();
        assert_eq!(
            parser.next_event(&mut input),
            Ok(Some(Event::Control(ControlFrame::SynReply {
                stream_id: id(n),
                flags: 0,
                header_block: b""
            })))
        );
        let event = parser
            .next_event(&mut input)
            .expect("valid")
            .expect("event");
        assert!(matches!(event, Event::Data { stream_id, .. } if stream_id.get() == n));
        assert!(event.ends_stream());
        assert_eq!(parser.next_event(&mut input), Ok(None));
    }
}

#[test]
fn reserved_high_bit_of_stream_ids_is_masked() {
    // SYN_STREAM for stream 0x7fffffff with the reserved bit set on both ids, and a
    // WINDOW_UPDATE whose delta has the reserved bit set.
    let mut wire = vec![0x80, 3, 0, 1, 0, 0, 0, 10];
    wire.extend([0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0x80, 0x20, 0]);
    wire.extend([0x80, 3, 0, 9, 0, 0, 0, 8, 0x80, 0, 0, 0x81, 0x80, 0, 0, 1]);
    let mut parser = FrameParser::default();
    let mut input = wire.as_slice();
    assert_eq!(
        parser.next_event(&mut input),
        Ok(Some(Event::Control(ControlFrame::SynStream {
            stream_id: StreamId::MAX,
            associated_stream_id: id(128),
            priority: 1,
            slot: 0,
            flags: 0,
            header_block: b"",
        })))
    );
    assert_eq!(
        parser.next_event(&mut input),
        Ok(Some(Event::Control(ControlFrame::WindowUpdate {
            stream_id: id(129),
            delta: 1,
            flags: 0,
        })))
    );
}

#[test]
fn flags_set_on_the_wire_are_reported_for_every_fixed_size_control_frame() {
    // Hand-written frames whose flags byte (offset 4) is not 0, although SPDY/3 defines no flag
    // for these types: the views report the byte and the payload length as sent.
    #[rustfmt::skip]
    let wire: [u8; 60] = [
        0x80, 3, 0, 3, 0x01, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 5,     // RST_STREAM, flags 0x01
        0x80, 3, 0, 6, 0xff, 0, 0, 4, 0, 0, 0, 9,                 // PING, flags 0xff
        0x80, 3, 0, 7, 0x02, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 0,     // GOAWAY, flags 0x02
        0x80, 3, 0, 9, 0x80, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0x10,  // WINDOW_UPDATE, flags 0x80
    ];
    let mut parser = FrameParser::default();
    let mut input = &wire[..];
    let mut seen = Vec::new();
    while let Some(event) = parser.next_event(&mut input).expect("valid frames") {
        let Event::Control(frame) = event else {
            panic!("only control frames were sent: {event:?}");
        };
        seen.push((frame.frame_type(), frame.flags(), frame.payload_len()));
    }
    assert_eq!(
        seen,
        [(3, 0x01, 8), (6, 0xff, 4), (7, 0x02, 8), (9, 0x80, 8)]
    );
    let mut input = &wire[16..];
    assert_eq!(
        FrameParser::default().next_event(&mut input),
        Ok(Some(Event::Control(ControlFrame::Ping {
            id: 9,
            flags: 0xff
        })))
    );
    // Encoding a parsed view gives back the same bytes, flags included.
    let mut parser = FrameParser::default();
    let mut input = &wire[..];
    let mut again = Vec::new();
    while let Some(Event::Control(frame)) = parser.next_event(&mut input).expect("valid") {
        encode_control(&frame, &mut again);
    }
    assert_eq!(again, wire);
}

#[test]
fn several_frames_in_one_chunk_are_all_reported() {
    let frames = vec![
        Frame::Control(control(&ControlFrame::Ping { id: 1, flags: 0 })),
        Frame::Data {
            stream_id: id(5),
            flags: 0,
            payload: b"out".to_vec(),
        },
        Frame::Data {
            stream_id: id(7),
            flags: 0,
            payload: b"{\"Width\":80}".to_vec(),
        },
        Frame::Data {
            stream_id: id(5),
            flags: FLAG_FIN,
            payload: Vec::new(),
        },
        Frame::Control(control(&ControlFrame::RstStream {
            stream_id: id(3),
            status: 5,
            flags: 0,
        })),
        Frame::Control(control(&ControlFrame::GoAway {
            last_good_stream_id: id(7),
            status: 0,
            flags: 0,
        })),
    ];
    let mut wire = Vec::new();
    frames.iter().for_each(|f| f.encode(&mut wire));
    let mut parser = FrameParser::default();
    assert_eq!(parse_chunks(&mut parser, [wire.as_slice()]), Ok(frames));
    assert!(parser.is_idle());
}

#[test]
fn a_frame_split_inside_its_header_at_every_offset() {
    let mut wire = data(id(3), 0, b"hello");
    wire.extend(control(&ControlFrame::Ping {
        id: 0xdead_beef,
        flags: 0,
    }));
    for split in 1..wire.len() {
        let mut parser = FrameParser::default();
        let frames = parse_chunks(&mut parser, [&wire[..split], &wire[split..]]).expect("valid");
        assert_eq!(frames.len(), 2, "split at {split}");
        assert!(parser.is_idle());
    }
    // Inside the second frame's header, byte by byte, the parser holds the partial header.
    let mut parser = FrameParser::default();
    let mut input = &wire[..13 + 3];
    assert!(matches!(
        parser.next_event(&mut input),
        Ok(Some(Event::Data { .. }))
    ));
    assert_eq!(parser.next_event(&mut input), Ok(None));
    assert!(!parser.is_idle());
    let mut rest = &wire[16..];
    assert_eq!(
        parser.next_event(&mut rest),
        Ok(Some(Event::Control(ControlFrame::Ping {
            id: 0xdead_beef,
            flags: 0,
        })))
    );
    assert!(parser.is_idle());
}

#[test]
fn a_data_frame_of_the_largest_size_is_passed_through_in_pieces() {
    let payload = pattern(MAX_PAYLOAD as usize, 7);
    let wire = data(StreamId::MAX, FLAG_FIN, &payload);
    assert_eq!(wire.len(), 8 + (1 << 24) - 1);
    assert_eq!(&wire[5..8], [0xff, 0xff, 0xff]);
    let mut parser = FrameParser::new(Limits {
        max_control_payload: 16,
    });
    let frames = parse_chunks(&mut parser, wire.chunks(64 * 1024 + 3)).expect("valid");
    assert_eq!(
        frames,
        [Frame::Data {
            stream_id: StreamId::MAX,
            flags: FLAG_FIN,
            payload
        }]
    );
    assert!(parser.is_idle());
}

#[test]
fn data_pieces_borrow_the_input() {
    let wire = data(id(1), 0, b"abcdef");
    let mut parser = FrameParser::default();
    let mut input = &wire[..10];
    let Ok(Some(Event::Data {
        bytes,
        frame_start: true,
        frame_end: false,
        ..
    })) = parser.next_event(&mut input)
    else {
        panic!("expected a first piece");
    };
    assert_eq!(bytes.as_ptr(), wire[8..].as_ptr());
    assert_eq!(bytes, b"ab");
}

#[test]
fn an_empty_data_frame_is_one_piece_with_both_marks() {
    let wire = data(id(9), FLAG_FIN, b"");
    let mut parser = FrameParser::default();
    let mut input = wire.as_slice();
    let event = parser
        .next_event(&mut input)
        .expect("valid")
        .expect("event");
    assert_eq!(
        event,
        Event::Data {
            stream_id: id(9),
            flags: FLAG_FIN,
            bytes: b"",
            frame_start: true,
            frame_end: true
        }
    );
    assert!(event.ends_stream());
}

#[test]
fn a_split_control_frame_is_reassembled() {
    let block = pattern(1000, 1);
    let wire = control(&ControlFrame::Headers {
        stream_id: id(5),
        flags: 0,
        header_block: &block,
    });
    let mut parser = FrameParser::default();
    let frames = parse_chunks(&mut parser, wire.chunks(1)).expect("valid");
    assert_eq!(frames, [Frame::Control(wire.clone())]);
    assert!(parser.is_idle());
}

#[test]
fn an_oversized_control_frame_is_refused_from_its_header_alone() {
    let limits = Limits {
        max_control_payload: 1024,
    };
    let block = vec![0u8; 1025];
    let wire = control(&ControlFrame::SynStream {
        stream_id: id(1),
        associated_stream_id: StreamId::ZERO,
        priority: 0,
        slot: 0,
        flags: 0,
        header_block: &block[..1014],
    });
    // Exactly at the limit: accepted, even split.
    let mut parser = FrameParser::new(limits);
    assert_eq!(
        parse_chunks(&mut parser, wire.chunks(100)).map(|f| f.len()),
        Ok(1)
    );

    // One byte over: refused as soon as the 8 header bytes are in, with no payload fed at all.
    let wire = control(&ControlFrame::Headers {
        stream_id: id(1),
        flags: 0,
        header_block: &block[..1021],
    });
    let mut parser = FrameParser::new(limits);
    let mut header = &wire[..8];
    assert_eq!(
        parser.next_event(&mut header),
        Err(FrameError::ControlFrameTooLarge {
            length: 1025,
            max: 1024
        })
    );
    assert_eq!(
        parser.next_event(&mut &wire[8..]),
        Err(FrameError::Poisoned)
    );

    // The default limit is 1 MiB; a header announcing 16 MiB is refused the same way.
    let mut parser = FrameParser::default();
    let mut header: &[u8] = &[0x80, 3, 0, 4, 0, 0xff, 0xff, 0xff];
    assert_eq!(
        parser.next_event(&mut header),
        Err(FrameError::ControlFrameTooLarge {
            length: MAX_PAYLOAD,
            max: 1 << 20
        })
    );
}

#[test]
fn wrong_version_and_invalid_frames_poison_the_parser() {
    let mut parser = FrameParser::default();
    let mut spdy2: &[u8] = &[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
    assert_eq!(
        parser.next_event(&mut spdy2),
        Err(FrameError::UnsupportedVersion(2))
    );
    assert!(!parser.is_idle());
    assert_eq!(
        parser.next_event(&mut &[0u8; 8][..]),
        Err(FrameError::Poisoned)
    );

    for split in [12, 9] {
        let mut parser = FrameParser::default();
        let wire = [0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1];
        let mut first = &wire[..split];
        let mut result = parser.next_event(&mut first);
        if split < wire.len() {
            assert_eq!(result, Ok(None));
            result = parser.next_event(&mut &wire[split..]);
        }
        assert_eq!(
            result,
            Err(FrameError::InvalidControlFrame {
                frame_type: frame_type::RST_STREAM,
                reason: "RST_STREAM length is not 8"
            })
        );
        assert_eq!(parser.next_event(&mut &[][..]), Err(FrameError::Poisoned));
    }
}

#[test]
fn noop_and_unknown_control_frames_are_skipped() {
    let mut wire = vec![0x80, 3, 0, 5, 0, 0, 0, 0];
    wire.extend([0x80, 3, 0xff, 0xff, 0x07, 0, 0, 3, 1, 2, 3]);
    wire.extend(data(id(1), 0, b"after"));
    let mut parser = FrameParser::default();
    let frames = parse_chunks(&mut parser, wire.chunks(2)).expect("valid");
    assert_eq!(frames.len(), 3);
    let mut input = wire.as_slice();
    assert_eq!(
        parser.next_event(&mut input),
        Ok(Some(Event::Control(ControlFrame::Unknown {
            frame_type: 5,
            flags: 0,
            payload: b""
        })))
    );
    assert_eq!(
        parser.next_event(&mut input),
        Ok(Some(Event::Control(ControlFrame::Unknown {
            frame_type: 0xffff,
            flags: 7,
            payload: &[1, 2, 3]
        })))
    );
}

#[test]
fn settings_entries_are_iterated() {
    use spdyframe::SettingsEntry;
    let entries = [SettingsEntry {
        flags: 0,
        id: 7,
        value: 0x0010_0000,
    }];
    let payload = SettingsEntry::encode_payload(&entries);
    let wire = control(&ControlFrame::Settings {
        flags: 0,
        payload: &payload,
    });
    let mut parser = FrameParser::default();
    let mut input = wire.as_slice();
    let Ok(Some(Event::Control(frame))) = parser.next_event(&mut input) else {
        panic!("expected SETTINGS");
    };
    assert_eq!(
        frame.settings_entries().map(Iterator::collect::<Vec<_>>),
        Some(entries.to_vec())
    );
}
