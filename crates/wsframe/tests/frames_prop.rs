//! Property: frames encoded with `encode_frame` parse back to the same headers and payloads,
//! whatever the frame type, length form (7, 16 or 64 bits), masking and read boundaries.

mod support;

use proptest::prelude::*;
use support::{parse_in_chunks, splits, Owned};
use wsframe::{encode_frame, unmask, Event, FrameHeader, FrameParser, Limits, Opcode};

/// Payload lengths in each of the three length forms.
fn data_len() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0..=125usize, 3 => 126..=65_535usize, 1 => 65_536..=100_000usize]
}

fn mask() -> impl Strategy<Value = Option<[u8; 4]>> {
    proptest::option::of(any::<[u8; 4]>())
}

#[derive(Clone, Debug)]
struct Control {
    opcode: Opcode,
    len: usize,
    mask: Option<[u8; 4]>,
}

fn control() -> impl Strategy<Value = Control> {
    (
        prop::sample::select(vec![Opcode::Close, Opcode::Ping, Opcode::Pong]),
        0..=125usize,
        mask(),
    )
        .prop_map(|(opcode, len, mask)| Control { opcode, len, mask })
}

#[derive(Clone, Debug)]
enum Item {
    /// A data message: its first frame's opcode, then each fragment's length and mask, with
    /// an optional control frame after each non-final fragment.
    Message {
        text: bool,
        fragments: Vec<(usize, Option<[u8; 4]>, Option<Control>)>,
    },
    Control(Control),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => (any::<bool>(), prop::collection::vec((data_len(), mask(), proptest::option::of(control())), 1..4))
            .prop_map(|(text, fragments)| Item::Message { text, fragments }),
        1 => control().prop_map(Item::Control),
    ]
}

/// The frames of `items`, in order, with unmasked payloads.
fn frames_of(items: &[Item], seed: u64) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut n = seed;
    let mut payload = |len: usize| {
        n += 1;
        support::bytes(len, n)
    };
    let control_frame = |c: &Control, payload: Vec<u8>| {
        (
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: c.opcode,
                mask: c.mask,
                payload_len: c.len as u64,
            },
            payload,
        )
    };
    for item in items {
        match item {
            Item::Control(c) => frames.push(control_frame(c, payload(c.len))),
            Item::Message { text, fragments } => {
                for (i, (len, mask, between)) in fragments.iter().enumerate() {
                    let last = i + 1 == fragments.len();
                    let opcode = match (i, text) {
                        (0, true) => Opcode::Text,
                        (0, false) => Opcode::Binary,
                        _ => Opcode::Continuation,
                    };
                    let header = FrameHeader {
                        fin: last,
                        rsv: 0,
                        opcode,
                        mask: *mask,
                        payload_len: *len as u64,
                    };
                    frames.push((header, payload(*len)));
                    if let (false, Some(c)) = (last, between) {
                        frames.push(control_frame(c, payload(c.len)));
                    }
                }
            }
        }
    }
    frames
}

/// Read sizes: one byte at a time for small streams, larger reads for large ones.
fn read_sizes(total: usize, max: usize, seed: u64) -> Vec<usize> {
    let max = if total > 16 * 1024 { max.max(512) } else { max };
    splits(total, max, seed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn encoded_frames_parse_back(
        items in prop::collection::vec(item(), 1..5),
        seed in any::<u64>(),
        max_read in prop::sample::select(vec![1usize, 2, 7, 100, 1500, 65_536]),
    ) {
        let expected = frames_of(&items, seed);
        let mut wire = Vec::new();
        for (header, payload) in &expected {
            encode_frame(header, payload, &mut wire);
        }
        let events = parse_in_chunks(&wire, &read_sizes(wire.len(), max_read, seed), Limits::default())
            .expect("a valid stream");

        // Rebuild each frame, unmasking every piece on its own with its offset.
        let mut got: Vec<(FrameHeader, Vec<u8>)> = Vec::new();
        let mut open: Option<(FrameHeader, Vec<u8>)> = None;
        for event in events {
            match event {
                Owned::Start(header) => open = Some((header, Vec::new())),
                Owned::Payload(mut bytes, offset) => {
                    let (header, payload) = open.as_mut().expect("payload inside a frame");
                    prop_assert_eq!(offset, payload.len() as u64);
                    if let Some(mask) = header.mask {
                        unmask(&mut bytes, mask, offset);
                    }
                    payload.extend_from_slice(&bytes);
                }
                Owned::End => got.push(open.take().expect("end of a frame")),
            }
        }
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn any_valid_header_parses_back(
        fin in any::<bool>(),
        opcode in prop::sample::select(vec![Opcode::Continuation, Opcode::Text, Opcode::Binary]),
        len in prop_oneof![0..=125u64, 126..=0xFFFFu64, 0x1_0000..=i64::MAX as u64],
        mask in mask(),
        split in 0usize..=14,
    ) {
        let header = FrameHeader { fin, rsv: 0, opcode, mask, payload_len: len };
        let mut parser = FrameParser::new(Limits { max_payload: u64::MAX });
        if opcode == Opcode::Continuation {
            // Open a fragmented message first, with an empty binary frame.
            let mut input: &[u8] = &[0x02, 0x00];
            while parser.next_event(&mut input).expect("valid").is_some() {}
        }
        let mut wire = Vec::new();
        header.encode(&mut wire);
        prop_assert_eq!(wire.len(), header.encoded_len());
        let split = split.min(wire.len());
        let mut first = &wire[..split];
        let got = parser.next_event(&mut first);
        if split == wire.len() {
            prop_assert_eq!(got, Ok(Some(Event::FrameStart(header))));
        } else {
            prop_assert_eq!(got, Ok(None));
            let mut rest = &wire[split..];
            prop_assert_eq!(parser.next_event(&mut rest), Ok(Some(Event::FrameStart(header))));
            prop_assert!(rest.is_empty());
        }
    }
}
