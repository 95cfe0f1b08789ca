//! Frame encoding (RFC 6455 section 5.2) and the control frames of section 5.5.

use crate::frame::{FrameHeader, Opcode, MAX_CONTROL_PAYLOAD};
use crate::mask::unmask;

/// Appends one frame to `out`: `header` followed by `payload`, masked with `header.mask` when
/// it is set (`payload` is given unmasked).
///
/// The length written is `payload.len()`; `header.payload_len` is ignored. Nothing is
/// validated (RSV bits, reserved opcodes and long control frames are written as asked), so
/// tests can also build frames that a parser must refuse.
///
/// ```
/// use wsframe::{encode_frame, FrameHeader, Opcode};
///
/// let mut out = Vec::new();
/// encode_frame(&FrameHeader::new(Opcode::Text, 0), b"hi", &mut out);
/// assert_eq!(out, [0x81, 0x02, b'h', b'i']);
/// ```
pub fn encode_frame(header: &FrameHeader, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader {
        payload_len: payload.len() as u64,
        ..*header
    };
    out.reserve(header.encoded_len() + payload.len());
    header.encode(out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = header.mask {
        // Masking and unmasking are the same XOR.
        unmask(&mut out[start..], mask, 0);
    }
}

/// Appends a close frame (section 5.5.1). With a `code`, the payload is the code followed by
/// `reason`, cut at a character boundary to the 123 bytes that fit; without one, the payload
/// is empty and `reason` is not sent (the RFC allows a reason only after a code).
///
/// Status codes are in section 7.4.1; Kubernetes peers close with 1000 (normal closure).
pub fn encode_close(code: Option<u16>, reason: &str, mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    let len = match code {
        None => 0,
        Some(code) => {
            payload[..2].copy_from_slice(&code.to_be_bytes());
            let reason = truncate_to_char_boundary(reason, MAX_CONTROL_PAYLOAD - 2);
            payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            2 + reason.len()
        }
    };
    encode_control(Opcode::Close, &payload[..len], mask, out);
}

/// Appends a ping frame (section 5.5.2) carrying `payload`, cut to 125 bytes.
pub fn encode_ping(payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    encode_control(Opcode::Ping, payload, mask, out);
}

/// Appends a pong frame (section 5.5.3) carrying `payload`, cut to 125 bytes.
pub fn encode_pong(payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    encode_control(Opcode::Pong, payload, mask, out);
}

fn encode_control(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
    let header = FrameHeader {
        mask,
        ..FrameHeader::new(opcode, 0)
    };
    encode_frame(&header, payload, out);
}

/// The longest prefix of `s` of at most `max` bytes that ends at a character boundary.
fn truncate_to_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_is_cut_at_a_character_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let mut out = Vec::new();
        encode_close(Some(1000), &reason, None, &mut out);
        // 2-byte header, 2-byte code, 122 bytes of reason (61 characters).
        assert_eq!(out[1], 124);
        assert_eq!(out.len(), 2 + 124);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }

    #[test]
    fn close_without_code_is_empty() {
        let mut out = Vec::new();
        encode_close(None, "ignored", None, &mut out);
        assert_eq!(out, [0x88, 0x00]);
    }

    #[test]
    fn ping_payload_is_cut_to_125_bytes() {
        let mut out = Vec::new();
        encode_ping(&[7; 300], Some([1, 2, 3, 4]), &mut out);
        assert_eq!(out[1], 0x80 | 125);
        assert_eq!(out.len(), 2 + 4 + 125);
    }
}
