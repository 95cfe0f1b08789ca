//! Properties: every frame type round-trips through the encoder and parser; any frame sequence
//! fed in any split comes out as exactly those frames; header blocks round-trip through one
//! compression context in order.

mod common;

use common::{parse_chunks, pattern, Frame};
use proptest::prelude::*;
use spdyframe::{
    encode_control, ControlFrame, Event, FrameParser, HeaderBlock, HeaderDeflater, HeaderInflater,
    Limits, SettingsEntry, StreamId,
};

fn stream_id() -> impl Strategy<Value = StreamId> {
    prop_oneof![
        (0u32..300).prop_map(StreamId::from_masked),
        (0x7fff_ff00u32..=0x7fff_ffff).prop_map(StreamId::from_masked),
        any::<u32>().prop_map(StreamId::from_masked),
    ]
}

fn small_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..48)
}

/// An owned description of a control frame, from which a `ControlFrame` view is taken.
#[derive(Clone, Debug)]
enum ControlSpec {
    SynStream {
        stream_id: StreamId,
        assoc: StreamId,
        priority: u8,
        slot: u8,
        flags: u8,
        block: Vec<u8>,
    },
    SynReply {
        stream_id: StreamId,
        flags: u8,
        block: Vec<u8>,
    },
    RstStream {
        stream_id: StreamId,
        status: u32,
        flags: u8,
    },
    Settings {
        flags: u8,
        payload: Vec<u8>,
    },
    Ping {
        id: u32,
        flags: u8,
    },
    GoAway {
        last_good: StreamId,
        status: u32,
        flags: u8,
    },
    Headers {
        stream_id: StreamId,
        flags: u8,
        block: Vec<u8>,
    },
    WindowUpdate {
        stream_id: StreamId,
        delta: u32,
        flags: u8,
    },
    Unknown {
        frame_type: u16,
        flags: u8,
        payload: Vec<u8>,
    },
}

impl ControlSpec {
    fn view(&self) -> ControlFrame<'_> {
        match self {
            ControlSpec::SynStream {
                stream_id,
                assoc,
                priority,
                slot,
                flags,
                block,
            } => ControlFrame::SynStream {
                stream_id: *stream_id,
                associated_stream_id: *assoc,
                priority: *priority,
                slot: *slot,
                flags: *flags,
                header_block: block,
            },
            ControlSpec::SynReply {
                stream_id,
                flags,
                block,
            } => ControlFrame::SynReply {
                stream_id: *stream_id,
                flags: *flags,
                header_block: block,
            },
            ControlSpec::RstStream {
                stream_id,
                status,
                flags,
            } => ControlFrame::RstStream {
                stream_id: *stream_id,
                status: *status,
                flags: *flags,
            },
            ControlSpec::Settings { flags, payload } => ControlFrame::Settings {
                flags: *flags,
                payload,
            },
            ControlSpec::Ping { id, flags } => ControlFrame::Ping {
                id: *id,
                flags: *flags,
            },
            ControlSpec::GoAway {
                last_good,
                status,
                flags,
            } => ControlFrame::GoAway {
                last_good_stream_id: *last_good,
                status: *status,
                flags: *flags,
            },
            ControlSpec::Headers {
                stream_id,
                flags,
                block,
            } => ControlFrame::Headers {
                stream_id: *stream_id,
                flags: *flags,
                header_block: block,
            },
            ControlSpec::WindowUpdate {
                stream_id,
                delta,
                flags,
            } => ControlFrame::WindowUpdate {
                stream_id: *stream_id,
                delta: *delta,
                flags: *flags,
            },
            ControlSpec::Unknown {
                frame_type,
                flags,
                payload,
            } => ControlFrame::Unknown {
                frame_type: *frame_type,
                flags: *flags,
                payload,
            },
        }
    }
}

fn control_spec() -> impl Strategy<Value = ControlSpec> {
    let entries = prop::collection::vec(
        (any::<u8>(), 0u32..=0x00ff_ffff, any::<u32>())
            .prop_map(|(flags, id, value)| SettingsEntry { flags, id, value }),
        0..5,
    );
    prop_oneof![
        (
            stream_id(),
            stream_id(),
            0u8..8,
            any::<u8>(),
            any::<u8>(),
            small_bytes()
        )
            .prop_map(|(stream_id, assoc, priority, slot, flags, block)| {
                ControlSpec::SynStream {
                    stream_id,
                    assoc,
                    priority,
                    slot,
                    flags,
                    block,
                }
            }),
        (stream_id(), any::<u8>(), small_bytes()).prop_map(|(stream_id, flags, block)| {
            ControlSpec::SynReply {
                stream_id,
                flags,
                block,
            }
        }),
        (stream_id(), any::<u32>(), any::<u8>()).prop_map(|(stream_id, status, flags)| {
            ControlSpec::RstStream {
                stream_id,
                status,
                flags,
            }
        }),
        (any::<u8>(), entries).prop_map(|(flags, e)| ControlSpec::Settings {
            flags,
            payload: SettingsEntry::encode_payload(&e)
        }),
        (any::<u32>(), any::<u8>()).prop_map(|(id, flags)| ControlSpec::Ping { id, flags }),
        (stream_id(), any::<u32>(), any::<u8>()).prop_map(|(last_good, status, flags)| {
            ControlSpec::GoAway {
                last_good,
                status,
                flags,
            }
        }),
        (stream_id(), any::<u8>(), small_bytes()).prop_map(|(stream_id, flags, block)| {
            ControlSpec::Headers {
                stream_id,
                flags,
                block,
            }
        }),
        (stream_id(), 0u32..=0x7fff_ffff, any::<u8>()).prop_map(|(stream_id, delta, flags)| {
            ControlSpec::WindowUpdate {
                stream_id,
                delta,
                flags,
            }
        }),
        (
            prop_oneof![Just(5u16), Just(10u16), 10u16..],
            any::<u8>(),
            small_bytes()
        )
            .prop_map(|(frame_type, flags, payload)| ControlSpec::Unknown {
                frame_type,
                flags,
                payload
            }),
    ]
}

/// A frame of a random stream: data payloads mostly small, sometimes tens of KiB, rarely up to
/// 1 MiB.
fn frame() -> impl Strategy<Value = Frame> {
    let len = prop_oneof![
        8 => 0usize..64,
        3 => 0usize..70_000,
        1 => 0usize..=(1 << 20),
    ];
    prop_oneof![
        3 => (stream_id(), any::<u8>(), len, any::<u8>()).prop_map(|(stream_id, flags, len, seed)| {
            Frame::Data { stream_id, flags, payload: pattern(len, seed) }
        }),
        1 => control_spec().prop_map(|spec| {
            let mut bytes = Vec::new();
            encode_control(&spec.view(), &mut bytes);
            Frame::Control(bytes)
        }),
    ]
}

/// Chunk boundaries for a stream of `total` bytes, drawn from `seed`: a mix of tiny and large
/// chunks, so splits land inside headers, payloads and everywhere else.
fn split_points(total: usize, seed: u64) -> Vec<usize> {
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut points = vec![0];
    let mut at = 0;
    while at < total {
        let r = next();
        let step = match r % 4 {
            0 => 1 + (r >> 8) as usize % 9,
            1 => 1 + (r >> 8) as usize % 200,
            2 => 1 + (r >> 8) as usize % 40_000,
            _ => 1 + (r >> 8) as usize % 400_000,
        };
        at = (at + step).min(total);
        points.push(at);
    }
    points
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_control_frame_round_trips(spec in control_spec()) {
        let frame = spec.view();
        let mut wire = Vec::new();
        encode_control(&frame, &mut wire);
        let mut parser = FrameParser::default();
        let mut input = wire.as_slice();
        prop_assert_eq!(parser.next_event(&mut input), Ok(Some(Event::Control(frame))));
        prop_assert!(input.is_empty() && parser.is_idle());
        // The view's flags and payload length are the header's.
        prop_assert_eq!(frame.flags(), wire[4]);
        prop_assert_eq!(frame.payload_len(), wire.len() - 8);
        // Through the internal buffer, byte by byte, it is the same frame.
        let mut parser = FrameParser::default();
        let mut last = None;
        for i in 0..wire.len() {
            let mut byte = &wire[i..=i];
            if let Some(Event::Control(f)) = parser.next_event(&mut byte).expect("valid") {
                last = Some(f == frame);
            }
        }
        prop_assert_eq!(last, Some(true));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_frame_sequence_in_any_split_yields_exactly_the_frames(
        frames in prop::collection::vec(frame(), 0..10),
        seed in any::<u64>(),
    ) {
        let mut wire = Vec::new();
        frames.iter().for_each(|f| f.encode(&mut wire));
        let points = split_points(wire.len(), seed);
        let chunks = points.windows(2).map(|w| &wire[w[0]..w[1]]);
        let mut parser = FrameParser::new(Limits::default());
        prop_assert_eq!(parse_chunks(&mut parser, chunks), Ok(frames.clone()));
        prop_assert!(parser.is_idle());

        if wire.len() <= 4096 {
            let mut parser = FrameParser::default();
            prop_assert_eq!(parse_chunks(&mut parser, wire.chunks(1)), Ok(frames.clone()));
            prop_assert!(parser.is_idle());
        }
        let mut parser = FrameParser::default();
        prop_assert_eq!(parse_chunks(&mut parser, [wire.as_slice()]), Ok(frames));
    }
}

fn header_block() -> impl Strategy<Value = HeaderBlock> {
    let name = "[a-z][a-z0-9-]{0,20}";
    let value = prop_oneof!["[ -~]{0,40}", "[a-z]{1,8}(\0[a-z]{1,8}){0,3}", ".{0,20}"];
    prop::collection::vec((name, value), 0..6).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn header_blocks_deflated_in_sequence_inflate_in_order(
        blocks in prop::collection::vec(header_block(), 1..12),
    ) {
        let mut deflater = HeaderDeflater::new();
        let mut inflater = HeaderInflater::default();
        let mut compressed = Vec::new();
        for block in &blocks {
            let mut one = Vec::new();
            deflater.deflate(block, &mut one).expect("deflate");
            compressed.push(one);
        }
        for (c, block) in compressed.iter().zip(&blocks) {
            prop_assert_eq!(inflater.inflate(c), Ok(block.clone()));
        }
    }
}

/// A valid stream with some bytes overwritten, truncated, or plain random bytes.
fn hostile_stream() -> impl Strategy<Value = Vec<u8>> {
    let mangled = (
        prop::collection::vec(frame(), 1..4),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
    )
        .prop_map(|(frames, edits)| {
            let mut wire = Vec::new();
            frames
                .iter()
                .filter(|f| !matches!(f, Frame::Data { payload, .. } if payload.len() > 4096))
                .for_each(|f| f.encode(&mut wire));
            for (at, byte) in edits {
                if !wire.is_empty() {
                    let at = at % wire.len();
                    wire[at] = byte;
                }
            }
            wire
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mangled]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn hostile_bytes_never_panic_and_stay_within_the_input(
        wire in hostile_stream(),
        split in 1usize..64,
    ) {
        let mut parser = FrameParser::new(Limits { max_control_payload: 256 });
        let mut inflater = HeaderInflater::new(1024);
        let mut data = 0;
        'chunks: for mut chunk in wire.chunks(split) {
            loop {
                match parser.next_event(&mut chunk) {
                    Ok(Some(Event::Data { bytes, .. })) => data += bytes.len(),
                    Ok(Some(Event::Control(frame))) => {
                        if let Some(block) = frame.header_block() {
                            let _ = inflater.inflate(block);
                        }
                    }
                    Ok(None) => break,
                    Err(_) => break 'chunks,
                }
            }
        }
        prop_assert!(data <= wire.len());
        let _ = HeaderBlock::decode_raw(&wire);
        let _ = HeaderInflater::default().inflate(&wire);
    }
}
