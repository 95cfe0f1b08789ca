//! The 8-byte header every frame starts with (draft section 2.2).

use crate::{StreamId, MAX_PAYLOAD};

/// Length of a frame header in bytes.
pub const FRAME_HEADER_LEN: usize = 8;

/// A decoded frame header. The payload of `length` bytes follows it.
///
/// ```text
/// control: |1| version(15) | type(16) |  flags(8) | length(24) |
/// data:    |0| stream-id(31)          |  flags(8) | length(24) |
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameHeader {
    /// A control frame header.
    Control {
        /// Protocol version (15 bits); 3 for SPDY/3.
        version: u16,
        /// Control frame type, see [`crate::frame_type`].
        frame_type: u16,
        /// Frame flags.
        flags: u8,
        /// Payload length (24 bits).
        length: u32,
    },
    /// A data frame header.
    Data {
        /// The stream the payload belongs to.
        stream_id: StreamId,
        /// Frame flags ([`crate::FLAG_FIN`]).
        flags: u8,
        /// Payload length (24 bits).
        length: u32,
    },
}

impl FrameHeader {
    /// Decodes a header. Every bit pattern is a valid header; the version is checked by the
    /// caller.
    pub fn parse(bytes: &[u8; FRAME_HEADER_LEN]) -> FrameHeader {
        let first = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let flags = bytes[4];
        let length = u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]);
        if first & 0x8000_0000 != 0 {
            FrameHeader::Control {
                version: ((first >> 16) & 0x7fff) as u16,
                frame_type: (first & 0xffff) as u16,
                flags,
                length,
            }
        } else {
            FrameHeader::Data {
                stream_id: StreamId::from_masked(first),
                flags,
                length,
            }
        }
    }

    /// Encodes the header. Bits that do not fit their field (a version above 15 bits, a length
    /// above 24 bits) are masked off.
    pub fn to_bytes(&self) -> [u8; FRAME_HEADER_LEN] {
        let (first, flags, length) = match *self {
            FrameHeader::Control {
                version,
                frame_type,
                flags,
                length,
            } => {
                let first =
                    0x8000_0000 | (u32::from(version & 0x7fff) << 16) | u32::from(frame_type);
                (first, flags, length)
            }
            FrameHeader::Data {
                stream_id,
                flags,
                length,
            } => (stream_id.get(), flags, length),
        };
        let f = first.to_be_bytes();
        let l = (length & MAX_PAYLOAD).to_be_bytes();
        [f[0], f[1], f[2], f[3], flags, l[1], l[2], l[3]]
    }

    /// The payload length that follows the header.
    pub fn length(&self) -> u32 {
        match *self {
            FrameHeader::Control { length, .. } | FrameHeader::Data { length, .. } => length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_header() {
        let h = FrameHeader::parse(&[0x80, 0x03, 0x00, 0x01, 0x01, 0x00, 0x01, 0x02]);
        assert_eq!(
            h,
            FrameHeader::Control {
                version: 3,
                frame_type: 1,
                flags: 1,
                length: 258
            }
        );
        assert_eq!(
            h.to_bytes(),
            [0x80, 0x03, 0x00, 0x01, 0x01, 0x00, 0x01, 0x02]
        );
    }

    #[test]
    fn data_header_masks_reserved_bit_and_keeps_full_length() {
        let h = FrameHeader::parse(&[0x7f, 0xff, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff]);
        assert_eq!(
            h,
            FrameHeader::Data {
                stream_id: StreamId::MAX,
                flags: 1,
                length: MAX_PAYLOAD
            }
        );
        assert_eq!(
            h.to_bytes(),
            [0x7f, 0xff, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff]
        );
    }
}
