//! The WebSocket frame header (RFC 6455 section 5.2): opcode, flags, mask key and length.

/// A frame's opcode (RFC 6455 section 5.2, "Opcode: 4 bits").
///
/// Opcodes `0x3`-`0x7` (data) and `0xB`-`0xF` (control) are reserved for extensions; the
/// parser refuses them ([`FrameError::ReservedOpcode`](crate::FrameError::ReservedOpcode)),
/// but they stay representable so that tests can build such frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// `0x0`: a continuation frame of a fragmented message (section 5.4).
    Continuation,
    /// `0x1`: the first frame of a text message.
    Text,
    /// `0x2`: the first frame of a binary message.
    Binary,
    /// `0x8`: a close frame (section 5.5.1).
    Close,
    /// `0x9`: a ping (section 5.5.2).
    Ping,
    /// `0xA`: a pong (section 5.5.3).
    Pong,
    /// Any other 4-bit value (`0x3`-`0x7`, `0xB`-`0xF`), reserved by the RFC.
    Reserved(u8),
}

impl Opcode {
    /// The opcode of the low four bits of `bits` (the high four are ignored).
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x0F {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => Self::Reserved(other),
        }
    }

    /// The 4-bit wire value (a `Reserved` value is masked to four bits).
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
            Self::Reserved(bits) => bits & 0x0F,
        }
    }

    /// Whether this is a control opcode: the most significant opcode bit is set
    /// (section 5.5), which includes the reserved control opcodes `0xB`-`0xF`.
    pub fn is_control(self) -> bool {
        self.bits() & 0x08 != 0
    }
}

/// The largest payload a control frame may carry (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The longest frame header: 2 bytes, an 8-byte extended length and a 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// One frame's header as it is on the wire (RFC 6455 section 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// FIN: this is the final frame of its message.
    pub fin: bool,
    /// RSV1, RSV2 and RSV3 as the low three bits (RSV1 is `0b100`). Non-zero only when an
    /// extension such as permessage-deflate (RFC 7692) was negotiated.
    pub rsv: u8,
    /// The opcode.
    pub opcode: Opcode,
    /// The masking key, present on every client-to-server frame (section 5.3).
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// A header with FIN set, no RSV bits and no mask.
    pub fn new(opcode: Opcode, payload_len: u64) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// How many bytes [`FrameHeader::encode`] writes: 2 to [`MAX_HEADER_LEN`].
    pub fn encoded_len(&self) -> usize {
        2 + extended_len_bytes(self.payload_len) + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the header to `out`, with the length in its shortest form (section 5.2: "the
    /// minimal number of bytes MUST be used"). Values are written as they are: RSV bits and a
    /// reserved opcode are not refused here, so tests can build frames a parser must reject.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let b0 = (u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        out.push(b0);
        match self.payload_len {
            len @ 0..=125 => out.push(mask_bit | len as u8),
            len @ 126..=0xFFFF => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        if let Some(mask) = self.mask {
            out.extend_from_slice(&mask);
        }
    }
}

/// Bytes of extended payload length used for `len` in the shortest encoding.
fn extended_len_bytes(len: u64) -> usize {
    match len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    }
}

/// The full header length announced by its first two bytes.
#[inline]
pub(crate) fn header_len(b1: u8) -> usize {
    let ext = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// Decodes a complete header; `bytes.len()` must be `header_len(bytes[1])`, which the parser
/// guarantees. Missing bytes read as zero rather than panicking.
#[inline]
pub(crate) fn decode_header(bytes: &[u8]) -> FrameHeader {
    let [b0, b1] = read::<2>(bytes, 0);
    let (payload_len, mask_at) = match b1 & 0x7F {
        126 => (u64::from(u16::from_be_bytes(read(bytes, 2))), 4),
        127 => (u64::from_be_bytes(read(bytes, 2)), 10),
        len => (u64::from(len), 2),
    };
    FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0b111,
        opcode: Opcode::from_bits(b0),
        mask: (b1 & 0x80 != 0).then(|| read(bytes, mask_at)),
        payload_len,
    }
}

/// `N` bytes at `at` (zeros past the end), read whole rather than byte by byte.
#[inline]
fn read<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes
        .get(at..at + N)
        .and_then(|slice| <[u8; N]>::try_from(slice).ok())
        .unwrap_or([0; N])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_bits_round_trip() {
        for bits in 0..16u8 {
            assert_eq!(Opcode::from_bits(bits).bits(), bits);
            assert_eq!(Opcode::from_bits(bits).is_control(), bits >= 8);
        }
    }

    #[test]
    fn header_lengths_use_the_shortest_form() {
        for (len, expected) in [(0, 2), (125, 2), (126, 4), (0xFFFF, 4), (0x1_0000, 10)] {
            let mut header = FrameHeader::new(Opcode::Binary, len);
            assert_eq!(header.encoded_len(), expected);
            header.mask = Some([1, 2, 3, 4]);
            let mut out = Vec::new();
            header.encode(&mut out);
            assert_eq!(out.len(), expected + 4);
            assert_eq!(header_len(out[1]), out.len());
            assert_eq!(decode_header(&out), header);
        }
    }
}
