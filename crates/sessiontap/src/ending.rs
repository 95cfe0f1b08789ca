//! Ending a session with a reason the client prints: the bytes a proxy writes into the
//! server-to-client stream so that kubectl reports why the session ended, and where in that
//! stream they may go.
//!
//! kubectl reads a command's outcome from the SPDY `error` stream or WebSocket channel 3; a
//! `metav1.Status` with `status: Failure` there becomes an error carrying its message (client-go
//! `tools/remotecommand`, `errorDecoderV4`; earlier protocol versions carry plain text). The bytes
//! may only be added between frames (and between WebSocket messages): added inside a frame, they
//! would corrupt it. [`FrameBoundary`] follows the forwarded stream to find such places, and
//! [`SessionTap::ending_bytes`] (or [`ending_bytes`]) gives the bytes to write there, in the
//! manner of quinn-proto's `poll_transmit`: the protocol logic says what to send, the caller
//! sends it.

use spdyframe::{encode_data, FrameParser, StreamId, FLAG_FIN};
use wsframe::{encode_channel_message, encode_close, ChannelProtocol, ERROR};

use crate::protocol::{Protocol, RemoteCommandVersion};
use crate::status::failure_status_json;
use crate::tap::SessionTap;

/// Where a server-to-client stream is relative to frame (and WebSocket message) boundaries.
#[derive(Debug)]
pub struct FrameBoundary {
    state: State,
}

#[derive(Debug)]
enum State {
    /// SPDY/3.1 frames.
    Spdy(Box<FrameParser>),
    /// WebSocket frames: a new message may only start between messages, not between fragments.
    WebSocket(Box<wsframe::FrameParser>),
    /// The stream could not be followed (parse error): no safe place to add bytes.
    Lost,
}

impl FrameBoundary {
    /// A tracker for the server-to-client stream of `protocol`, at its start.
    pub fn new(protocol: Protocol) -> FrameBoundary {
        let state = match protocol {
            Protocol::Spdy { .. } => State::Spdy(Box::default()),
            Protocol::WebSocket(_) => State::WebSocket(Box::new(wsframe::FrameParser::new(
                wsframe::Limits::default(),
            ))),
        };
        FrameBoundary { state }
    }

    /// Follows bytes that were forwarded whole.
    pub fn track(&mut self, chunk: &[u8]) {
        let _ = self.until_boundary(chunk, false);
    }

    /// Whether bytes may be added now.
    pub fn at_boundary(&self) -> bool {
        match &self.state {
            State::Spdy(parser) => parser.is_idle(),
            State::WebSocket(parser) => {
                parser.is_at_frame_boundary() && !parser.in_fragmented_message()
            }
            State::Lost => false,
        }
    }

    /// Whether the stream could not be followed: no boundary will come.
    pub fn is_lost(&self) -> bool {
        matches!(self.state, State::Lost)
    }

    /// Follows `chunk` and, when `stop_at_boundary`, returns how many of its bytes complete the
    /// frame in progress (the point where bytes may be added), or `None` if the chunk ends first
    /// (or the stream cannot be followed: see [`FrameBoundary::is_lost`]).
    pub fn until_boundary(&mut self, chunk: &[u8], stop_at_boundary: bool) -> Option<usize> {
        let mut rest = chunk;
        loop {
            let position = chunk.len() - rest.len();
            if stop_at_boundary && self.at_boundary() {
                return Some(position);
            }
            if matches!(self.state, State::Lost) || !self.step(&mut rest) {
                return None;
            }
        }
    }

    /// Whether the stream is SPDY (and still followed).
    pub(crate) fn is_spdy(&self) -> bool {
        matches!(self.state, State::Spdy(_))
    }

    /// Follows the next parser event in `rest`; `false` when none completes there (the rest was
    /// consumed, or the stream could not be followed: see [`FrameBoundary::is_lost`]).
    pub(crate) fn step(&mut self, rest: &mut &[u8]) -> bool {
        let progressed = match &mut self.state {
            State::Spdy(parser) => matches!(parser.next_event(rest), Ok(Some(_))),
            State::WebSocket(parser) => matches!(parser.next_event(rest), Ok(Some(_))),
            State::Lost => return false,
        };
        if !progressed && !rest.is_empty() {
            // The parser refused the bytes: the stream can no longer be followed.
            self.state = State::Lost;
        }
        progressed
    }
}

/// The bytes that end a session of `protocol` with `message`: a Failure status on the error
/// stream (SPDY: `spdy_error_stream`, with FIN) or channel (WebSocket), then, over WebSocket, a
/// normal close frame. Write them at a [`FrameBoundary`]. `None` over SPDY while the error stream
/// is not known.
pub fn ending_bytes(
    protocol: Protocol,
    spdy_error_stream: Option<StreamId>,
    message: &str,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match protocol {
        Protocol::Spdy { version } => {
            let body = if version >= RemoteCommandVersion::V4 {
                failure_status_json(message)
            } else {
                message.as_bytes().to_vec()
            };
            encode_data(spdy_error_stream?, FLAG_FIN, &body, &mut out).ok()?;
        }
        Protocol::WebSocket(channels) => {
            let body = match channels {
                ChannelProtocol::Channel | ChannelProtocol::Base64 => message.as_bytes().to_vec(),
                _ => failure_status_json(message),
            };
            // Server frames are not masked.
            encode_channel_message(channels, ERROR, &body, None, None, &mut out);
            encode_close(Some(1000), "", None, &mut out);
        }
    }
    Some(out)
}

impl SessionTap {
    /// The bytes that end this session with `message` (see [`ending_bytes`]), for the error
    /// stream this tap saw the client open. `None` over SPDY before the client opened it.
    pub fn ending_bytes(&self, message: &str) -> Option<Vec<u8>> {
        ending_bytes(self.protocol(), self.spdy_error_stream(), message)
    }
}
