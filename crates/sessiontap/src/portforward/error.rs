//! Why a port-forward tap stopped.

use spdyframe::StreamId;

use super::event::ConnectionId;
use crate::event::Direction;

/// Why a [`PortForwardTap`](super::PortForwardTap) could not follow the session. The bytes are
/// unaffected (the tap only reads them); a recording of the session ends. After an error every
/// later call returns [`PortForwardError::Failed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortForwardError {
    /// The SPDY framing of one direction is invalid.
    #[error("SPDY framing ({direction:?}): {source}")]
    SpdyFrame {
        /// The direction the bad bytes came from.
        direction: Direction,
        /// The parser's error.
        source: spdyframe::FrameError,
    },
    /// A SPDY header block of one direction could not be inflated or decoded (the direction's
    /// compression context is then lost, so no later block could be read either).
    #[error("SPDY header block ({direction:?}): {source}")]
    SpdyHeaders {
        /// The direction the bad block came from.
        direction: Direction,
        /// The inflater's error.
        source: spdyframe::HeaderError,
    },
    /// The WebSocket framing of one direction of the tunnel is invalid.
    #[error("WebSocket framing ({direction:?}): {source}")]
    WebSocket {
        /// The direction the bad bytes came from.
        direction: Direction,
        /// The frame parser's error.
        source: wsframe::FrameError,
    },
    /// A data message of the tunnel that is not binary (client-go's `TunnelingConnection` and
    /// the API server's tunnel carry the SPDY stream in binary messages only and fail on others).
    #[error("WebSocket ({direction:?}): a {opcode:?} message in a SPDY tunnel, which carries binary messages only")]
    NonBinaryMessage {
        /// The direction the message came from.
        direction: Direction,
        /// Its opcode.
        opcode: wsframe::Opcode,
    },
    /// A tunnel frame masked when it must not be, or unmasked when it must be (RFC 6455 section
    /// 5.1: client frames are masked, server frames are not; gorilla/websocket fails the
    /// connection otherwise).
    #[error("WebSocket ({direction:?}): a frame {} where the peer requires the opposite", if *masked { "masked" } else { "unmasked" })]
    MaskMismatch {
        /// The direction the frame came from.
        direction: Direction,
        /// Whether the frame was masked.
        masked: bool,
    },
    /// A data frame after the direction's close frame.
    #[error("WebSocket ({direction:?}): data after the close frame")]
    DataAfterClose {
        /// The direction the frame came from.
        direction: Direction,
    },
    /// The SPDY streams can no longer be attributed to forwarded connections the way the
    /// kubelet attributes them.
    #[error("port-forward streams: {0}")]
    Streams(#[from] PortForwardStreamError),
    /// The tap failed earlier and follows the session no more.
    #[error("the port-forward tap failed earlier")]
    Failed,
    /// Bytes were fed after [`PortForwardTap::finish`](super::PortForwardTap::finish).
    #[error("the port-forward session has ended")]
    Ended,
}

/// Why a tap cannot attribute the SPDY streams of a port-forward session to forwarded
/// connections as the kubelet does (`pkg/kubelet/cri/streaming/portforward/httpstream.go`).
/// kubectl never makes any of these happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortForwardStreamError {
    /// A client SYN_STREAM without a header the kubelet requires (`port`, `streamtype`), or
    /// without `requestid` (the kubelet then guesses a pairing from stream ids, which a tap
    /// cannot follow reliably). An empty first value counts as missing, as Go's `Header.Get`
    /// reads it.
    #[error("stream {stream_id} has no {header} header")]
    MissingHeader {
        /// The stream.
        stream_id: StreamId,
        /// The header's name.
        header: &'static str,
    },
    /// A `port` header that is not a decimal port from 1 to 65535 (the kubelet resets such a
    /// stream).
    #[error("stream {stream_id} has an invalid port header {value:?}")]
    InvalidPort {
        /// The stream.
        stream_id: StreamId,
        /// The value (at most 64 bytes of it).
        value: String,
    },
    /// A `streamtype` header other than `error` or `data` (the kubelet resets such a stream).
    #[error("stream {stream_id} has an invalid streamtype header {value:?}")]
    InvalidStreamType {
        /// The stream.
        stream_id: StreamId,
        /// The value (at most 64 bytes of it).
        value: String,
    },
    /// A `requestid` header longer than
    /// [`PortForwardLimits::max_request_id`](super::PortForwardLimits::max_request_id).
    #[error("stream {stream_id} has a requestid header of {len} bytes (at most {max})")]
    RequestIdTooLong {
        /// The stream.
        stream_id: StreamId,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The client opened a stream id that is already open.
    #[error("the client opened stream {stream_id} again")]
    StreamReopened {
        /// The stream id.
        stream_id: StreamId,
    },
    /// A second `error` or `data` stream for a request id whose connection already has one
    /// (the kubelet refuses it while the pair is incomplete and starts a second pair with that
    /// id once it is complete; the tap binds each once per connection).
    #[error("request {request_id:?}: {stream_type} stream {second} after stream {first}")]
    DuplicateStream {
        /// The request id.
        request_id: String,
        /// `error` or `data`.
        stream_type: &'static str,
        /// The stream that has the role.
        first: StreamId,
        /// The later stream.
        second: StreamId,
    },
    /// More connections (complete or waiting for their second stream) than
    /// [`PortForwardLimits::max_connections`](super::PortForwardLimits::max_connections).
    #[error("more than {max} port-forward connections at once")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// Data the tap cannot attribute to a connection: on a stream that is not open (never
    /// opened, or forgotten after its connection ended), on a data stream whose connection has
    /// no error stream yet, after its sender's FIN, client data on an error stream (the kubelet
    /// never reads it), or server data on an error stream after its FIN. Empty frames and data
    /// on streams that were reset (which spdystream drops) are not errors.
    #[error("{len} bytes ({direction:?}) on stream {stream_id} that belong to no open connection")]
    UnattributedData {
        /// The direction the data came from.
        direction: Direction,
        /// The stream.
        stream_id: StreamId,
        /// The payload bytes of the piece of the frame that was seen.
        len: usize,
    },
    /// More bytes on a connection's error stream than
    /// [`PortForwardLimits::max_error_text`](super::PortForwardLimits::max_error_text).
    #[error("{connection}: more than {max} bytes on the error stream")]
    ErrorTextTooLong {
        /// The connection.
        connection: ConnectionId,
        /// The limit.
        max: usize,
    },
}
