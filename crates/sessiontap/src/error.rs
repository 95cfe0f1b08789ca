//! Why a tap stopped.

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
