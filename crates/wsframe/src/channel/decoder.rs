//! The channel decoder: frame events in, Kubernetes channel events out.

use super::message::{Message, MessageDecoder};
use super::protocol::ChannelProtocol;
use crate::error::{ChannelError, FrameError};
use crate::frame::{FrameHeader, Opcode, MAX_CONTROL_PAYLOAD};
use crate::mask::{unmask, unmask_into};
use crate::parser::Event;

/// Masked payload is unmasked into the decoder's scratch buffer at most this many bytes at a
/// time, which bounds the buffer whatever size of piece the decoder is fed.
pub(super) const SCRATCH_CHUNK: usize = 16 * 1024;

/// What the [`ChannelDecoder`] found in the stream. New kinds of event may be added; a reader
/// that must account for every byte (a recording tap) should treat an event it does not know as
/// unreadable rather than skip it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelEvent<'a> {
    /// Bytes of a message on `channel`: unmasked, and base64-decoded on base64 protocols.
    /// A message may produce several `Data` events (at least one per frame piece holding data,
    /// more for large pieces); they are never empty. A message with no data (Kubernetes sends
    /// one on each writable channel right after the 101) produces only its `MessageEnd`.
    Data {
        /// The channel number ([`STDOUT`](crate::STDOUT), ...).
        channel: u8,
        /// The decoded bytes, borrowed from the input when no unmasking or decoding was
        /// needed, otherwise from the decoder's scratch buffer.
        bytes: &'a [u8],
    },
    /// The message on `channel` is complete.
    MessageEnd {
        /// The channel number.
        channel: u8,
    },
    /// `v5.channel.k8s.io`: the peer half-closed `channel` with the message `[255, channel]`.
    /// The message produces this event only (no `Data` or `MessageEnd`).
    ChannelClosed {
        /// The closed channel.
        channel: u8,
    },
    /// A ping frame (its payload is not reported).
    Ping,
    /// A pong frame (its payload is not reported).
    Pong,
    /// A close frame (RFC 6455 section 5.5.1). The status code is reported as sent, not
    /// validated against section 7.4; a one-byte payload is read as no code.
    Close {
        /// The status code, if the payload has one.
        code: Option<u16>,
        /// The reason (at most 123 bytes), decoded as UTF-8 with invalid sequences replaced.
        reason: String,
    },
}

/// Decodes Kubernetes channel messages from the [`Event`]s of a
/// [`FrameParser`](crate::FrameParser), for one direction of a connection.
///
/// Semantics, after `wsstream.Conn.handle` (server) and client-go's `readDemuxLoop`:
/// - A message's first byte is its channel; continuation frames carry none. The channel comes
///   from the message's first payload byte, wherever it falls (normally the first frame).
/// - Binary protocols: the data is the rest of the message as is. TEXT frames are treated
///   like BINARY ones (the Python client sends TEXT frames with a raw channel byte).
/// - Base64 protocols: the first byte is the ASCII digit `'0' + channel` and the rest is
///   padded base64 (see [`ChannelError::InvalidBase64`]). As in `wsstream`, the codec follows
///   the protocol, not the opcode: BINARY messages are decoded the same way. Incomplete
///   4-character groups are carried across frames and pieces (at most three characters).
/// - v5: a message whose first byte is 255 is a close signal and must be exactly
///   `[255, ch]`; on every other protocol 255 is an ordinary channel number.
/// - An empty message (not even a channel byte) is skipped, as `wsstream` skips it.
/// - Control frames may come between the frames of a message and do not disturb it.
///
/// Memory is bounded for any input: a 125-byte control payload buffer and scratch buffers of
/// at most 16 KiB (plus 12 KiB for base64 output), reused. The caller's bytes are never
/// modified: masked payload is unmasked into the scratch buffer.
///
/// ```
/// use wsframe::{encode_channel_message, ChannelDecoder, ChannelEvent, ChannelProtocol, FrameParser, Limits, STDOUT};
///
/// let mut wire = Vec::new();
/// encode_channel_message(ChannelProtocol::Base64, STDOUT, b"hello", Some([1, 2, 3, 4]), None, &mut wire);
///
/// let mut parser = FrameParser::new(Limits::default());
/// let mut decoder = ChannelDecoder::new(ChannelProtocol::Base64);
/// let mut stdout = Vec::new();
/// let mut input = wire.as_slice();
/// while let Some(event) = parser.next_event(&mut input)? {
///     decoder.feed(&event, &mut |e| {
///         if let ChannelEvent::Data { channel: STDOUT, bytes } = e {
///             stdout.extend_from_slice(bytes);
///         }
///     })?;
/// }
/// assert_eq!(stdout, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChannelDecoder {
    message: MessageDecoder,
    frame: Frame,
    control: [u8; MAX_CONTROL_PAYLOAD],
    scratch: Vec<u8>,
    poisoned: bool,
}

#[derive(Clone, Copy, Debug)]
enum Frame {
    /// Between frames.
    None,
    /// Inside a text, binary or continuation frame.
    Data {
        mask: Option<[u8; 4]>,
        len: u64,
        received: u64,
        fin: bool,
    },
    /// Inside a control frame; its payload collects in `ChannelDecoder::control`.
    Control {
        opcode: Opcode,
        mask: Option<[u8; 4]>,
        len: u64,
        received: u64,
    },
}

impl ChannelDecoder {
    /// A decoder for the protocol the 101 response selected.
    pub fn new(protocol: ChannelProtocol) -> Self {
        Self {
            message: MessageDecoder::new(protocol),
            frame: Frame::None,
            control: [0; MAX_CONTROL_PAYLOAD],
            scratch: Vec::new(),
            poisoned: false,
        }
    }

    /// The protocol this decoder was made for.
    pub fn protocol(&self) -> ChannelProtocol {
        self.message.protocol
    }

    /// Whether a data message is open (started and its final frame not yet ended).
    pub fn in_message(&self) -> bool {
        !matches!(self.message.state, Message::Idle)
    }

    /// Whether an earlier error ended decoding (every later call fails).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Feeds one frame event; what it completes goes to `sink`. Events must come in the order
    /// a [`FrameParser`](crate::FrameParser) produces them.
    ///
    /// # Errors
    /// Any [`ChannelError`]; the decoder is then poisoned and answers
    /// [`ChannelError::Poisoned`]. Events already passed to `sink` stay valid.
    #[inline]
    pub fn feed(
        &mut self,
        event: &Event<'_>,
        sink: &mut dyn FnMut(ChannelEvent<'_>),
    ) -> Result<(), ChannelError> {
        if self.poisoned {
            return Err(ChannelError::Poisoned);
        }
        let result = match *event {
            Event::FrameStart(header) => self.start(&header),
            Event::Payload { bytes, offset } => self.payload(bytes, offset, sink),
            Event::FrameEnd => self.end(sink),
        };
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    #[inline]
    fn start(&mut self, header: &FrameHeader) -> Result<(), ChannelError> {
        if !matches!(self.frame, Frame::None) {
            return Err(ChannelError::UnexpectedEvent);
        }
        // The parser refuses all of these; they are checked again for hand-built events.
        if header.rsv != 0 {
            return Err(FrameError::ReservedBitsSet.into());
        }
        let (mask, len) = (header.mask, header.payload_len);
        self.frame = match header.opcode {
            Opcode::Reserved(bits) => return Err(FrameError::ReservedOpcode(bits).into()),
            Opcode::Text | Opcode::Binary => {
                if self.in_message() {
                    return Err(FrameError::ExpectedContinuation.into());
                }
                self.message.state = Message::AwaitChannel;
                Frame::Data {
                    mask,
                    len,
                    received: 0,
                    fin: header.fin,
                }
            }
            Opcode::Continuation => {
                if !self.in_message() {
                    return Err(FrameError::UnexpectedContinuation.into());
                }
                Frame::Data {
                    mask,
                    len,
                    received: 0,
                    fin: header.fin,
                }
            }
            opcode @ (Opcode::Close | Opcode::Ping | Opcode::Pong) => {
                if !header.fin {
                    return Err(FrameError::FragmentedControlFrame.into());
                }
                if len > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(FrameError::ControlFrameTooLong(len).into());
                }
                Frame::Control {
                    opcode,
                    mask,
                    len,
                    received: 0,
                }
            }
        };
        Ok(())
    }

    #[inline]
    fn payload(
        &mut self,
        bytes: &[u8],
        offset: u64,
        sink: &mut dyn FnMut(ChannelEvent<'_>),
    ) -> Result<(), ChannelError> {
        let (Frame::Data {
            mask,
            len,
            received,
            ..
        }
        | Frame::Control {
            mask,
            len,
            received,
            ..
        }) = &mut self.frame
        else {
            return Err(ChannelError::UnexpectedEvent);
        };
        let piece_len = bytes.len() as u64;
        if offset != *received || piece_len > *len - *received {
            return Err(ChannelError::UnexpectedEvent);
        }
        *received += piece_len;
        let mask = *mask;
        match self.frame {
            Frame::Control { .. } => {
                // Lossless: offset + bytes.len() <= len <= 125.
                let start = offset as usize;
                let held = &mut self.control[start..start + bytes.len()];
                held.copy_from_slice(bytes);
                if let Some(mask) = mask {
                    unmask(held, mask, offset);
                }
                Ok(())
            }
            _ => match mask {
                None => self.message.data(bytes, sink),
                Some(mask) => {
                    let mut at = offset;
                    for chunk in bytes.chunks(SCRATCH_CHUNK) {
                        unmask_into(chunk, mask, at, &mut self.scratch);
                        self.message.data(&self.scratch, sink)?;
                        at += chunk.len() as u64;
                    }
                    Ok(())
                }
            },
        }
    }

    #[inline]
    fn end(&mut self, sink: &mut dyn FnMut(ChannelEvent<'_>)) -> Result<(), ChannelError> {
        match std::mem::replace(&mut self.frame, Frame::None) {
            Frame::None => Err(ChannelError::UnexpectedEvent),
            Frame::Data { len, received, .. } | Frame::Control { len, received, .. }
                if len != received =>
            {
                Err(ChannelError::UnexpectedEvent)
            }
            Frame::Data { fin, .. } => {
                if fin {
                    self.message.end(sink)?;
                }
                Ok(())
            }
            Frame::Control { opcode, len, .. } => {
                // Lossless: len <= 125.
                let payload = &self.control[..len as usize];
                sink(match opcode {
                    Opcode::Ping => ChannelEvent::Ping,
                    Opcode::Pong => ChannelEvent::Pong,
                    _ => match payload {
                        [hi, lo, reason @ ..] => ChannelEvent::Close {
                            code: Some(u16::from_be_bytes([*hi, *lo])),
                            reason: String::from_utf8_lossy(reason).into_owned(),
                        },
                        _ => ChannelEvent::Close {
                            code: None,
                            reason: String::new(),
                        },
                    },
                });
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::unmask;

    /// Feeds one frame holding `payload` (given unmasked) as a single piece; returns the
    /// number of data bytes decoded.
    fn feed(
        decoder: &mut ChannelDecoder,
        opcode: Opcode,
        mask: Option<[u8; 4]>,
        payload: &[u8],
    ) -> usize {
        let mut wire = payload.to_vec();
        if let Some(mask) = mask {
            unmask(&mut wire, mask, 0);
        }
        let header = FrameHeader {
            mask,
            ..FrameHeader::new(opcode, payload.len() as u64)
        };
        let mut data = 0;
        let mut sink = |event: ChannelEvent<'_>| {
            if let ChannelEvent::Data { bytes, .. } = event {
                data += bytes.len();
            }
        };
        for event in [
            Event::FrameStart(header),
            Event::Payload {
                bytes: &wire,
                offset: 0,
            },
            Event::FrameEnd,
        ] {
            decoder.feed(&event, &mut sink).expect("valid frame");
        }
        data
    }

    #[test]
    fn scratch_stays_bounded_for_a_huge_masked_piece() {
        let mask = Some([0x11, 0x22, 0x33, 0x44]);
        let mut decoder = ChannelDecoder::new(ChannelProtocol::V5);
        // A smaller piece first: growing from it must not overshoot either.
        assert_eq!(feed(&mut decoder, Opcode::Binary, mask, &[1; 9_000]), 8_999);
        let mut payload = vec![1u8];
        payload.resize(1 << 20, 0x5A);
        assert_eq!(
            feed(&mut decoder, Opcode::Binary, mask, &payload),
            (1 << 20) - 1
        );
        let scratch = decoder.scratch.capacity();
        assert!(scratch <= SCRATCH_CHUNK, "{scratch}");
    }

    #[test]
    fn base64_output_stays_bounded_for_a_huge_piece() {
        let mut payload = vec![b'1'];
        payload.resize(1 + (1 << 20), b'A');
        for mask in [Some([9, 8, 7, 6]), None] {
            let mut decoder = ChannelDecoder::new(ChannelProtocol::V4Base64);
            assert_eq!(
                feed(&mut decoder, Opcode::Text, mask, &payload),
                (1 << 20) / 4 * 3
            );
            assert!(decoder.scratch.capacity() <= SCRATCH_CHUNK);
            let decoded = decoder.message.decoded.capacity();
            assert!(decoded <= SCRATCH_CHUNK / 4 * 3 + 3, "{decoded}");
        }
    }
}
