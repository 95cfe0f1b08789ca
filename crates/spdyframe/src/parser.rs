//! The incremental frame parser: fed read-sized chunks split anywhere, it yields control frames
//! and data payload pieces as slices of those chunks.

use crate::{ControlFrame, FrameError, FrameHeader, StreamId, FRAME_HEADER_LEN, SPDY_VERSION};

/// Default [`Limits::max_control_payload`]: 1 MiB, far above any header block Kubernetes sends.
pub const DEFAULT_MAX_CONTROL_PAYLOAD: u32 = 1 << 20;

/// Bounds on what a [`FrameParser`] will hold in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest control frame payload accepted, in bytes. A control frame that arrives split
    /// across chunks is the only thing the parser buffers, so this bounds its memory. Data
    /// frames are never buffered and may be up to [`crate::MAX_PAYLOAD`] whatever this says.
    pub max_control_payload: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_control_payload: DEFAULT_MAX_CONTROL_PAYLOAD,
        }
    }
}

/// What the parser found next in the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete control frame. Its payload is borrowed from the input chunk when it arrived
    /// whole, else from the parser's bounded internal buffer.
    Control(ControlFrame<'a>),
    /// A piece of a data frame's payload, borrowed from the input as it arrives: never copied or
    /// buffered. The pieces of one frame concatenate to its payload.
    Data {
        /// The stream the frame belongs to.
        stream_id: StreamId,
        /// The frame's flags, the same on every piece. [`crate::FLAG_FIN`] takes effect after the
        /// piece with `frame_end` (see [`Event::ends_stream`]).
        flags: u8,
        /// This piece of the payload; empty only for an empty frame.
        bytes: &'a [u8],
        /// This is the frame's first piece.
        frame_start: bool,
        /// This is the frame's last piece. An empty frame yields one piece with both set.
        frame_end: bool,
    },
}

impl Event<'_> {
    /// Whether this is the last piece of a data frame carrying [`crate::FLAG_FIN`]: the sender
    /// has half-closed the stream.
    pub fn ends_stream(&self) -> bool {
        matches!(*self, Event::Data { flags, frame_end: true, .. } if flags & crate::FLAG_FIN != 0)
    }
}

/// Where the parser is in the byte stream.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Between frames, or inside a header (`header_len` bytes of it held).
    Header,
    /// Inside a data frame's payload.
    Data {
        stream_id: StreamId,
        flags: u8,
        remaining: u32,
        started: bool,
    },
    /// Buffering a control frame that arrived split.
    Control {
        frame_type: u16,
        flags: u8,
        length: u32,
    },
    /// An error was returned; nothing more can be framed.
    Poisoned,
}

/// An incremental SPDY/3 frame parser for one direction of a connection.
///
/// Feed it the bytes of the direction in order, in chunks split at any boundary; it consumes them
/// from the front of each chunk and returns one [`Event`] at a time. It holds at most a partial
/// 8-byte frame header, or one control frame of at most [`Limits::max_control_payload`] bytes
/// that arrived split; data payloads are handed out as slices of the input and never held.
///
/// ```
/// use spdyframe::{encode_data, Event, FrameParser, Limits, StreamId};
///
/// let mut wire = Vec::new();
/// encode_data(StreamId::new(1).expect("id"), 0, b"abc", &mut wire)?;
/// let mut parser = FrameParser::new(Limits::default());
/// let mut pieces = Vec::new();
/// for mut chunk in wire.chunks(5) {
///     while let Some(event) = parser.next_event(&mut chunk)? {
///         if let Event::Data { bytes, .. } = event {
///             pieces.push(bytes.to_vec());
///         }
///     }
/// }
/// assert_eq!(pieces, [b"ab".to_vec(), b"c".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FrameParser {
    limits: Limits,
    state: State,
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    /// A split control frame's payload, filled as it arrives (never reserved up front from an
    /// announced length).
    control: Vec<u8>,
    /// `control` holds a frame already handed out; clear it on the next call.
    release_control: bool,
}

/// Capacity above which the control-frame buffer is given back after use, so one large SETTINGS
/// or header block does not pin memory for the rest of the connection.
const RETAINED_CONTROL_CAPACITY: usize = 16 * 1024;

impl Default for FrameParser {
    fn default() -> Self {
        FrameParser::new(Limits::default())
    }
}

impl FrameParser {
    /// A parser at the start of a byte stream.
    pub fn new(limits: Limits) -> Self {
        FrameParser {
            limits,
            state: State::Header,
            header: [0; FRAME_HEADER_LEN],
            header_len: 0,
            control: Vec::new(),
            release_control: false,
        }
    }

    /// The limits this parser was built with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the parser is between frames with nothing held: the bytes fed so far end on a frame
    /// boundary. False after an error.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Header) && self.header_len == 0
    }

    /// Inside a frame header: how many of its 8 bytes are still to come. `None` between frames
    /// (nothing held), inside a payload or a control frame, and after an error.
    pub fn header_remaining(&self) -> Option<usize> {
        match self.state {
            State::Header if self.header_len > 0 => Some(FRAME_HEADER_LEN - self.header_len),
            _ => None,
        }
    }

    /// Inside a DATA frame's payload: how many of its bytes are still to come (the header and
    /// the bytes before have been fed). `None` between frames, inside a header or a control frame,
    /// and after an error.
    pub fn data_remaining(&self) -> Option<u32> {
        match self.state {
            State::Data { remaining, .. } if remaining > 0 => Some(remaining),
            _ => None,
        }
    }

    /// Consumes bytes from the front of `input` (advancing the slice) and returns the next event,
    /// or `Ok(None)` once all of `input` has been consumed (a partial header or a partial control
    /// frame is then held internally, and the next chunk continues it).
    ///
    /// The event borrows from `input` or from the parser, so it must be dropped before the next
    /// call; the two lifetimes let a caller loop over one chunk.
    ///
    /// After an error the parser is poisoned and returns [`FrameError::Poisoned`] from then on.
    pub fn next_event<'a, 'i: 'a>(
        &'a mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Event<'a>>, FrameError> {
        if self.release_control {
            self.release_control = false;
            self.control.clear();
            if self.control.capacity() > RETAINED_CONTROL_CAPACITY {
                self.control = Vec::new();
            }
        }
        match self.state {
            State::Poisoned => Err(FrameError::Poisoned),
            State::Header => self.frame_start(input),
            State::Data {
                stream_id,
                flags,
                remaining,
                started,
            } => {
                if input.is_empty() {
                    return Ok(None);
                }
                let bytes = take(input, remaining as usize);
                let remaining = remaining - len_u32(bytes);
                self.state = if remaining == 0 {
                    State::Header
                } else {
                    State::Data {
                        stream_id,
                        flags,
                        remaining,
                        started: true,
                    }
                };
                Ok(Some(Event::Data {
                    stream_id,
                    flags,
                    bytes,
                    frame_start: !started,
                    frame_end: remaining == 0,
                }))
            }
            State::Control {
                frame_type,
                flags,
                length,
            } => {
                let missing = length - len_u32(&self.control);
                self.control
                    .extend_from_slice(take(input, missing as usize));
                if len_u32(&self.control) < length {
                    return Ok(None);
                }
                self.state = State::Header;
                self.release_control = true;
                match ControlFrame::parse(frame_type, flags, &self.control) {
                    Ok(frame) => Ok(Some(Event::Control(frame))),
                    Err(e) => {
                        self.state = State::Poisoned;
                        Err(e)
                    }
                }
            }
        }
    }

    /// Reads a frame header (completing a held partial one) and acts on it.
    fn frame_start<'a, 'i: 'a>(
        &'a mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Event<'a>>, FrameError> {
        let header = if let (0, Some((header, rest))) = (
            self.header_len,
            input.split_first_chunk::<FRAME_HEADER_LEN>(),
        ) {
            *input = rest;
            *header
        } else {
            let want = FRAME_HEADER_LEN - self.header_len;
            let got = take(input, want);
            self.header[self.header_len..self.header_len + got.len()].copy_from_slice(got);
            self.header_len += got.len();
            if self.header_len < FRAME_HEADER_LEN {
                return Ok(None);
            }
            self.header_len = 0;
            self.header
        };
        match FrameHeader::parse(&header) {
            FrameHeader::Data {
                stream_id,
                flags,
                length,
            } => {
                if let Some((bytes, rest)) = input.split_at_checked(length as usize) {
                    // The whole payload is here (always so for an empty frame): one piece.
                    *input = rest;
                    return Ok(Some(Event::Data {
                        stream_id,
                        flags,
                        bytes,
                        frame_start: true,
                        frame_end: true,
                    }));
                }
                if input.is_empty() {
                    self.state = State::Data {
                        stream_id,
                        flags,
                        remaining: length,
                        started: false,
                    };
                    return Ok(None);
                }
                let bytes = std::mem::take(input);
                let remaining = length - len_u32(bytes);
                self.state = State::Data {
                    stream_id,
                    flags,
                    remaining,
                    started: true,
                };
                Ok(Some(Event::Data {
                    stream_id,
                    flags,
                    bytes,
                    frame_start: true,
                    frame_end: false,
                }))
            }
            FrameHeader::Control {
                version,
                frame_type,
                flags,
                length,
            } => {
                if version != SPDY_VERSION {
                    self.state = State::Poisoned;
                    return Err(FrameError::UnsupportedVersion(version));
                }
                let max = self.limits.max_control_payload;
                if length > max {
                    self.state = State::Poisoned;
                    return Err(FrameError::ControlFrameTooLarge { length, max });
                }
                if let Some((payload, rest)) = input.split_at_checked(length as usize) {
                    // Whole in this chunk: borrow it, no copy.
                    *input = rest;
                    return match ControlFrame::parse(frame_type, flags, payload) {
                        Ok(frame) => Ok(Some(Event::Control(frame))),
                        Err(e) => {
                            self.state = State::Poisoned;
                            Err(e)
                        }
                    };
                }
                self.control.extend_from_slice(input);
                *input = &[];
                self.state = State::Control {
                    frame_type,
                    flags,
                    length,
                };
                Ok(None)
            }
        }
    }
}

/// Takes up to `max` bytes from the front of `input`.
fn take<'i>(input: &mut &'i [u8], max: usize) -> &'i [u8] {
    let n = input.len().min(max);
    let (taken, rest) = input.split_at(n);
    *input = rest;
    taken
}

/// The length of a slice known to be at most a frame payload (2^24 - 1) long.
fn len_u32(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}
