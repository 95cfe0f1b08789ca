//! Scripted `kubectl port-forward` sessions: both byte streams, over plain SPDY or the WebSocket
//! tunnel, and the events a [`PortForwardTap`](crate::portforward::PortForwardTap) must report
//! for them.
//!
//! Faithful to kubectl 1.32 (client-go `tools/portforward`) and the kubelet
//! (`pkg/kubelet/cri/streaming/portforward/httpstream.go`) through spdystream:
//! - each connection: the client's SYN_STREAM for the error stream (headers `streamtype`,
//!   `port`, `requestid`, ids counting from 0), the server's SYN_REPLY, the client's empty FIN
//!   on the error stream (kubectl never writes there), then the data stream's SYN_STREAM and
//!   SYN_REPLY; data frames of at most 32 KiB (`io.Copy`); the kubelet's error text on the error
//!   stream; the kubelet closing the error stream, then the data stream; kubectl's RST_STREAM
//!   (CANCEL) of the data stream; the kubelet's GOAWAY at the end.
//! - the tunnel: every framer write of the client (a SYN_STREAM as writes of 2, 2, 4, 4, 4, 1, 1
//!   and N bytes, a data frame as 4, 4 and N, an empty FIN as 4, 4, 0) is one masked binary
//!   message, empty ones included; the server's bytes go in binary messages of at most
//!   [`TunnelOptions::server_message_size`] bytes, optionally fragmented, with pings between
//!   fragments; close frames at the end.

use spdyframe::{
    encode_control, encode_data, ControlFrame, HeaderBlock, HeaderDeflater, StreamId, FLAG_FIN,
};
use wsframe::{encode_close, encode_frame, encode_ping, FrameHeader, Opcode};

use crate::event::Direction;
use crate::portforward::{coalesce, CloseReason, ConnectionId, PortForwardEvent};

/// One thing that happens in a scripted port-forward session. Steps naming a connection that
/// does not exist yet, or a side that has already closed, are left out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortForwardStep {
    /// kubectl accepts a local connection to forward to the pod's `port` (connections are
    /// numbered from 0 in this order, their request ids too).
    Connect {
        /// The pod's port.
        port: u16,
    },
    /// The local client sends bytes to the pod.
    ClientData {
        /// The connection.
        connection: usize,
        /// The bytes (none: nothing is sent).
        bytes: Vec<u8>,
    },
    /// The pod sends bytes to the local client.
    ServerData {
        /// The connection.
        connection: usize,
        /// The bytes (none: nothing is sent).
        bytes: Vec<u8>,
    },
    /// The kubelet writes an error on the connection's error stream.
    ServerError {
        /// The connection.
        connection: usize,
        /// The text (none: nothing is sent).
        message: String,
    },
    /// The local client half-closes: kubectl's FIN on the data stream.
    ClientClose {
        /// The connection.
        connection: usize,
    },
    /// The kubelet ends the forward: FIN on the error stream, then on the data stream.
    ServerClose {
        /// The connection.
        connection: usize,
    },
    /// kubectl resets the data stream (RST_STREAM, CANCEL), as it does once the pod's side has
    /// finished.
    ClientReset {
        /// The connection.
        connection: usize,
    },
    /// A SPDY ping from the client and its echo.
    Ping,
}

/// A port-forward session to encode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortForwardScript {
    /// What happens, in order.
    pub steps: Vec<PortForwardStep>,
}

/// A piece of one direction's byte stream: what one side writes for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireSegment {
    /// Who writes it.
    pub direction: Direction,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Both byte streams of an encoded session, as segments in the order they happen: feeding them
/// to a tap in this order respects its ordering rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortForwardWire {
    /// The segments, in order.
    pub segments: Vec<WireSegment>,
}

impl PortForwardWire {
    /// One direction's whole byte stream.
    pub fn bytes(&self, direction: Direction) -> Vec<u8> {
        self.segments
            .iter()
            .filter(|s| s.direction == direction)
            .flat_map(|s| s.bytes.iter().copied())
            .collect()
    }
}

/// How to shape the WebSocket tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelOptions {
    /// The most bytes in one server message (default 32 KiB, the API server's copy buffer).
    pub server_message_size: usize,
    /// Fragment server messages into frames of at most this many bytes (default: none).
    pub server_fragment_size: Option<usize>,
    /// WebSocket pings: from the client before each of its segments, from the server between
    /// fragments and before each of its segments.
    pub pings: bool,
    /// Seed of the client's masking keys.
    pub mask_seed: u32,
}

impl Default for TunnelOptions {
    fn default() -> Self {
        TunnelOptions {
            server_message_size: 32 * 1024,
            server_fragment_size: None,
            pings: false,
            mask_seed: 0x5eed_4321,
        }
    }
}

/// One side's framer writes for one step.
struct Action {
    direction: Direction,
    writes: Vec<Vec<u8>>,
}

/// The script's idea of one connection.
#[derive(Default)]
struct Conn {
    error: u32,
    data: u32,
    client_fin: bool,
    server_fin: bool,
    reset: bool,
    closed: bool,
    error_text: String,
    client_to_server: u64,
    server_to_client: u64,
}

/// Both sides' header compression and the actions written so far.
struct Play {
    client_deflater: HeaderDeflater,
    server_deflater: HeaderDeflater,
    actions: Vec<Action>,
    events: Vec<PortForwardEvent>,
}

const COPY_BUFFER: usize = 32 * 1024;
const CANCEL: u32 = 5;

/// `bytes` cut into writes of these sizes, the rest (possibly empty) last.
fn split(bytes: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut rest = bytes;
    let mut writes = Vec::new();
    for &size in sizes {
        let (head, tail) = rest.split_at(size.min(rest.len()));
        writes.push(head.to_vec());
        rest = tail;
    }
    writes.push(rest.to_vec());
    writes
}

fn id(n: u32) -> StreamId {
    StreamId::from_masked(n)
}

impl Play {
    fn push(&mut self, direction: Direction, writes: Vec<Vec<u8>>) {
        match self.actions.last_mut() {
            Some(last) if last.direction == direction => last.writes.extend(writes),
            _ => self.actions.push(Action { direction, writes }),
        }
    }

    /// Ends the current segment, so the next write of the same side starts another.
    fn cut(&mut self) {
        self.actions.push(Action {
            direction: Direction::ClientToServer,
            writes: Vec::new(),
        });
    }

    fn syn_stream(&mut self, stream: u32, headers: &HeaderBlock) {
        let mut block = Vec::new();
        // Deflating into a Vec does not fail for these headers.
        let _ = self.client_deflater.deflate(headers, &mut block);
        let mut out = Vec::new();
        encode_control(
            &ControlFrame::SynStream {
                stream_id: id(stream),
                associated_stream_id: StreamId::ZERO,
                priority: 0,
                slot: 0,
                flags: 0,
                header_block: &block,
            },
            &mut out,
        );
        self.push(
            Direction::ClientToServer,
            split(&out, &[2, 2, 4, 4, 4, 1, 1]),
        );
    }

    fn syn_reply(&mut self, stream: u32) {
        let mut block = Vec::new();
        let _ = self
            .server_deflater
            .deflate(&HeaderBlock::new(), &mut block);
        let mut out = Vec::new();
        encode_control(
            &ControlFrame::SynReply {
                stream_id: id(stream),
                flags: 0,
                header_block: &block,
            },
            &mut out,
        );
        self.push(Direction::ServerToClient, split(&out, &[2, 2, 4, 4]));
    }

    fn data(&mut self, direction: Direction, stream: u32, flags: u8, bytes: &[u8]) {
        let mut writes = Vec::new();
        let pieces: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(COPY_BUFFER).collect()
        };
        for piece in pieces {
            let mut out = Vec::new();
            let _ = encode_data(id(stream), flags, piece, &mut out);
            writes.extend(split(&out, &[4, 4]));
        }
        self.push(direction, writes);
    }

    fn control(&mut self, direction: Direction, frame: &ControlFrame<'_>, sizes: &[usize]) {
        let mut out = Vec::new();
        encode_control(frame, &mut out);
        let mut writes = split(&out, sizes);
        if writes.last().is_some_and(Vec::is_empty) {
            writes.pop();
        }
        self.push(direction, writes);
    }

    fn event(&mut self, event: PortForwardEvent) {
        self.events.push(event);
    }
}

impl PortForwardScript {
    fn play(&self, capture: bool) -> Play {
        let mut play = Play {
            client_deflater: HeaderDeflater::new(),
            server_deflater: HeaderDeflater::new(),
            actions: Vec::new(),
            events: Vec::new(),
        };
        let mut conns: Vec<Conn> = Vec::new();
        let mut next_stream = 1u32;
        let mut pings = 0u32;
        let (client, server) = (Direction::ClientToServer, Direction::ServerToClient);
        for step in &self.steps {
            match step {
                PortForwardStep::Connect { port } => {
                    let index = conns.len();
                    let (error, data) = (next_stream, next_stream + 2);
                    next_stream += 4;
                    let headers = |stream_type: &str| -> HeaderBlock {
                        let mut headers = HeaderBlock::new();
                        headers.push("streamtype", stream_type);
                        headers.push("port", &port.to_string());
                        headers.push("requestid", &index.to_string());
                        headers
                    };
                    play.syn_stream(error, &headers("error"));
                    play.syn_reply(error);
                    play.data(client, error, FLAG_FIN, &[]);
                    play.syn_stream(data, &headers("data"));
                    play.syn_reply(data);
                    play.cut();
                    play.event(PortForwardEvent::ConnectionOpened {
                        connection: ConnectionId(index as u64),
                        request_id: index.to_string(),
                        port: *port,
                        error_stream: id(error),
                        data_stream: id(data),
                    });
                    conns.push(Conn {
                        error,
                        data,
                        ..Conn::default()
                    });
                }
                PortForwardStep::ClientData { connection, bytes } => {
                    let Some(conn) = conns.get_mut(*connection) else {
                        continue;
                    };
                    if conn.client_fin || conn.reset || bytes.is_empty() {
                        continue;
                    }
                    conn.client_to_server += bytes.len() as u64;
                    let stream = conn.data;
                    play.data(client, stream, 0, bytes);
                    play.cut();
                    play.event(PortForwardEvent::Data {
                        connection: ConnectionId(*connection as u64),
                        direction: client,
                        len: bytes.len() as u64,
                        bytes: capture.then(|| bytes.clone()),
                    });
                }
                PortForwardStep::ServerData { connection, bytes } => {
                    let Some(conn) = conns.get_mut(*connection) else {
                        continue;
                    };
                    if conn.server_fin || bytes.is_empty() {
                        continue;
                    }
                    let (stream, counted) = (conn.data, !conn.reset);
                    if counted {
                        conn.server_to_client += bytes.len() as u64;
                    }
                    play.data(server, stream, 0, bytes);
                    play.cut();
                    // Still in flight after kubectl's reset: spdystream drops it.
                    if counted {
                        play.event(PortForwardEvent::Data {
                            connection: ConnectionId(*connection as u64),
                            direction: server,
                            len: bytes.len() as u64,
                            bytes: capture.then(|| bytes.clone()),
                        });
                    }
                }
                PortForwardStep::ServerError {
                    connection,
                    message,
                } => {
                    let Some(conn) = conns.get_mut(*connection) else {
                        continue;
                    };
                    if conn.server_fin || message.is_empty() {
                        continue;
                    }
                    conn.error_text.push_str(message);
                    let stream = conn.error;
                    play.data(server, stream, 0, message.as_bytes());
                    play.cut();
                }
                PortForwardStep::ClientClose { connection } => {
                    let Some(conn) = conns.get_mut(*connection) else {
                        continue;
                    };
                    if conn.client_fin || conn.reset {
                        continue;
                    }
                    conn.client_fin = true;
                    let stream = conn.data;
                    play.data(client, stream, FLAG_FIN, &[]);
                    play.cut();
                    if conn.server_fin && !conn.closed {
                        conn.closed = true;
                        play.event(closed(*connection, conn, CloseReason::Finished));
                    }
                }
                PortForwardStep::ServerClose { connection } => {
                    let Some(conn) = conns.get_mut(*connection) else {
                        continue;
                    };
                    if conn.server_fin {
                        continue;
                    }
                    conn.server_fin = true;
                    let (error, data) = (conn.error, conn.data);
                    play.data(server, error, FLAG_FIN, &[]);
                    play.data(server, data, FLAG_FIN, &[]);
                    play.cut();
                    if !conn.error_text.is_empty() {
                        let message = std::mem::take(&mut conn.error_text);
                        play.event(PortForwardEvent::Error {
                            connection: ConnectionId(*connection as u64),
                            request_id: connection.to_string(),
                            message,
                        });
                    }
                    if conn.client_fin && !conn.closed {
                        conn.closed = true;
                        play.event(closed(*connection, conn, CloseReason::Finished));
                    }
                }
                PortForwardStep::ClientReset { connection } => {
                    let Some(conn) = conns.get_mut(*connection) else {
                        continue;
                    };
                    if conn.reset {
                        continue;
                    }
                    conn.reset = true;
                    let stream = conn.data;
                    play.control(
                        client,
                        &ControlFrame::RstStream {
                            stream_id: id(stream),
                            status: CANCEL,
                            flags: 0,
                        },
                        &[2, 2, 4, 4, 4],
                    );
                    play.cut();
                    if !conn.closed {
                        conn.closed = true;
                        let reason = CloseReason::Reset {
                            by: client,
                            status: CANCEL,
                        };
                        play.event(closed(*connection, conn, reason));
                    }
                }
                PortForwardStep::Ping => {
                    let ping = ControlFrame::Ping {
                        id: 2 * pings + 1,
                        flags: 0,
                    };
                    pings += 1;
                    play.control(client, &ping, &[2, 2, 4, 4]);
                    play.control(server, &ping, &[2, 2, 4, 4]);
                    play.cut();
                }
            }
        }
        // spdystream's Connection.Close when the kubelet's handler returns.
        play.control(
            server,
            &ControlFrame::GoAway {
                last_good_stream_id: id(next_stream.saturating_sub(2)),
                status: 0,
                flags: 0,
            },
            &[2, 2, 4, 4, 4],
        );
        for (index, conn) in conns.iter_mut().enumerate() {
            if !conn.error_text.is_empty() {
                play.event(PortForwardEvent::Error {
                    connection: ConnectionId(index as u64),
                    request_id: index.to_string(),
                    message: std::mem::take(&mut conn.error_text),
                });
            }
            if !conn.closed {
                conn.closed = true;
                play.event(closed(index, conn, CloseReason::SessionEnded));
            }
        }
        play.event(PortForwardEvent::SessionEnded {
            connections: conns.len() as u64,
            client_to_server: conns.iter().map(|c| c.client_to_server).sum(),
            server_to_client: conns.iter().map(|c| c.server_to_client).sum(),
        });
        play.actions.retain(|action| !action.writes.is_empty());
        play
    }

    /// Both byte streams over plain SPDY/3.1.
    pub fn encode_spdy(&self) -> PortForwardWire {
        let play = self.play(false);
        PortForwardWire {
            segments: play
                .actions
                .into_iter()
                .map(|action| WireSegment {
                    direction: action.direction,
                    bytes: action.writes.concat(),
                })
                .collect(),
        }
    }

    /// Both byte streams over the WebSocket tunnel.
    pub fn encode_tunnel(&self, options: &TunnelOptions) -> PortForwardWire {
        let play = self.play(false);
        let mut mask_state = options.mask_seed | 1;
        let mut mask = move || {
            // xorshift32: distinct, deterministic keys per frame.
            mask_state ^= mask_state << 13;
            mask_state ^= mask_state >> 17;
            mask_state ^= mask_state << 5;
            Some(mask_state.to_be_bytes())
        };
        let mut segments = Vec::new();
        for action in play.actions {
            let mut out = Vec::new();
            match action.direction {
                Direction::ClientToServer => {
                    if options.pings {
                        encode_ping(b"", mask(), &mut out);
                    }
                    for write in &action.writes {
                        let header = FrameHeader {
                            mask: mask(),
                            ..FrameHeader::new(Opcode::Binary, 0)
                        };
                        encode_frame(&header, write, &mut out);
                    }
                }
                Direction::ServerToClient => {
                    let bytes = action.writes.concat();
                    for message in bytes.chunks(options.server_message_size.max(1)) {
                        server_message(message, options, &mut out);
                    }
                }
            }
            segments.push(WireSegment {
                direction: action.direction,
                bytes: out,
            });
        }
        let mut close = Vec::new();
        encode_close(Some(1000), "", mask(), &mut close);
        segments.push(WireSegment {
            direction: Direction::ClientToServer,
            bytes: close,
        });
        let mut close = Vec::new();
        encode_close(Some(1000), "", None, &mut close);
        segments.push(WireSegment {
            direction: Direction::ServerToClient,
            bytes: close,
        });
        PortForwardWire { segments }
    }

    /// The events a tap reports for either encoding, coalesced
    /// ([`coalesce`]), ending with the events of
    /// [`PortForwardTap::finish`](crate::portforward::PortForwardTap::finish). Data events
    /// carry no bytes.
    pub fn expected_events(&self) -> Vec<PortForwardEvent> {
        coalesce(self.play(false).events)
    }

    /// The same for a tap that captures payloads: data events carry the bytes.
    pub fn expected_events_with_payload(&self) -> Vec<PortForwardEvent> {
        coalesce(self.play(true).events)
    }
}

/// One server message, fragmented as asked, with pings between the fragments.
fn server_message(message: &[u8], options: &TunnelOptions, out: &mut Vec<u8>) {
    if options.pings {
        encode_ping(b"", None, out);
    }
    let size = options.server_fragment_size.unwrap_or(usize::MAX).max(1);
    let fragments: Vec<&[u8]> = message.chunks(size).collect();
    for (index, fragment) in fragments.iter().enumerate() {
        if index > 0 && options.pings {
            encode_ping(b"p", None, out);
        }
        let header = FrameHeader {
            fin: index + 1 == fragments.len(),
            ..FrameHeader::new(
                if index == 0 {
                    Opcode::Binary
                } else {
                    Opcode::Continuation
                },
                0,
            )
        };
        encode_frame(&header, fragment, out);
    }
}

fn closed(index: usize, conn: &Conn, reason: CloseReason) -> PortForwardEvent {
    PortForwardEvent::ConnectionClosed {
        connection: ConnectionId(index as u64),
        request_id: index.to_string(),
        client_to_server: conn.client_to_server,
        server_to_client: conn.server_to_client,
        reason,
    }
}
