//! The incremental frame parser: any split of the byte stream in, borrowed events out.

use crate::error::FrameError;
use crate::frame::{
    decode_header, header_len, FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};

/// Bounds a [`FrameParser`] enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest payload one frame may announce; a larger one is
    /// [`FrameError::PayloadTooLarge`] as soon as its header is read. The parser never buffers
    /// payloads, so this bounds the work a peer can announce rather than memory. Default 16 MiB.
    pub max_payload: u64,
}

impl Limits {
    /// The default [`Limits::max_payload`]: 16 MiB.
    pub const DEFAULT_MAX_PAYLOAD: u64 = 16 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// What the parser found next in the stream. A frame is always `FrameStart`, zero or more
/// `Payload` pieces that together are its payload, then `FrameEnd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete frame header.
    FrameStart(FrameHeader),
    /// Payload bytes exactly as on the wire (still masked on client frames), borrowed from
    /// the input — never copied. `offset` is their position within the frame's payload,
    /// which [`unmask`](crate::unmask) needs. Pieces are never empty.
    Payload {
        /// The bytes, a sub-slice of the input.
        bytes: &'a [u8],
        /// Where `bytes` start within the frame's payload.
        offset: u64,
    },
    /// The frame's payload is complete.
    FrameEnd,
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Between frames, or inside a header (the held bytes are in `FrameParser::header`).
    Header,
    /// Inside a payload; `offset` bytes of it have been reported.
    Payload {
        len: u64,
        offset: u64,
    },
    /// The payload is complete; `FrameEnd` is due.
    End,
    Poisoned,
}

/// An incremental, zero-copy WebSocket frame parser (RFC 6455 section 5).
///
/// Feed it the bytes of one direction of a connection in chunks of any size, split anywhere.
/// It reports headers and payload pieces as slices of each chunk; the only bytes it ever holds
/// are a partial header (at most 14). It validates what section 5 requires of every frame:
/// no RSV bits, no reserved opcodes, short unfragmented control frames, continuation frames
/// only inside a fragmented message, and the [`Limits`].
///
/// It does not check which side masks: the caller knows the direction, and the
/// [`ChannelDecoder`](crate::ChannelDecoder) unmasks whatever it is given. Lengths in a longer
/// form than needed are accepted, as gorilla/websocket and golang.org/x/net/websocket (the
/// Kubernetes peers) accept them: an observer must see what the endpoints see.
///
/// ```
/// use wsframe::{Event, FrameParser, Limits, Opcode};
///
/// let mut parser = FrameParser::new(Limits::default());
/// let mut input: &[u8] = &[0x82, 0x03, 0x01, b'h', b'i'];
/// let mut events = Vec::new();
/// while let Some(event) = parser.next_event(&mut input)? {
///     events.push(event);
/// }
/// assert!(matches!(events[0], Event::FrameStart(h) if h.opcode == Opcode::Binary && h.payload_len == 3));
/// assert_eq!(events[1], Event::Payload { bytes: &[0x01, b'h', b'i'], offset: 0 });
/// assert_eq!(events[2], Event::FrameEnd);
/// # Ok::<(), wsframe::FrameError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FrameParser {
    limits: Limits,
    state: State,
    header: [u8; MAX_HEADER_LEN],
    header_held: u8,
    /// A data frame without FIN was seen and its final continuation has not been.
    in_fragmented_message: bool,
}

impl FrameParser {
    /// A parser at the start of a stream.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Header,
            header: [0; MAX_HEADER_LEN],
            header_held: 0,
            in_fragmented_message: false,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the parser sits exactly between two frames: nothing of a header is held and no
    /// payload or `FrameEnd` is pending. A stream that ends here ended cleanly.
    pub fn is_at_frame_boundary(&self) -> bool {
        matches!(self.state, State::Header) && self.header_held == 0
    }

    /// Whether a fragmented data message is open (its final frame not yet seen).
    pub fn in_fragmented_message(&self) -> bool {
        self.in_fragmented_message
    }

    /// Inside a frame's payload: `(offset, remaining)`, how many of its bytes have been fed and
    /// how many are still to come. `None` between frames, inside a header, when only the
    /// `FrameEnd` is due, and after an error.
    pub fn payload_position(&self) -> Option<(u64, u64)> {
        match self.state {
            State::Payload { len, offset } if offset < len => Some((offset, len - offset)),
            _ => None,
        }
    }

    /// Consumes bytes from the front of `input` (advancing it) and returns the next event, or
    /// `Ok(None)` once `input` is used up. A header split across calls is held internally
    /// (at most 14 bytes). Call it until it returns `Ok(None)`, then feed the next chunk.
    ///
    /// `FrameEnd` is returned as soon as a payload is complete, even when `input` is empty.
    ///
    /// # Errors
    /// Any [`FrameError`]; the parser is then poisoned and answers [`FrameError::Poisoned`].
    #[inline]
    pub fn next_event<'a>(
        &mut self,
        input: &mut &'a [u8],
    ) -> Result<Option<Event<'a>>, FrameError> {
        let result = self.step(input);
        if result.is_err() {
            self.state = State::Poisoned;
        }
        result
    }

    #[inline]
    fn step<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<Event<'a>>, FrameError> {
        match self.state {
            State::Poisoned => Err(FrameError::Poisoned),
            State::End => {
                self.state = State::Header;
                Ok(Some(Event::FrameEnd))
            }
            State::Payload { len, offset } => {
                if input.is_empty() {
                    return Ok(None);
                }
                let remaining = len - offset;
                let take = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                let (bytes, rest) = input.split_at(take);
                *input = rest;
                let next = offset + take as u64;
                self.state = if next == len {
                    State::End
                } else {
                    State::Payload { len, offset: next }
                };
                Ok(Some(Event::Payload { bytes, offset }))
            }
            State::Header => self.read_header(input),
        }
    }

    #[inline]
    fn read_header<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<Event<'a>>, FrameError> {
        // Fast path: the whole header is in this chunk and nothing is held.
        if self.header_held == 0 {
            if let [b0, b1, ..] = **input {
                check_first_byte(b0)?;
                let len = header_len(b1);
                if let Some(bytes) = input.get(..len) {
                    let header = decode_header(bytes);
                    *input = &input[len..];
                    return self.start_frame(header).map(Some);
                }
            }
        }
        // Slow path: hold the header's bytes until it is complete.
        while usize::from(self.header_held) < 2 {
            let Some((&b, rest)) = input.split_first() else {
                return Ok(None);
            };
            if self.header_held == 0 {
                check_first_byte(b)?;
            }
            self.header[usize::from(self.header_held)] = b;
            self.header_held += 1;
            *input = rest;
        }
        let len = header_len(self.header[1]);
        let held = usize::from(self.header_held);
        let take = (len - held).min(input.len());
        self.header[held..held + take].copy_from_slice(&input[..take]);
        *input = &input[take..];
        // Lossless: held + take <= MAX_HEADER_LEN.
        self.header_held = (held + take) as u8;
        if held + take < len {
            return Ok(None);
        }
        self.header_held = 0;
        let header = decode_header(&self.header[..len]);
        self.start_frame(header).map(Some)
    }

    #[inline]
    fn start_frame<'a>(&mut self, header: FrameHeader) -> Result<Event<'a>, FrameError> {
        if header.opcode.is_control() && header.payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(FrameError::ControlFrameTooLong(header.payload_len));
        }
        if header.payload_len >> 63 != 0 {
            return Err(FrameError::InvalidPayloadLength(header.payload_len));
        }
        if header.payload_len > self.limits.max_payload {
            return Err(FrameError::PayloadTooLarge {
                length: header.payload_len,
                max: self.limits.max_payload,
            });
        }
        match header.opcode {
            Opcode::Continuation => {
                if !self.in_fragmented_message {
                    return Err(FrameError::UnexpectedContinuation);
                }
                self.in_fragmented_message = !header.fin;
            }
            Opcode::Text | Opcode::Binary => {
                if self.in_fragmented_message {
                    return Err(FrameError::ExpectedContinuation);
                }
                self.in_fragmented_message = !header.fin;
            }
            // Control frames may come between fragments and leave the message open.
            _ => {}
        }
        self.state = if header.payload_len == 0 {
            State::End
        } else {
            State::Payload {
                len: header.payload_len,
                offset: 0,
            }
        };
        Ok(Event::FrameStart(header))
    }
}

/// Checks what the first header byte alone decides, so a bad frame is refused before the
/// rest of its header is waited for.
#[inline]
fn check_first_byte(b0: u8) -> Result<(), FrameError> {
    if b0 & 0x70 != 0 {
        return Err(FrameError::ReservedBitsSet);
    }
    let opcode = Opcode::from_bits(b0);
    if let Opcode::Reserved(bits) = opcode {
        return Err(FrameError::ReservedOpcode(bits));
    }
    if opcode.is_control() && b0 & 0x80 == 0 {
        return Err(FrameError::FragmentedControlFrame);
    }
    Ok(())
}
