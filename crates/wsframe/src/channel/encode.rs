//! Encoding Kubernetes channel messages as frames, for tests and test servers.

use base64::Engine as _;

use super::protocol::{ChannelProtocol, CLOSE};
use crate::encode::encode_frame;
use crate::frame::{FrameHeader, Opcode};

/// Appends one channel message to `out` as the peers would send it.
///
/// - Binary protocols: a BINARY message `[channel] ++ data`.
/// - Base64 protocols: a TEXT message `'0' + channel` then `data` as padded standard base64
///   (`channel` should be at most 9 to be a digit; it is written as `b'0'.wrapping_add(channel)`).
///
/// With `max_frame_payload`, the message is split into frames of at most that many payload
/// bytes (the channel byte counts; use [`CLIENT_GO_BUFFER_SIZE`](crate::CLIENT_GO_BUFFER_SIZE)
/// to fragment as client-go does); otherwise it is one frame. With a `mask` every frame is
/// masked: the first with `mask` itself, each later frame with a key derived from it, so that
/// fragments do not share a key (as real clients, which pick a random key per frame).
///
/// ```
/// use wsframe::{encode_channel_message, ChannelProtocol, STDIN};
///
/// let mut out = Vec::new();
/// encode_channel_message(ChannelProtocol::V5, STDIN, b"ls\n", None, None, &mut out);
/// assert_eq!(out, [0x82, 4, 0, b'l', b's', b'\n']);
/// ```
pub fn encode_channel_message(
    protocol: ChannelProtocol,
    channel: u8,
    data: &[u8],
    mask: Option<[u8; 4]>,
    max_frame_payload: Option<usize>,
    out: &mut Vec<u8>,
) {
    let (opcode, payload) = if protocol.is_base64() {
        let engine = &base64::engine::general_purpose::STANDARD;
        let mut payload =
            Vec::with_capacity(1 + base64::encoded_len(data.len(), true).unwrap_or(0));
        payload.push(b'0'.wrapping_add(channel));
        let text = engine.encode(data);
        payload.extend_from_slice(text.as_bytes());
        (Opcode::Text, payload)
    } else {
        let mut payload = Vec::with_capacity(1 + data.len());
        payload.push(channel);
        payload.extend_from_slice(data);
        (Opcode::Binary, payload)
    };
    encode_message(opcode, &payload, mask, max_frame_payload, out);
}

/// Appends the `v5.channel.k8s.io` close signal for `channel`: the BINARY message
/// `[255, channel]` (client-go `stream.Close`).
pub fn encode_close_signal(channel: u8, mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    encode_message(Opcode::Binary, &[CLOSE, channel], mask, None, out);
}

/// Appends a data message of `opcode`, fragmented into frames of at most `max_frame_payload`
/// bytes. An empty payload is one empty frame.
pub fn encode_message(
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    max_frame_payload: Option<usize>,
    out: &mut Vec<u8>,
) {
    let size = max_frame_payload.unwrap_or(usize::MAX).max(1);
    let frames = payload.len().div_ceil(size).max(1);
    for index in 0..frames {
        let start = (index * size).min(payload.len());
        let end = start.saturating_add(size).min(payload.len());
        let header = FrameHeader {
            fin: index + 1 == frames,
            rsv: 0,
            opcode: if index == 0 {
                opcode
            } else {
                Opcode::Continuation
            },
            mask: mask.map(|key| frame_mask(key, index)),
            payload_len: 0,
        };
        encode_frame(&header, &payload[start..end], out);
    }
}

/// The key of the `index`-th frame of a message: a fixed mix of the caller's key.
fn frame_mask(key: [u8; 4], index: usize) -> [u8; 4] {
    let mixed = u32::from_be_bytes(key).wrapping_add((index as u32).wrapping_mul(0x9E37_79B9));
    mixed.to_be_bytes()
}
