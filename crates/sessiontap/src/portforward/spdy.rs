//! The SPDY/3.1 byte streams of a port-forward session, both directions: framing, header
//! blocks (one zlib context per direction, every block inflated in order) and what each frame
//! does to the connections.

use spdyframe::{ControlFrame, Event, FrameParser, HeaderInflater, Limits, FLAG_FIN};

use super::connections::Connections;
use super::error::PortForwardError;
use super::event::PortForwardEvent;
use super::PortForwardLimits;
use crate::event::Direction;

/// One direction's framing and header compression context.
#[derive(Debug)]
struct Half {
    parser: FrameParser,
    inflater: HeaderInflater,
}

impl Half {
    fn new(limits: &PortForwardLimits) -> Self {
        Half {
            parser: FrameParser::new(Limits {
                max_control_payload: limits.max_control_frame,
            }),
            inflater: HeaderInflater::new(limits.max_header_block),
        }
    }
}

/// Both directions of the SPDY connection and the forwarded connections they carry.
#[derive(Debug)]
pub(crate) struct SpdySession {
    client: Half,
    server: Half,
    pub(crate) connections: Connections,
}

impl SpdySession {
    pub(crate) fn new(limits: &PortForwardLimits) -> Self {
        SpdySession {
            client: Half::new(limits),
            server: Half::new(limits),
            connections: Connections::new(*limits),
        }
    }

    /// Feeds the next bytes of one direction's SPDY stream.
    pub(crate) fn feed(
        &mut self,
        direction: Direction,
        mut input: &[u8],
        sink: &mut dyn FnMut(PortForwardEvent),
    ) -> Result<(), PortForwardError> {
        let half = match direction {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        };
        let connections = &mut self.connections;
        let from_client = direction == Direction::ClientToServer;
        while let Some(event) = half
            .parser
            .next_event(&mut input)
            .map_err(|source| PortForwardError::SpdyFrame { direction, source })?
        {
            match event {
                Event::Control(frame) => {
                    // Every block, in order, to keep the compression context in step.
                    let headers = match frame.header_block() {
                        Some(block) => Some(half.inflater.inflate(block).map_err(|source| {
                            PortForwardError::SpdyHeaders { direction, source }
                        })?),
                        None => None,
                    };
                    match (frame, headers) {
                        (
                            ControlFrame::SynStream {
                                stream_id, flags, ..
                            },
                            Some(headers),
                        ) if from_client => {
                            connections.open_stream(stream_id, &headers, sink)?;
                            if flags & FLAG_FIN != 0 {
                                connections.fin(direction, stream_id, sink);
                            }
                        }
                        // The kubelet opens no streams, and data on one would be unattributed.
                        (ControlFrame::SynStream { .. }, _) => {}
                        (
                            ControlFrame::SynReply {
                                stream_id, flags, ..
                            }
                            | ControlFrame::Headers {
                                stream_id, flags, ..
                            },
                            _,
                        ) if flags & FLAG_FIN != 0 => connections.fin(direction, stream_id, sink),
                        (
                            ControlFrame::RstStream {
                                stream_id, status, ..
                            },
                            _,
                        ) => connections.reset(direction, stream_id, status, sink),
                        // PING, SETTINGS, WINDOW_UPDATE, GOAWAY and unknown types say nothing
                        // about the connections (spdystream ignores flow control, and GOAWAY
                        // leaves open streams running).
                        _ => {}
                    }
                }
                Event::Data {
                    stream_id,
                    bytes,
                    frame_start,
                    ..
                } => {
                    connections.data(direction, stream_id, bytes, frame_start, sink)?;
                    if event.ends_stream() {
                        connections.fin(direction, stream_id, sink);
                    }
                }
            }
        }
        Ok(())
    }
}
