//! A frame parser and a channel decoder together, for callers that only want channel events.

use crate::channel::{ChannelDecoder, ChannelEvent, ChannelProtocol};
use crate::error::{ChannelError, StreamError};
use crate::parser::{FrameParser, Limits};

/// One direction of a Kubernetes channel connection: a [`FrameParser`] feeding a
/// [`ChannelDecoder`]. Feed it the bytes as they are read; it never holds them.
///
/// ```
/// use wsframe::{encode_channel_message, encode_ping, ChannelEvent, ChannelProtocol, ChannelStream, Limits, STDOUT};
///
/// let mut wire = Vec::new();
/// encode_channel_message(ChannelProtocol::V5, STDOUT, b"total 0\n", None, None, &mut wire);
/// encode_ping(b"", None, &mut wire);
///
/// let mut stream = ChannelStream::new(ChannelProtocol::V5, Limits::default());
/// let mut seen = Vec::new();
/// for chunk in wire.chunks(3) {
///     stream.feed(chunk, &mut |event| seen.push(format!("{event:?}")))?;
/// }
/// assert_eq!(seen.last().map(String::as_str), Some("Ping"));
/// # Ok::<(), wsframe::StreamError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChannelStream {
    parser: FrameParser,
    decoder: ChannelDecoder,
}

impl ChannelStream {
    /// A stream at its start, for `protocol` (from the 101 response) and `limits`.
    pub fn new(protocol: ChannelProtocol, limits: Limits) -> Self {
        Self {
            parser: FrameParser::new(limits),
            decoder: ChannelDecoder::new(protocol),
        }
    }

    /// Parses and decodes all of `chunk`; decoded events go to `sink`.
    ///
    /// # Errors
    /// The first [`StreamError`]; the stream is then poisoned and every later call fails
    /// (with [`FrameError::Poisoned`](crate::FrameError::Poisoned) or
    /// [`ChannelError::Poisoned`]). Events already passed to `sink` stay valid.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        sink: &mut dyn FnMut(ChannelEvent<'_>),
    ) -> Result<(), StreamError> {
        if self.decoder.is_poisoned() {
            return Err(ChannelError::Poisoned.into());
        }
        while let Some(event) = self.parser.next_event(&mut chunk)? {
            self.decoder.feed(&event, sink)?;
        }
        Ok(())
    }

    /// The frame parser.
    pub fn parser(&self) -> &FrameParser {
        &self.parser
    }

    /// The channel decoder.
    pub fn decoder(&self) -> &ChannelDecoder {
        &self.decoder
    }
}
