//! Why a tap stopped.

use spdyframe::StreamId;

use crate::event::Direction;
use crate::resize::ResizeError;
use crate::status::StatusError;

/// Why a [`SessionTap`](crate::SessionTap) could not follow the session. The bytes are unaffected
/// (the tap only reads them); the recording ends. After an error every later call returns
/// [`TapError::Failed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TapError {
    /// The SPDY framing of one direction is invalid.
    #[error("SPDY framing ({direction:?}): {source}")]
    SpdyFrame {
        /// The direction the bad bytes came from.
        direction: Direction,
        /// The parser's error.
        source: spdyframe::FrameError,
    },
    /// A SPDY header block of one direction could not be inflated or decoded (its compression
    /// context is then lost, so no later block could be read either).
    #[error("SPDY header block ({direction:?}): {source}")]
    SpdyHeaders {
        /// The direction the bad block came from.
        direction: Direction,
        /// The inflater's error.
        source: spdyframe::HeaderError,
    },
    /// The SPDY streams of the session can no longer be told apart the way the server tells them
    /// apart, so output could reach the client without being seen as output.
    #[error("SPDY streams: {0}")]
    SpdyStreams(#[from] SpdyStreamError),
    /// The channel decoder reported a kind of event this tap does not know (a newer `wsframe`):
    /// it cannot tell whether the event carried output, so the session is unreadable.
    #[error("WebSocket ({direction:?}): a channel event this tap does not know")]
    UnknownChannelEvent {
        /// The direction the event came from.
        direction: Direction,
    },
    /// The WebSocket framing or a Kubernetes channel message of one direction is invalid.
    #[error("WebSocket ({direction:?}): {source}")]
    WebSocket {
        /// The direction the bad bytes came from.
        direction: Direction,
        /// The frame parser's or channel decoder's error.
        source: wsframe::StreamError,
    },
    /// The resize stream/channel is not a stream of terminal sizes.
    #[error(transparent)]
    Resize(#[from] ResizeError),
    /// The error stream/channel could not be read.
    #[error(transparent)]
    ErrorStream(#[from] StatusError),
    /// The tap failed earlier and follows the session no more.
    #[error("the session tap failed earlier")]
    Failed,
}

/// Why a tap cannot attribute the SPDY streams of a session to their roles as the kubelet does
/// (moby/spdystream and `pkg/kubelet/cri/streaming/remotecommand/httpstream.go`). A client that
/// kubectl is never makes any of these happen; a client crafted to get output past a recording
/// does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpdyStreamError {
    /// The client opened a second stream with a role it had opened a stream for already. The
    /// kubelet keeps the last one it received while it waits for streams (which one that is
    /// depends on spdystream's frame workers) and the first ones once the session runs, so the
    /// tap cannot know which stream the output goes to.
    #[error("the client opened {stream_type} stream {second} after stream {first}")]
    RoleReopened {
        /// The role's `streamtype` value.
        stream_type: &'static str,
        /// The stream that has the role.
        first: StreamId,
        /// The later stream with the same role.
        second: StreamId,
    },
    /// The client opened a stream with the id of a stream that has a role already.
    #[error("the client opened stream {stream_id} again (it is the {stream_type} stream)")]
    StreamReopened {
        /// The stream id.
        stream_id: StreamId,
        /// The role the stream has.
        stream_type: &'static str,
    },
    /// The client sent a frame with a header block (SYN_STREAM, SYN_REPLY or HEADERS) after it
    /// had opened every stream the server waits for. The server takes no more streams then, and
    /// the tap no longer keeps the client's header compression context (its memory is most of
    /// an idle session's), so it cannot read the block to tell what the frame means. kubectl
    /// never sends one; the frame is refused rather than passed unread.
    #[error("the client sent a {frame} frame (stream {stream_id}) after the session's streams were open; its header block cannot be read")]
    HeadersAfterStreamsOpen {
        /// The frame type (`SYN_STREAM`, `SYN_REPLY` or `HEADERS`).
        frame: &'static str,
        /// The stream it names.
        stream_id: StreamId,
    },
    /// The server sent data on a stream the tap does not know as stdout, stderr or the error
    /// stream: never opened (or not yet: the server's bytes came before the client's
    /// SYN_STREAM), opened with another or an unknown `streamtype`. The client may read it as
    /// output all the same.
    #[error("the server sent {len} bytes on stream {stream_id}, which is not a known stdout, stderr or error stream")]
    UnattributedData {
        /// The stream the data came on.
        stream_id: StreamId,
        /// The payload bytes in the piece of the frame that was seen.
        len: usize,
    },
}
