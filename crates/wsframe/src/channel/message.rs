//! The message half of the channel decoder: channel byte, codec (raw, base64, v5 close
//! signal) and message end, fed unmasked bytes.

use super::base64::Base64Decoder;
use super::decoder::{ChannelEvent, SCRATCH_CHUNK};
use super::protocol::{ChannelProtocol, CLOSE};
use crate::error::ChannelError;

/// Where the open message stands.
#[derive(Clone, Copy, Debug)]
pub(super) enum Message {
    /// No data message is open.
    Idle,
    /// A message is open and its first (channel) byte has not arrived yet.
    AwaitChannel,
    /// A binary-protocol message on `channel`.
    Raw { channel: u8 },
    /// A base64-protocol message on `channel`.
    Base64 { channel: u8 },
    /// A v5 close signal; `channel` once its second byte has arrived.
    CloseSignal { channel: Option<u8> },
}

/// The per-message half of the decoder: channel byte, codec and message end.
#[derive(Clone, Debug)]
pub(super) struct MessageDecoder {
    pub(super) protocol: ChannelProtocol,
    pub(super) state: Message,
    base64: Base64Decoder,
    pub(super) decoded: Vec<u8>,
}

impl MessageDecoder {
    pub(super) fn new(protocol: ChannelProtocol) -> Self {
        Self {
            protocol,
            state: Message::Idle,
            base64: Base64Decoder::new(),
            decoded: Vec::new(),
        }
    }

    /// Takes the next unmasked bytes of the open message.
    pub(super) fn data(
        &mut self,
        mut bytes: &[u8],
        sink: &mut dyn FnMut(ChannelEvent<'_>),
    ) -> Result<(), ChannelError> {
        if let Message::AwaitChannel = self.state {
            let Some((&first, rest)) = bytes.split_first() else {
                return Ok(());
            };
            bytes = rest;
            self.state = if self.protocol.supports_close_signal() && first == CLOSE {
                Message::CloseSignal { channel: None }
            } else if self.protocol.is_base64() {
                if !first.is_ascii_digit() {
                    return Err(ChannelError::InvalidChannelDigit(first));
                }
                Message::Base64 {
                    channel: first - b'0',
                }
            } else {
                Message::Raw { channel: first }
            };
        }
        match self.state {
            Message::Idle | Message::AwaitChannel => Err(ChannelError::UnexpectedEvent),
            Message::Raw { channel } => {
                if !bytes.is_empty() {
                    sink(ChannelEvent::Data { channel, bytes });
                }
                Ok(())
            }
            Message::Base64 { channel } => {
                // In bounded steps: an unmasked piece can be as large as the caller's read.
                for chunk in bytes.chunks(SCRATCH_CHUNK) {
                    self.base64.decode(chunk, &mut self.decoded)?;
                    if !self.decoded.is_empty() {
                        sink(ChannelEvent::Data {
                            channel,
                            bytes: &self.decoded,
                        });
                    }
                }
                Ok(())
            }
            Message::CloseSignal { channel } => match (channel, bytes) {
                (_, []) => Ok(()),
                (None, [closed]) => {
                    self.state = Message::CloseSignal {
                        channel: Some(*closed),
                    };
                    Ok(())
                }
                _ => Err(ChannelError::InvalidCloseSignal),
            },
        }
    }

    /// Ends the open message.
    pub(super) fn end(
        &mut self,
        sink: &mut dyn FnMut(ChannelEvent<'_>),
    ) -> Result<(), ChannelError> {
        match std::mem::replace(&mut self.state, Message::Idle) {
            Message::Idle => Err(ChannelError::UnexpectedEvent),
            // An empty message: wsstream skips it.
            Message::AwaitChannel => Ok(()),
            Message::Raw { channel } => {
                sink(ChannelEvent::MessageEnd { channel });
                Ok(())
            }
            Message::Base64 { channel } => {
                self.base64.finish()?;
                sink(ChannelEvent::MessageEnd { channel });
                Ok(())
            }
            Message::CloseSignal {
                channel: Some(channel),
            } => {
                sink(ChannelEvent::ChannelClosed { channel });
                Ok(())
            }
            Message::CloseSignal { channel: None } => Err(ChannelError::InvalidCloseSignal),
        }
    }
}
