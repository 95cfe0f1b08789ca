//! A passive observer of `kubectl port-forward` sessions: given the two byte streams of a
//! session as a proxy forwards them, report the forwarded TCP connections — opened (request id,
//! pod port, streams), data each way (byte counts, and the bytes when asked), errors the server
//! wrote, closed (bytes each way) — and the end of the session, without changing, holding back
//! or copying the bytes it forwards.
//!
//! kubectl 1.32 (client-go `tools/portforward`) reaches the API server one of two ways
//! ([`PortForwardTransport`]):
//! - **WebSocket tunnel** (the default): `GET .../pods/{pod}/portforward` with
//!   `Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io`; after the 101 the binary messages of
//!   each direction carry a raw SPDY/3.1 byte stream (`tunneling_connection.go`, the API server's
//!   `pkg/util/proxy/streamtunnel.go`). Client frames are masked, server frames are not.
//! - **SPDY** (the fallback, or `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`): `POST` with
//!   `Upgrade: SPDY/3.1` and `X-Stream-Protocol-Version: portforward.k8s.io`; after the 101 the
//!   connection is SPDY/3.1.
//!
//! Either way each TCP connection through the forward is a pair of client-initiated SPDY streams
//! whose headers carry `streamtype` (`error` first, then `data`), `port` and `requestID` — the
//! request URL names no ports. The kubelet (`pkg/kubelet/cri/streaming/portforward/httpstream.go`)
//! pairs them by request id, dials the pod's port once both exist, copies data both ways on the
//! data stream and writes an error as text on the error stream. Header values are read as
//! spdystream and the kubelet read them (the first NUL-separated value of a name in any letter
//! case); header blocks are inflated with [`spdyframe`]'s SPDY/3 dictionary codec, one context
//! per direction.
//!
//! Whatever the tap cannot attribute to a connection the way the kubelet does is an error
//! ([`PortForwardError`]), never skipped: data on a stream that is no open connection's, a second
//! data or error stream for a request id, a bad `port` or `streamtype`, SPDY it cannot parse,
//! non-binary messages in the tunnel. Memory is bounded for any input ([`PortForwardLimits`]).
//! Sans-I/O and pure: no async runtime, no clock.
//!
//! The kubelet gives up on a request id whose second stream does not come within its stream
//! creation timeout; the tap has no clock, so a data stream arriving later for that id is paired
//! with the old error stream (the kubelet would wait for a new one and never forward): such data
//! is then counted though the pod never receives it, never the reverse.
//!
//! ```
//! use sessiontap::portforward::{coalesce, ConnectionId, PortForwardEvent, PortForwardLimits, PortForwardTap, PortForwardTransport};
//! use sessiontap::script::portforward::{PortForwardScript, PortForwardStep};
//! use sessiontap::Direction;
//!
//! // One connection to port 8080: a request, a response, closed by both sides.
//! let script = PortForwardScript {
//!     steps: vec![
//!         PortForwardStep::Connect { port: 8080 },
//!         PortForwardStep::ClientData { connection: 0, bytes: b"GET / HTTP/1.0\r\n\r\n".to_vec() },
//!         PortForwardStep::ServerData { connection: 0, bytes: b"HTTP/1.0 200 OK\r\n\r\n".to_vec() },
//!         PortForwardStep::ClientClose { connection: 0 },
//!         PortForwardStep::ServerClose { connection: 0 },
//!     ],
//! };
//! let wire = script.encode_spdy();
//!
//! let mut tap = PortForwardTap::new(PortForwardTransport::Spdy, PortForwardLimits::default());
//! let mut events = Vec::new();
//! for segment in &wire.segments {
//!     tap.feed(segment.direction, &segment.bytes, &mut |event| events.push(event))?;
//! }
//! tap.finish(&mut |event| events.push(event));
//! assert_eq!(coalesce(events.clone()), script.expected_events());
//! assert!(matches!(
//!     &events[1],
//!     PortForwardEvent::Data { connection: ConnectionId(0), direction: Direction::ClientToServer, len: 18, bytes: None }
//! ));
//! # Ok::<(), sessiontap::portforward::PortForwardError>(())
//! ```

mod connections;
mod error;
mod event;
mod headers;
mod spdy;
mod tunnel;

pub use error::{PortForwardError, PortForwardStreamError};
pub use event::{coalesce, CloseReason, ConnectionId, PortForwardEvent};

use self::spdy::SpdySession;
use self::tunnel::TunnelHalf;
use crate::event::Direction;

/// How the port-forward session reaches the server: what the 101 response chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortForwardTransport {
    /// WebSocket, subprotocol `SPDY/3.1+portforward.k8s.io`: SPDY inside binary messages.
    WebSocketTunnel,
    /// SPDY/3.1, `X-Stream-Protocol-Version: portforward.k8s.io`.
    Spdy,
}

impl PortForwardTransport {
    /// The WebSocket subprotocol of the tunnel.
    pub const TUNNEL_SUBPROTOCOL: &'static str = "SPDY/3.1+portforward.k8s.io";
    /// The `X-Stream-Protocol-Version` of plain SPDY.
    pub const SPDY_PROTOCOL: &'static str = "portforward.k8s.io";
}

/// Bounds on what a [`PortForwardTap`] holds in memory, whatever the peers send. Exceeding one is
/// an error, never an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForwardLimits {
    /// The most connections held at once: opened ones, ones waiting for their second stream, and
    /// ended ones whose error stream the server has not ended yet (default 1024).
    pub max_connections: usize,
    /// The largest decompressed header block (default 64 KiB).
    pub max_header_block: usize,
    /// The largest SPDY control frame payload, which the parser buffers when it arrives split
    /// (default 1 MiB).
    pub max_control_frame: u32,
    /// The most bytes the server may write on one error stream (default 4 KiB; the kubelet's
    /// messages are one line).
    pub max_error_text: usize,
    /// The longest `requestID` value (default 64 bytes; kubectl's are decimal counters).
    pub max_request_id: usize,
    /// Tunnel: the largest WebSocket frame payload a header may announce (default 16 MiB;
    /// payloads are never buffered).
    pub max_websocket_frame: u64,
}

impl Default for PortForwardLimits {
    fn default() -> Self {
        PortForwardLimits {
            max_connections: 1024,
            max_header_block: spdyframe::DEFAULT_MAX_DECOMPRESSED,
            max_control_frame: spdyframe::DEFAULT_MAX_CONTROL_PAYLOAD,
            max_error_text: 4 * 1024,
            max_request_id: 64,
            max_websocket_frame: wsframe::Limits::DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// Counters of a [`PortForwardTap`], for logs, metrics and checks of its bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortForwardStats {
    /// Connections opened so far.
    pub connections_opened: u64,
    /// Connections held now (at most [`PortForwardLimits::max_connections`]).
    pub connections_held: usize,
    /// Error stream bytes held until their stream ends (at most `max_connections *
    /// max_error_text`).
    pub error_bytes_held: usize,
    /// Data frames on streams that were reset (spdystream drops them) that were not counted.
    pub ignored_frames: u64,
    /// Their payload bytes.
    pub ignored_bytes: u64,
}

/// Observes both byte streams of one `kubectl port-forward` session and reports
/// [`PortForwardEvent`]s.
///
/// Feed it the bytes exactly as they are forwarded, each direction in order and split anywhere,
/// with [`PortForwardTap::feed`]; call [`PortForwardTap::finish`] when both connections have
/// closed. Events go to the `sink` as they are found, so nothing accumulates inside the tap.
///
/// **Ordering:** connections are learnt from the client's SYN_STREAMs, and the server only
/// writes on a stream after it has seen its SYN_STREAM: feed each client chunk to the tap before
/// any server chunk read after that client chunk was forwarded (for example, feed before
/// forwarding). Server data on a stream the tap does not know is an error.
///
/// **Errors:** a call that returns an error has stopped the tap: events reported before it stand,
/// nothing more is reported, and every later call returns [`PortForwardError::Failed`].
#[derive(Debug)]
pub struct PortForwardTap {
    transport: PortForwardTransport,
    spdy: SpdySession,
    tunnel: Option<Box<[TunnelHalf; 2]>>,
    failed: bool,
    ended: bool,
}

impl PortForwardTap {
    /// A tap at the start of a session (right after the 101) over `transport`.
    pub fn new(transport: PortForwardTransport, limits: PortForwardLimits) -> Self {
        let tunnel = match transport {
            PortForwardTransport::WebSocketTunnel => Some(Box::new([
                TunnelHalf::new(Direction::ClientToServer, limits.max_websocket_frame),
                TunnelHalf::new(Direction::ServerToClient, limits.max_websocket_frame),
            ])),
            PortForwardTransport::Spdy => None,
        };
        PortForwardTap {
            transport,
            spdy: SpdySession::new(&limits),
            tunnel,
            failed: false,
            ended: false,
        }
    }

    /// Whether [`PortForwardEvent::Data`] events carry the bytes (a copy of each piece; off by
    /// default). For grants that record port-forward data.
    pub fn with_payload_capture(mut self, capture: bool) -> Self {
        self.spdy.connections.set_capture(capture);
        self
    }

    /// The transport the tap was made for.
    pub fn transport(&self) -> PortForwardTransport {
        self.transport
    }

    /// Feeds the next chunk of one direction's byte stream; events go to `sink` as they are
    /// found.
    pub fn feed(
        &mut self,
        direction: Direction,
        chunk: &[u8],
        sink: &mut dyn FnMut(PortForwardEvent),
    ) -> Result<(), PortForwardError> {
        if self.failed {
            return Err(PortForwardError::Failed);
        }
        if self.ended {
            self.failed = true;
            return Err(PortForwardError::Ended);
        }
        let result = match &mut self.tunnel {
            Some(halves) => {
                let half = match direction {
                    Direction::ClientToServer => &mut halves[0],
                    Direction::ServerToClient => &mut halves[1],
                };
                half.feed(chunk, &mut self.spdy, sink)
            }
            None => self.spdy.feed(direction, chunk, sink),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Ends the session (both connections closed): reports the error texts still held, closes
    /// the connections still open ([`CloseReason::SessionEnded`]) and reports
    /// [`PortForwardEvent::SessionEnded`]. Does nothing after an error or a first `finish`.
    pub fn finish(&mut self, sink: &mut dyn FnMut(PortForwardEvent)) {
        if self.failed || self.ended {
            return;
        }
        self.ended = true;
        self.spdy.connections.finish(sink);
    }

    /// Whether the tap has failed.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The tap's counters.
    pub fn stats(&self) -> PortForwardStats {
        let connections = &self.spdy.connections;
        let counters = connections.counters;
        PortForwardStats {
            connections_opened: counters.opened,
            connections_held: connections.tracked(),
            error_bytes_held: counters.held_error_bytes,
            ignored_frames: counters.ignored_frames,
            ignored_bytes: counters.ignored_bytes,
        }
    }
}
