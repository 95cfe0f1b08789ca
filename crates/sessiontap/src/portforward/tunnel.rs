//! The WebSocket tunnel (`SPDY/3.1+portforward.k8s.io`): each direction's binary messages carry
//! that direction's raw SPDY byte stream, with no channel byte and no relation between message
//! and SPDY frame boundaries (client-go's `TunnelingConnection` writes each framer write as its
//! own message, empty ones included; the API server's tunnel writes what it reads). Messages may
//! be fragmented, with pings, pongs and the close frame between fragments.

use wsframe::{unmask, Event, FrameParser, Limits, Opcode};

use super::error::PortForwardError;
use super::event::PortForwardEvent;
use super::spdy::SpdySession;
use crate::event::Direction;

/// How many masked bytes are unmasked at a time: the tunnel's only buffer, fixed in size.
const BLOCK: usize = 4096;

/// What the frame being read carries.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// Between frames.
    None,
    /// A binary message's bytes: SPDY, unmasked with this key if any.
    Spdy(Option<[u8; 4]>),
    /// A ping, pong or close: skipped.
    Control,
}

/// One direction of the tunnel.
#[derive(Debug)]
pub(crate) struct TunnelHalf {
    direction: Direction,
    parser: FrameParser,
    frame: Frame,
    closed: bool,
    block: Box<[u8; BLOCK]>,
}

impl TunnelHalf {
    pub(crate) fn new(direction: Direction, max_frame: u64) -> Self {
        TunnelHalf {
            direction,
            parser: FrameParser::new(Limits {
                max_payload: max_frame,
            }),
            frame: Frame::None,
            closed: false,
            block: Box::new([0; BLOCK]),
        }
    }

    /// Feeds the next bytes of this direction's WebSocket stream, passing the SPDY bytes on.
    pub(crate) fn feed(
        &mut self,
        mut chunk: &[u8],
        spdy: &mut SpdySession,
        sink: &mut dyn FnMut(PortForwardEvent),
    ) -> Result<(), PortForwardError> {
        let direction = self.direction;
        while let Some(event) = self
            .parser
            .next_event(&mut chunk)
            .map_err(|source| PortForwardError::WebSocket { direction, source })?
        {
            match event {
                Event::FrameStart(header) => {
                    let masked = header.mask.is_some();
                    if masked != (direction == Direction::ClientToServer) {
                        return Err(PortForwardError::MaskMismatch { direction, masked });
                    }
                    self.frame = match header.opcode {
                        // The parser admits a continuation only inside a message it saw
                        // start, and every message start that is not binary stops the tap.
                        Opcode::Binary | Opcode::Continuation => {
                            if self.closed {
                                return Err(PortForwardError::DataAfterClose { direction });
                            }
                            Frame::Spdy(header.mask)
                        }
                        Opcode::Close => {
                            self.closed = true;
                            Frame::Control
                        }
                        Opcode::Ping | Opcode::Pong => Frame::Control,
                        opcode @ (Opcode::Text | Opcode::Reserved(_)) => {
                            return Err(PortForwardError::NonBinaryMessage { direction, opcode })
                        }
                    };
                }
                Event::Payload { bytes, offset } => match self.frame {
                    Frame::Spdy(None) => spdy.feed(direction, bytes, sink)?,
                    Frame::Spdy(Some(key)) => {
                        let mut offset = offset;
                        for piece in bytes.chunks(BLOCK) {
                            let block = &mut self.block[..piece.len()];
                            block.copy_from_slice(piece);
                            unmask(block, key, offset);
                            offset += piece.len() as u64;
                            spdy.feed(direction, block, sink)?;
                        }
                    }
                    Frame::Control | Frame::None => {}
                },
                Event::FrameEnd => self.frame = Frame::None,
            }
        }
        Ok(())
    }
}
