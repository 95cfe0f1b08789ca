//! The WebSocket side of the SPDY tunnel, as client-go's `TunnelingConnection` (used by the
//! apiserver's `streamtunnel.go` on the server side too) carries it:
//!
//! - reading: every binary message's payload, unmasked, is the next piece of the SPDY byte
//!   stream, whatever its size (zero included) and wherever it splits SPDY frames; continuation
//!   frames go on the message. Client frames must be masked (RFC 6455 section 5.1). A text
//!   message ends the tunnel (`invalid message type received`); pings are answered with a pong
//!   carrying the same payload; a close frame ends the tunnel, answered with a close frame;
//! - writing: each piece of the server's SPDY byte stream is one unmasked binary message.

use wsframe::{
    encode_close, encode_frame, encode_pong, Event, FrameHeader, FrameParser, Limits, Opcode,
    MAX_CONTROL_PAYLOAD,
};

/// The largest frame payload a client may announce: a SPDY frame is at most 2^24 + 7 bytes
/// and kubectl writes at most one per message. Payloads are streamed, never held whole.
const MAX_CLIENT_FRAME: u64 = 1 << 25;
/// Close status 1000, normal closure (RFC 6455 section 7.4.1).
const NORMAL_CLOSURE: u16 = 1000;

/// What the frame being read is.
#[derive(Debug)]
enum Frame {
    /// Part of a binary message: its payload is SPDY bytes.
    Data { mask: [u8; 4] },
    /// A ping, whose payload is collected to be echoed.
    Ping { mask: [u8; 4], payload: Vec<u8> },
    /// Another control frame (pong), skipped.
    Skip,
    /// A close frame: the tunnel ends at its end.
    Close,
}

/// Turns the client's WebSocket frames back into the SPDY byte stream.
#[derive(Debug)]
pub(super) struct TunnelReader {
    parser: FrameParser,
    frame: Option<Frame>,
    /// Whether a binary message is open (its continuation frames carry SPDY bytes).
    in_message: bool,
}

impl TunnelReader {
    pub(super) fn new() -> Self {
        TunnelReader {
            parser: FrameParser::new(Limits {
                max_payload: MAX_CLIENT_FRAME,
            }),
            frame: None,
            in_message: false,
        }
    }

    /// Reads one piece of the connection: SPDY bytes are appended to `spdy`, pings to answer to
    /// `pongs`. `Ok(false)` once the client has closed; an error when the tunnel cannot go on.
    pub(super) fn feed(
        &mut self,
        mut chunk: &[u8],
        spdy: &mut Vec<u8>,
        pongs: &mut Vec<Vec<u8>>,
    ) -> Result<bool, String> {
        while let Some(event) = self
            .parser
            .next_event(&mut chunk)
            .map_err(|e| e.to_string())?
        {
            match event {
                Event::FrameStart(header) => self.frame = Some(self.start(&header)?),
                Event::Payload { bytes, offset } => match &mut self.frame {
                    Some(Frame::Data { mask }) => {
                        let start = spdy.len();
                        spdy.extend_from_slice(bytes);
                        wsframe::unmask(&mut spdy[start..], *mask, offset);
                    }
                    Some(Frame::Ping { mask, payload }) => {
                        let start = payload.len();
                        let room = MAX_CONTROL_PAYLOAD.saturating_sub(start);
                        payload.extend_from_slice(&bytes[..bytes.len().min(room)]);
                        wsframe::unmask(&mut payload[start..], *mask, offset);
                    }
                    Some(Frame::Skip | Frame::Close) | None => {}
                },
                Event::FrameEnd => match self.frame.take() {
                    Some(Frame::Ping { payload, .. }) => pongs.push(payload),
                    Some(Frame::Close) => return Ok(false),
                    Some(Frame::Data { .. } | Frame::Skip) | None => {}
                },
            }
        }
        Ok(true)
    }

    /// What a frame is, from its header; an error for what gorilla/websocket or
    /// `TunnelingConnection` refuses.
    fn start(&mut self, header: &FrameHeader) -> Result<Frame, String> {
        let Some(mask) = header.mask else {
            return Err("unmasked client frame".to_owned());
        };
        if header.rsv != 0 {
            return Err("unexpected reserved bits".to_owned());
        }
        Ok(match header.opcode {
            Opcode::Binary if !self.in_message => {
                self.in_message = !header.fin;
                Frame::Data { mask }
            }
            Opcode::Continuation if self.in_message => {
                self.in_message = !header.fin;
                Frame::Data { mask }
            }
            Opcode::Text => return Err("invalid message type received".to_owned()),
            Opcode::Ping => Frame::Ping {
                mask,
                payload: Vec::new(),
            },
            Opcode::Pong => Frame::Skip,
            Opcode::Close => Frame::Close,
            other => return Err(format!("unexpected frame {other:?}")),
        })
    }
}

/// Wraps the server's SPDY bytes in WebSocket frames.
#[derive(Debug, Default)]
pub(super) struct TunnelWriter;

impl TunnelWriter {
    /// One binary message carrying `spdy`.
    pub(super) fn binary(&mut self, spdy: &[u8], out: &mut Vec<u8>) {
        encode_frame(&FrameHeader::new(Opcode::Binary, 0), spdy, out);
    }

    /// A pong answering a ping.
    pub(super) fn pong(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        encode_pong(payload, None, out);
    }

    /// The close frame that ends the tunnel.
    pub(super) fn close(&mut self, out: &mut Vec<u8>) {
        encode_close(Some(NORMAL_CLOSURE), "", None, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            fin,
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::new(opcode, 0)
        };
        let mut out = Vec::new();
        encode_frame(&header, payload, &mut out);
        out
    }

    #[test]
    fn messages_of_any_size_and_split_rejoin_the_stream() {
        let mut wire = Vec::new();
        wire.extend(masked(Opcode::Binary, true, b"\x80\x03"));
        wire.extend(masked(Opcode::Binary, true, b""));
        wire.extend(masked(Opcode::Binary, false, b"\x00\x01"));
        wire.extend(masked(Opcode::Ping, true, b"hi"));
        wire.extend(masked(Opcode::Continuation, true, b"rest"));
        for split in 0..wire.len() {
            let mut reader = TunnelReader::new();
            let (mut spdy, mut pongs) = (Vec::new(), Vec::new());
            for piece in [&wire[..split], &wire[split..]] {
                assert_eq!(reader.feed(piece, &mut spdy, &mut pongs), Ok(true));
            }
            assert_eq!(spdy, b"\x80\x03\x00\x01rest", "split at {split}");
            assert_eq!(pongs, [b"hi".to_vec()]);
        }
    }

    #[test]
    fn text_unmasked_and_close_end_the_tunnel() {
        let (mut spdy, mut pongs) = (Vec::new(), Vec::new());
        let text = masked(Opcode::Text, true, b"x");
        assert!(TunnelReader::new()
            .feed(&text, &mut spdy, &mut pongs)
            .is_err());
        let mut unmasked = Vec::new();
        encode_frame(&FrameHeader::new(Opcode::Binary, 0), b"x", &mut unmasked);
        assert!(TunnelReader::new()
            .feed(&unmasked, &mut spdy, &mut pongs)
            .is_err());
        let mut close = Vec::new();
        encode_close(Some(1000), "", Some([9, 9, 9, 9]), &mut close);
        assert_eq!(
            TunnelReader::new().feed(&close, &mut spdy, &mut pongs),
            Ok(false)
        );
    }
}
