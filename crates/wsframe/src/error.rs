//! Errors of the frame layer, the channel layer and the two together.

use thiserror::Error;

/// A violation of RFC 6455 framing, or of this parser's [`Limits`](crate::Limits).
///
/// Every error poisons the [`FrameParser`](crate::FrameParser): a WebSocket stream cannot be
/// resynchronised once a header is misread, so later calls return [`FrameError::Poisoned`].
#[derive(Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// RSV1-3 are set (section 5.2): an extension such as permessage-deflate (RFC 7692) is in
    /// use. Kubernetes clients and servers negotiate none, and this crate supports none.
    #[error("RSV bits set: a WebSocket extension (such as permessage-deflate) is in use, which is unsupported")]
    ReservedBitsSet,
    /// A reserved opcode (`0x3`-`0x7` or `0xB`-`0xF`, section 5.2).
    #[error("reserved WebSocket opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame with more than 125 payload bytes (section 5.5).
    #[error("WebSocket control frame of {0} bytes (at most 125 allowed)")]
    ControlFrameTooLong(u64),
    /// A control frame without FIN (section 5.5: control frames are never fragmented).
    #[error("fragmented WebSocket control frame")]
    FragmentedControlFrame,
    /// A continuation frame when no fragmented message is open (section 5.4).
    #[error("WebSocket continuation frame outside a fragmented message")]
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is still open (section 5.4).
    #[error("new WebSocket data frame while a fragmented message is open")]
    ExpectedContinuation,
    /// A 64-bit payload length with its most significant bit set (section 5.2).
    #[error("WebSocket payload length {0:#x} has its most significant bit set")]
    InvalidPayloadLength(u64),
    /// A frame longer than [`Limits::max_payload`](crate::Limits::max_payload).
    #[error("WebSocket frame of {length} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// The length the header announced.
        length: u64,
        /// The limit in force.
        max: u64,
    },
    /// An earlier error ended parsing of this stream.
    #[error("WebSocket parser used after an earlier error")]
    Poisoned,
}

/// A Kubernetes channel message the [`ChannelDecoder`](crate::ChannelDecoder) cannot decode,
/// or a frame event sequence that a [`FrameParser`](crate::FrameParser) would never produce.
///
/// Every error poisons the decoder: later calls return [`ChannelError::Poisoned`].
#[derive(Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelError {
    /// Base64 protocols: the message body is not padded standard base64 (Go's
    /// `base64.StdEncoding`, which skips `\r` and `\n`, as `wsstream` decodes it).
    #[error("invalid base64 in a Kubernetes channel message")]
    InvalidBase64,
    /// Base64 protocols: the message's first byte is not an ASCII digit `'0'..='9'`.
    #[error("Kubernetes base64 channel message starts with {0:#04x}, not an ASCII digit")]
    InvalidChannelDigit(u8),
    /// `v5.channel.k8s.io`: a message starting with 255 that is not exactly two bytes
    /// (`wsstream` ends the connection on it).
    #[error("v5 close signal (channel 255) is not exactly two bytes")]
    InvalidCloseSignal,
    /// The events break RFC 6455 framing in a way the parser refuses (only possible when
    /// events are built by hand rather than taken from a [`FrameParser`](crate::FrameParser)).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Events out of order: a payload piece outside a frame, at the wrong offset or beyond
    /// the frame's length, a frame start inside a frame, or a frame end before its payload.
    #[error("WebSocket frame events out of order")]
    UnexpectedEvent,
    /// An earlier error ended decoding of this stream.
    #[error("Kubernetes channel decoder used after an earlier error")]
    Poisoned,
}

/// An error of a [`ChannelStream`](crate::ChannelStream): from its frame parser or from its
/// channel decoder.
#[derive(Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    /// The WebSocket framing is invalid.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A Kubernetes channel message is invalid.
    #[error(transparent)]
    Channel(#[from] ChannelError),
}
