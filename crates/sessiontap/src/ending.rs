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

/// A server's empty, final continuation frame (FIN, opcode 0, unmasked, no payload): ends a
/// fragmented WebSocket message.
const FINAL_EMPTY_CONTINUATION: [u8; 2] = [0x80, 0x00];

/// Where a server-to-client stream is relative to frame (and WebSocket message) boundaries.
#[derive(Debug)]
pub struct FrameBoundary {
    state: State,
    /// WebSocket: the header of the frame in progress (or the last one), and whether the channel
    /// protocol is base64.
    ws_frame: Option<wsframe::FrameHeader>,
    base64: bool,
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
        let base64 = matches!(protocol, Protocol::WebSocket(channels) if channels.is_base64());
        FrameBoundary {
            state,
            ws_frame: None,
            base64,
        }
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

    /// The bytes that complete the data frame in progress (and, over WebSocket, its message)
    /// without carrying anything the server wrote: the rest of the payload as filler (spaces; `A`
    /// for base64 channels, which decodes to zero bytes; the stdout channel when even the channel
    /// byte is still to come), then over WebSocket an empty final continuation frame if the
    /// message was fragmented. After them the stream is at a boundary. `None` at a boundary, inside
    /// a frame header or a control frame (which carry no output: complete those from the stream),
    /// and when the stream cannot be followed.
    ///
    /// A proxy ending a session writes these instead of the server's own bytes, which nobody
    /// recorded.
    pub fn output_free_completion(&self) -> Option<Vec<u8>> {
        match &self.state {
            State::Spdy(parser) => {
                let remaining = parser.data_remaining()?;
                Some(vec![b' '; usize::try_from(remaining).ok()?])
            }
            State::WebSocket(parser) => {
                let frame = self.ws_frame?;
                let data = matches!(
                    frame.opcode,
                    wsframe::Opcode::Text | wsframe::Opcode::Binary | wsframe::Opcode::Continuation
                );
                let mut out = Vec::new();
                match parser.payload_position() {
                    Some(_) if !data => return None,
                    Some((offset, remaining)) => {
                        let remaining = usize::try_from(remaining).ok()?;
                        let filler = if self.base64 { b'A' } else { b' ' };
                        out.resize(remaining, filler);
                        let opens_message = frame.opcode != wsframe::Opcode::Continuation;
                        if offset == 0 && opens_message {
                            out[0] = if self.base64 { b'1' } else { wsframe::STDOUT };
                        }
                        if !frame.fin {
                            out.extend_from_slice(&FINAL_EMPTY_CONTINUATION);
                        }
                    }
                    // Between frames of a fragmented message: end it.
                    None if parser.is_at_frame_boundary() && parser.in_fragmented_message() => {
                        out.extend_from_slice(&FINAL_EMPTY_CONTINUATION);
                    }
                    None => return None,
                }
                Some(out)
            }
            State::Lost => None,
        }
    }

    /// Follows `chunk` up to the first place where the stream is at a boundary or inside a data
    /// payload ([`FrameBoundary::output_free_completion`] then has the rest), and returns how many
    /// of its bytes that took (bytes of frame headers and control frames, never of output); `None`
    /// when the chunk ends first or the stream cannot be followed.
    pub fn until_boundary_or_data(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut rest = chunk;
        loop {
            let position = chunk.len() - rest.len();
            if self.at_boundary() || self.output_free_completion().is_some() {
                return Some(position);
            }
            // A SPDY frame header is followed on its own: the parser would take the payload
            // that comes with it in the same step.
            let header_rest = match &self.state {
                State::Spdy(parser) => parser.header_remaining(),
                _ => None,
            };
            if let Some(header_rest) = header_rest.filter(|&k| k < rest.len()) {
                let (header, after) = rest.split_at(header_rest);
                let mut header = header;
                while !header.is_empty() && self.step(&mut header) {}
                if self.is_lost() {
                    return None;
                }
                rest = after;
                continue;
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
            State::WebSocket(parser) => match parser.next_event(rest) {
                Ok(Some(wsframe::Event::FrameStart(header))) => {
                    self.ws_frame = Some(header);
                    true
                }
                Ok(Some(_)) => true,
                _ => false,
            },
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
