//! The frame encoder, the inverse of [`crate::FrameParser`].

use crate::{ControlFrame, EncodeError, FrameHeader, StreamId, MAX_PAYLOAD, SPDY_VERSION};

/// Appends the data frame `(stream_id, flags, payload)` to `out`: one frame, never split, as
/// spdystream writes it.
pub fn encode_data(
    stream_id: StreamId,
    flags: u8,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let length = payload_length(payload.len())?;
    out.reserve(8 + payload.len());
    out.extend_from_slice(
        &FrameHeader::Data {
            stream_id,
            flags,
            length,
        }
        .to_bytes(),
    );
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends `frame` to `out` as a SPDY/3 control frame.
///
/// # Panics
///
/// If the payload (a header block, SETTINGS or unknown payload) is longer than
/// [`MAX_PAYLOAD`]; use [`try_encode_control`] where that can happen.
pub fn encode_control(frame: &ControlFrame<'_>, out: &mut Vec<u8>) {
    if let Err(e) = try_encode_control(frame, out) {
        panic!("encode_control: {e}");
    }
}

/// Appends `frame` to `out` as a SPDY/3 control frame, or fails without writing anything if its
/// payload does not fit the 24-bit length field.
pub fn try_encode_control(frame: &ControlFrame<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let (fixed, fixed_len, tail): ([u8; 10], usize, &[u8]) = match *frame {
        ControlFrame::SynStream {
            stream_id,
            associated_stream_id,
            priority,
            slot,
            header_block,
            ..
        } => {
            let mut fixed = [0u8; 10];
            fixed[..4].copy_from_slice(&stream_id.get().to_be_bytes());
            fixed[4..8].copy_from_slice(&associated_stream_id.get().to_be_bytes());
            fixed[8] = (priority & 0x07) << 5;
            fixed[9] = slot;
            (fixed, 10, header_block)
        }
        ControlFrame::SynReply {
            stream_id,
            header_block,
            ..
        }
        | ControlFrame::Headers {
            stream_id,
            header_block,
            ..
        } => (words(stream_id.get(), 0), 4, header_block),
        ControlFrame::RstStream {
            stream_id, status, ..
        } => (words(stream_id.get(), status), 8, &[]),
        ControlFrame::Ping { id, .. } => (words(id, 0), 4, &[]),
        ControlFrame::GoAway {
            last_good_stream_id,
            status,
            ..
        } => (words(last_good_stream_id.get(), status), 8, &[]),
        ControlFrame::WindowUpdate {
            stream_id, delta, ..
        } => (words(stream_id.get(), delta & 0x7fff_ffff), 8, &[]),
        ControlFrame::Settings { payload, .. } | ControlFrame::Unknown { payload, .. } => {
            ([0; 10], 0, payload)
        }
    };
    let length = payload_length(fixed_len.saturating_add(tail.len()))?;
    let header = FrameHeader::Control {
        version: SPDY_VERSION,
        frame_type: frame.frame_type(),
        flags: frame.flags(),
        length,
    };
    out.reserve(8 + fixed_len + tail.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&fixed[..fixed_len]);
    out.extend_from_slice(tail);
    Ok(())
}

/// Two big-endian words in the first 8 bytes of a fixed-part buffer.
fn words(a: u32, b: u32) -> [u8; 10] {
    let mut fixed = [0u8; 10];
    fixed[..4].copy_from_slice(&a.to_be_bytes());
    fixed[4..8].copy_from_slice(&b.to_be_bytes());
    fixed
}

fn payload_length(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_PAYLOAD)
        .ok_or(EncodeError::PayloadTooLarge {
            length: len,
            max: MAX_PAYLOAD,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rst_stream_bytes() {
        let mut out = Vec::new();
        let stream_id = StreamId::from_masked(0x1234_5678);
        encode_control(
            &ControlFrame::RstStream {
                stream_id,
                status: 5,
                flags: 0,
            },
            &mut out,
        );
        assert_eq!(
            out,
            [0x80, 3, 0, 3, 0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 5]
        );
    }

    #[test]
    fn flags_of_every_fixed_size_frame_are_written() {
        let stream_id = StreamId::from_masked(7);
        for frame in [
            ControlFrame::RstStream {
                stream_id,
                status: 5,
                flags: 0xa5,
            },
            ControlFrame::Ping { id: 1, flags: 0xa5 },
            ControlFrame::GoAway {
                last_good_stream_id: stream_id,
                status: 0,
                flags: 0xa5,
            },
            ControlFrame::WindowUpdate {
                stream_id,
                delta: 1,
                flags: 0xa5,
            },
        ] {
            let mut out = Vec::new();
            encode_control(&frame, &mut out);
            assert_eq!(out[4], 0xa5, "{frame:?}");
            assert_eq!(out.len() - 8, frame.payload_len(), "{frame:?}");
        }
    }

    #[test]
    fn oversized_payload_is_refused_without_writing() {
        let big = vec![0u8; MAX_PAYLOAD as usize - 3];
        let mut out = vec![1];
        let frame = ControlFrame::Headers {
            stream_id: StreamId::ZERO,
            flags: 0,
            header_block: &big,
        };
        assert!(try_encode_control(&frame, &mut out).is_err());
        assert_eq!(out, [1]);
        let fits = &big[..big.len() - 1];
        let frame = ControlFrame::Headers {
            stream_id: StreamId::ZERO,
            flags: 0,
            header_block: fits,
        };
        assert!(try_encode_control(&frame, &mut out).is_ok());
        let too_big = vec![0u8; MAX_PAYLOAD as usize + 1];
        assert!(encode_data(StreamId::ZERO, 0, &too_big, &mut out).is_err());
    }
}
