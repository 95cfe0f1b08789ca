//! A notice shown on the client's stdout before the server's first output: what a proxy writes so
//! that the people in a recorded session know it is recorded.
//!
//! The bytes are a stdout frame of the session's protocol (a SPDY DATA frame on the client's stdout
//! stream, or a WebSocket stdout channel message), written at a frame boundary of the
//! server-to-client stream. Over SPDY they go right before the server's first DATA frame on the
//! stdout stream: by then the server has answered the stream's SYN_STREAM, so the client meets
//! the notice exactly where it would meet the server's own first output.

use spdyframe::{encode_data, StreamId};
use wsframe::{encode_channel_message, STDOUT};

use crate::ending::FrameBoundary;
use crate::protocol::Protocol;
use crate::tap::SessionTap;

/// The bytes that put `text` on the client's stdout. `None` over SPDY while the stdout stream is
/// not known, and when `text` does not fit one frame.
pub fn stdout_bytes(
    protocol: Protocol,
    spdy_stdout_stream: Option<StreamId>,
    text: &[u8],
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match protocol {
        Protocol::Spdy { .. } => encode_data(spdy_stdout_stream?, 0, text, &mut out).ok()?,
        // Server frames are not masked.
        Protocol::WebSocket(channels) => {
            encode_channel_message(channels, STDOUT, text, None, None, &mut out)
        }
    }
    Some(out)
}

impl SessionTap {
    /// Over SPDY, the id of the client's `stdout` stream once its SYN_STREAM has been seen.
    pub fn spdy_stdout_stream(&self) -> Option<StreamId> {
        self.spdy_stream_of_stdout()
    }

    /// The bytes that put `text` on the client's stdout (see [`stdout_bytes`]).
    pub fn stdout_bytes(&self, text: &[u8]) -> Option<Vec<u8>> {
        stdout_bytes(self.protocol(), self.spdy_stdout_stream(), text)
    }
}

impl FrameBoundary {
    /// Over SPDY: follows `chunk` up to the first frame boundary where a DATA frame on `stream`
    /// starts and returns that offset, or follows the whole chunk and returns `None` when no such
    /// frame starts in it (over WebSocket, always). A frame header split across chunks is found
    /// only once its first four bytes are in one chunk.
    pub fn until_data_on(&mut self, chunk: &[u8], stream: StreamId) -> Option<usize> {
        let mut rest = chunk;
        loop {
            let position = chunk.len() - rest.len();
            if self.is_spdy() && self.at_boundary() && starts_data_frame_on(rest, stream) {
                return Some(position);
            }
            if rest.is_empty() || !self.step(&mut rest) {
                return None;
            }
        }
    }
}

/// Whether `bytes` begin with the header of a SPDY DATA frame on `stream` (control bit clear,
/// then the 31-bit stream id).
fn starts_data_frame_on(bytes: &[u8], stream: StreamId) -> bool {
    match bytes.first_chunk::<4>() {
        Some(head) => u32::from_be_bytes(*head) == stream.get(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RemoteCommandVersion;

    #[test]
    fn a_data_frame_on_the_stream_is_found_where_it_starts() {
        let protocol = Protocol::Spdy {
            version: RemoteCommandVersion::V4,
        };
        let stdout = StreamId::new(3).expect("id");
        let other = StreamId::new(5).expect("id");
        let mut wire = Vec::new();
        encode_data(other, 0, b"stderr first", &mut wire).expect("frame");
        let at = wire.len();
        encode_data(stdout, 0, b"out", &mut wire).expect("frame");
        let mut boundary = FrameBoundary::new(protocol);
        assert_eq!(boundary.until_data_on(&wire, stdout), Some(at));
        // Split in the middle of the first frame: found in the second piece.
        let mut boundary = FrameBoundary::new(protocol);
        assert_eq!(boundary.until_data_on(&wire[..5], stdout), None);
        assert_eq!(boundary.until_data_on(&wire[5..], stdout), Some(at - 5));
        assert_eq!(
            stdout_bytes(protocol, Some(stdout), b"notice").map(|b| b[..4].to_vec()),
            Some(3u32.to_be_bytes().to_vec())
        );
        assert_eq!(stdout_bytes(protocol, None, b"notice"), None);
    }
}
