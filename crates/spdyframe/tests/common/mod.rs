//! Helpers shared by the integration tests: feed a byte stream to a parser in given chunks and
//! reassemble what it reports into whole frames, checking the piece invariants on the way.

#![allow(dead_code)]

use spdyframe::{encode_control, encode_data, Event, FrameError, FrameParser, StreamId};

/// A whole frame as the tests compare them: control frames by their encoding, data frames with
/// their payload reassembled from the pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Control(Vec<u8>),
    Data {
        stream_id: StreamId,
        flags: u8,
        payload: Vec<u8>,
    },
}

impl Frame {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Control(bytes) => out.extend_from_slice(bytes),
            Frame::Data {
                stream_id,
                flags,
                payload,
            } => {
                encode_data(*stream_id, *flags, payload, out).expect("payload fits");
            }
        }
    }
}

/// Feeds `chunks` in order and returns the frames, checking that data pieces are non-empty
/// (except for an empty frame), that `frame_start`/`frame_end` mark exactly the first and last
/// piece, and that flags and stream ids stay the same within a frame.
pub(crate) fn parse_chunks<'c>(
    parser: &mut FrameParser,
    chunks: impl IntoIterator<Item = &'c [u8]>,
) -> Result<Vec<Frame>, FrameError> {
    let mut frames = Vec::new();
    let mut open: Option<(StreamId, u8, Vec<u8>)> = None;
    for mut chunk in chunks {
        while let Some(event) = parser.next_event(&mut chunk)? {
            match event {
                Event::Control(frame) => {
                    assert!(open.is_none(), "control frame inside a data frame");
                    let mut bytes = Vec::new();
                    encode_control(&frame, &mut bytes);
                    frames.push(Frame::Control(bytes));
                }
                Event::Data {
                    stream_id,
                    flags,
                    bytes,
                    frame_start,
                    frame_end,
                } => {
                    assert_eq!(
                        frame_start,
                        open.is_none(),
                        "frame_start on the first piece only"
                    );
                    assert!(
                        !bytes.is_empty() || (frame_start && frame_end),
                        "empty piece"
                    );
                    let (id, fl, mut payload) =
                        open.take().unwrap_or((stream_id, flags, Vec::new()));
                    assert_eq!((id, fl), (stream_id, flags), "piece of another frame");
                    payload.extend_from_slice(bytes);
                    if frame_end {
                        frames.push(Frame::Data {
                            stream_id,
                            flags,
                            payload,
                        });
                    } else {
                        open = Some((id, fl, payload));
                    }
                }
            }
        }
        assert!(chunk.is_empty(), "Ok(None) before the chunk was consumed");
    }
    assert!(open.is_none() || !parser.is_idle());
    Ok(frames)
}

/// `len` bytes of a pattern depending on `seed`, so payloads differ from one another.
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

pub(crate) fn id(n: u32) -> StreamId {
    StreamId::new(n).expect("31-bit id")
}
