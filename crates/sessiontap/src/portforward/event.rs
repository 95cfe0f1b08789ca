//! What a port-forward tap reports.

use std::fmt;

use spdyframe::StreamId;

use crate::event::Direction;

/// A forwarded connection within one port-forward session: numbered from 0 in the order the
/// client opened the first stream of each (kubectl opens one connection per local TCP connection,
/// its error stream first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

/// How a forwarded connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Both sides half-closed the data stream (FIN).
    Finished,
    /// One side reset the data stream (RST_STREAM). kubectl 1.32 resets it once the server has
    /// finished sending.
    Reset {
        /// Who sent the RST_STREAM.
        by: Direction,
        /// Its status code (5 is CANCEL).
        status: u32,
    },
    /// The session ended ([`PortForwardTap::finish`](super::PortForwardTap::finish)) with the
    /// data stream still open.
    SessionEnded,
}

/// One thing that happened in a port-forward session. Owned, so it can be queued.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortForwardEvent {
    /// A forwarded connection exists: the client has opened both its error and its data stream
    /// (the kubelet then dials the pod's port).
    ConnectionOpened {
        /// The connection.
        connection: ConnectionId,
        /// The `requestID` header both streams carry (kubectl: `0`, `1`, ...).
        request_id: String,
        /// The pod's port, from the data stream's `port` header (the one the kubelet dials).
        port: u16,
        /// The error stream.
        error_stream: StreamId,
        /// The data stream.
        data_stream: StreamId,
    },
    /// Bytes on a connection's data stream. One write may be reported as several events
    /// (see [`coalesce`]).
    Data {
        /// The connection.
        connection: ConnectionId,
        /// Client to server: towards the pod; server to client: from the pod.
        direction: Direction,
        /// How many bytes (never 0).
        len: u64,
        /// The bytes, when the tap was asked to capture them
        /// ([`PortForwardTap::with_payload_capture`](super::PortForwardTap::with_payload_capture)).
        bytes: Option<Vec<u8>>,
    },
    /// What the server wrote on a connection's error stream (the kubelet's message when
    /// forwarding failed), reported when the error stream ends. The connection may never have
    /// been opened (the kubelet writes there too when the data stream never comes).
    Error {
        /// The connection.
        connection: ConnectionId,
        /// Its request id.
        request_id: String,
        /// The text (UTF-8, invalid sequences replaced), at most
        /// [`PortForwardLimits::max_error_text`](super::PortForwardLimits::max_error_text) bytes
        /// on the wire.
        message: String,
    },
    /// An opened connection ended.
    ConnectionClosed {
        /// The connection.
        connection: ConnectionId,
        /// Its request id.
        request_id: String,
        /// Every byte the client sent on the data stream.
        client_to_server: u64,
        /// Every byte the server sent on the data stream (before any reset).
        server_to_client: u64,
        /// How it ended.
        reason: CloseReason,
    },
    /// The session ended ([`PortForwardTap::finish`](super::PortForwardTap::finish)); the last
    /// event.
    SessionEnded {
        /// How many connections were opened.
        connections: u64,
        /// Data bytes from the client, all connections together.
        client_to_server: u64,
        /// Data bytes from the server, all connections together.
        server_to_client: u64,
    },
}

/// Merges adjacent [`PortForwardEvent::Data`] events of the same connection and direction
/// (their payloads too, when both carry one), so that event lists that differ only in how the
/// bytes were chunked compare equal.
pub fn coalesce(events: impl IntoIterator<Item = PortForwardEvent>) -> Vec<PortForwardEvent> {
    let mut merged: Vec<PortForwardEvent> = Vec::new();
    for event in events {
        if let (
            Some(PortForwardEvent::Data {
                connection,
                direction,
                len,
                bytes,
            }),
            PortForwardEvent::Data {
                connection: next_connection,
                direction: next_direction,
                len: more,
                bytes: more_bytes,
            },
        ) = (merged.last_mut(), &event)
        {
            if connection == next_connection
                && direction == next_direction
                && bytes.is_some() == more_bytes.is_some()
            {
                *len += more;
                if let (Some(bytes), Some(more_bytes)) = (bytes, more_bytes) {
                    bytes.extend_from_slice(more_bytes);
                }
                continue;
            }
        }
        merged.push(event);
    }
    merged
}
