//! Helpers shared by the integration tests: owned copies of events, split feeding and
//! deterministic test data.
#![allow(dead_code)] // Each test binary uses its own subset.

use wsframe::{
    ChannelEvent, ChannelProtocol, ChannelStream, Event, FrameError, FrameHeader, FrameParser,
    Limits, StreamError,
};

/// An owned [`Event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Owned {
    Start(FrameHeader),
    Payload(Vec<u8>, u64),
    End,
}

/// A frame as the parser reported it: its header and its payload (still masked) joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParsedFrame {
    pub(crate) header: FrameHeader,
    pub(crate) payload: Vec<u8>,
}

/// What a channel stream carried, with each message's data joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Message { channel: u8, data: Vec<u8> },
    ChannelClosed(u8),
    Ping,
    Pong,
    Close(Option<u16>, String),
}

/// Deterministic pseudo-random bytes (xorshift), so large payloads cost nothing to shrink.
pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Chunk sizes in 1..=max, from `seed`, that add up to `total`.
pub(crate) fn splits(total: usize, max: usize, seed: u64) -> Vec<usize> {
    let mut state = seed | 1;
    let mut sizes = Vec::new();
    let mut left = total;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = (state % max.max(1) as u64) as usize + 1;
        let size = size.min(left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

/// Feeds `wire` to a fresh parser in chunks of `sizes` and returns every event, owned.
pub(crate) fn parse_in_chunks(
    wire: &[u8],
    sizes: &[usize],
    limits: Limits,
) -> Result<Vec<Owned>, FrameError> {
    let mut parser = FrameParser::new(limits);
    let mut events = Vec::new();
    let mut at = 0;
    for &size in sizes {
        let mut input = &wire[at..at + size];
        at += size;
        while let Some(event) = parser.next_event(&mut input)? {
            events.push(match event {
                Event::FrameStart(header) => Owned::Start(header),
                Event::Payload { bytes, offset } => {
                    assert!(!bytes.is_empty(), "empty payload piece");
                    Owned::Payload(bytes.to_vec(), offset)
                }
                Event::FrameEnd => Owned::End,
            });
        }
        assert!(input.is_empty(), "parser left input unread");
    }
    assert_eq!(at, wire.len(), "sizes must cover the wire");
    assert!(parser.is_at_frame_boundary(), "stream ended inside a frame");
    Ok(events)
}

/// Joins events into frames, checking that they are well formed (start, pieces at the right
/// offsets adding up to the length, end).
pub(crate) fn frames(events: &[Owned]) -> Vec<ParsedFrame> {
    let mut frames = Vec::new();
    let mut open: Option<ParsedFrame> = None;
    for event in events {
        match event {
            Owned::Start(header) => {
                assert!(open.is_none(), "frame start inside a frame");
                open = Some(ParsedFrame {
                    header: *header,
                    payload: Vec::new(),
                });
            }
            Owned::Payload(bytes, offset) => {
                let frame = open.as_mut().expect("payload outside a frame");
                assert_eq!(*offset, frame.payload.len() as u64, "piece offset");
                frame.payload.extend_from_slice(bytes);
            }
            Owned::End => {
                let frame = open.take().expect("frame end outside a frame");
                assert_eq!(
                    frame.payload.len() as u64,
                    frame.header.payload_len,
                    "payload length"
                );
                frames.push(frame);
            }
        }
    }
    assert!(open.is_none(), "unfinished frame");
    frames
}

/// Decodes `wire` with a [`ChannelStream`] fed in chunks of `sizes`.
pub(crate) fn decode_in_chunks(
    protocol: ChannelProtocol,
    wire: &[u8],
    sizes: &[usize],
) -> Result<Vec<Item>, StreamError> {
    let mut stream = ChannelStream::new(protocol, Limits::default());
    let mut items = Vec::new();
    let mut message: Option<(u8, Vec<u8>)> = None;
    let mut at = 0;
    for &size in sizes {
        let chunk = &wire[at..at + size];
        at += size;
        stream.feed(chunk, &mut |event| collect(event, &mut message, &mut items))?;
    }
    assert_eq!(at, wire.len(), "sizes must cover the wire");
    assert!(message.is_none(), "stream ended inside a message");
    Ok(items)
}

/// Decodes `wire` fed whole.
pub(crate) fn decode(protocol: ChannelProtocol, wire: &[u8]) -> Result<Vec<Item>, StreamError> {
    decode_in_chunks(protocol, wire, &[wire.len()])
}

fn collect(event: ChannelEvent<'_>, message: &mut Option<(u8, Vec<u8>)>, items: &mut Vec<Item>) {
    match event {
        ChannelEvent::Data { channel, bytes } => {
            assert!(!bytes.is_empty(), "empty Data event");
            let (open, data) = message.get_or_insert_with(|| (channel, Vec::new()));
            assert_eq!(*open, channel, "channel changed inside a message");
            data.extend_from_slice(bytes);
        }
        ChannelEvent::MessageEnd { channel } => {
            let (open, data) = message.take().unwrap_or((channel, Vec::new()));
            assert_eq!(open, channel, "message ended on another channel");
            items.push(Item::Message { channel, data });
        }
        ChannelEvent::ChannelClosed { channel } => items.push(Item::ChannelClosed(channel)),
        ChannelEvent::Ping => items.push(Item::Ping),
        ChannelEvent::Pong => items.push(Item::Pong),
        ChannelEvent::Close { code, reason } => items.push(Item::Close(code, reason)),
        other => panic!("an event these tests do not know: {other:?}"),
    }
}
