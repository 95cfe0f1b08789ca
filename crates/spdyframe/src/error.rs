//! Errors of the parser, the encoder and the header-block codec.

/// Why [`crate::FrameParser`] stopped. After any error the parser is poisoned: the byte stream
/// can no longer be framed reliably, so every later call returns [`FrameError::Poisoned`].
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A control frame carried a version other than 3.
    #[error("unsupported SPDY version {0} (only SPDY/3 is spoken)")]
    UnsupportedVersion(u16),
    /// A control frame announced a payload above [`crate::Limits::max_control_payload`]; it is
    /// refused from its header alone, before any of it is buffered.
    #[error("control frame of {length} bytes exceeds the limit of {max} bytes")]
    ControlFrameTooLarge {
        /// The announced payload length.
        length: u32,
        /// The configured limit.
        max: u32,
    },
    /// A control frame's payload does not fit its type.
    #[error("invalid control frame of type {frame_type}: {reason}")]
    InvalidControlFrame {
        /// The control frame type.
        frame_type: u16,
        /// What is wrong, for example "RST_STREAM length is not 8".
        reason: &'static str,
    },
    /// The parser returned an error before and cannot continue.
    #[error("the frame parser failed earlier and cannot continue")]
    Poisoned,
}

/// Why a frame could not be encoded.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload does not fit the 24-bit length field.
    #[error("frame payload of {length} bytes exceeds the SPDY maximum of {max} bytes")]
    PayloadTooLarge {
        /// The payload length asked for.
        length: usize,
        /// [`crate::MAX_PAYLOAD`].
        max: u32,
    },
}

/// Why a header block could not be decoded, inflated or deflated.
///
/// After [`HeaderError::Zlib`] or [`HeaderError::TooLarge`] from [`crate::HeaderInflater`] the
/// direction's compression context is lost (the inflater stopped mid-stream), so every later
/// call returns [`HeaderError::Poisoned`]. [`HeaderError::Malformed`] leaves the context intact.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The zlib stream is corrupt, or uses a dictionary other than SPDY/3's.
    #[error("header block decompression failed: {0}")]
    Zlib(String),
    /// One block decompressed to more than the inflater's cap (a zlib bomb, or a peer far outside
    /// what Kubernetes sends).
    #[error("header block decompresses to more than {max} bytes")]
    TooLarge {
        /// The cap on one block's decompressed size.
        max: usize,
    },
    /// The decompressed block is not a valid name/value block: counts or lengths past its end,
    /// trailing bytes, or names or values that are not UTF-8.
    #[error("malformed header block: {0}")]
    Malformed(&'static str),
    /// The inflater failed earlier and its compression context is lost.
    #[error("the header inflater failed earlier and cannot continue")]
    Poisoned,
}
