//! Zero-copy SPDY/3.1 framing, sans-I/O: the framing layer that Kubernetes `exec`, `attach` and
//! `port-forward` speak over an upgraded HTTP/1.1 connection (`Upgrade: SPDY/3.1`).
//!
//! Implements, as the [SPDY Protocol Draft 3] (section 2, "SPDY Framing Layer") specifies it and as
//! [moby/spdystream] (the Go implementation behind client-go and the kubelet) writes and reads it:
//! - the 8-byte frame header of control and data frames, 31-bit stream ids, flags and 24-bit
//!   lengths ([`FrameHeader`]);
//! - every control frame type of SPDY/3 as a borrowed view ([`ControlFrame`]): SYN_STREAM,
//!   SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS and WINDOW_UPDATE, with NOOP and
//!   unknown types skipped over safely;
//! - an incremental parser ([`FrameParser`]) that accepts the byte stream split at any boundary
//!   and reports data payloads as slices of the input as they arrive, never copying them;
//! - an encoder for all of them ([`encode_control`], [`encode_data`]);
//! - the name/value header block (draft section 2.6.10) and its zlib compression with the SPDY/3
//!   dictionary, one compression context per direction for the whole connection
//!   ([`HeaderBlock`], [`HeaderInflater`], [`HeaderDeflater`]).
//!
//! No input can make it panic or grow memory without bound: the parser holds at most a partial
//! 8-byte header or one control frame up to [`Limits::max_control_payload`], and the inflater
//! stops with [`HeaderError::TooLarge`] once one block decompresses past its cap.
//!
//! Pure: no I/O, no clock, no globals, no `unsafe`.
//!
//! ```
//! use spdyframe::{encode_control, encode_data, ControlFrame, Event, FrameParser, HeaderBlock,
//!                 HeaderDeflater, HeaderInflater, Limits, StreamId, FLAG_FIN};
//!
//! // The client side of `kubectl exec`: open the stdout stream, then receive output on it.
//! let stream = StreamId::new(5).expect("31-bit id");
//! let mut headers = HeaderBlock::new();
//! headers.push("streamtype", "stdout");
//! let mut block = Vec::new();
//! HeaderDeflater::new().deflate(&headers, &mut block)?;
//!
//! let mut wire = Vec::new();
//! encode_control(&ControlFrame::SynStream {
//!     stream_id: stream, associated_stream_id: StreamId::ZERO, priority: 0, slot: 0, flags: 0,
//!     header_block: &block,
//! }, &mut wire);
//! encode_data(stream, FLAG_FIN, b"hello\n", &mut wire)?;
//!
//! // Read it back, split at an awkward boundary.
//! let mut parser = FrameParser::new(Limits::default());
//! let mut inflater = HeaderInflater::default();
//! let mut output = Vec::new();
//! for mut chunk in [&wire[..3], &wire[3..]] {
//!     while let Some(event) = parser.next_event(&mut chunk)? {
//!         match event {
//!             Event::Control(ControlFrame::SynStream { header_block, .. }) => {
//!                 let headers = inflater.inflate(header_block)?;
//!                 assert_eq!(headers.get("streamtype"), Some("stdout"));
//!             }
//!             Event::Data { bytes, .. } => output.extend_from_slice(bytes),
//!             Event::Control(_) => {}
//!         }
//!     }
//! }
//! assert_eq!(output, b"hello\n");
//! assert!(parser.is_idle());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [SPDY Protocol Draft 3]: https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3/
//! [moby/spdystream]: https://github.com/moby/spdystream

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod control;
mod encode;
mod error;
mod frame_header;
mod header_block;
mod header_codec;
mod parser;
mod settings;
mod stream_id;

pub use control::{frame_type, ControlFrame};
pub use encode::{encode_control, encode_data, try_encode_control};
pub use error::{EncodeError, FrameError, HeaderError};
pub use frame_header::{FrameHeader, FRAME_HEADER_LEN};
pub use header_block::HeaderBlock;
pub use header_codec::{
    HeaderDeflater, HeaderInflater, DEFAULT_MAX_DECOMPRESSED, SPDY3_DICTIONARY,
    SPDY3_DICTIONARY_ADLER32,
};
pub use parser::{Event, FrameParser, Limits, DEFAULT_MAX_CONTROL_PAYLOAD};
pub use settings::{SettingsEntries, SettingsEntry};
pub use stream_id::StreamId;

/// The largest payload a frame can carry: its length field has 24 bits (draft section 2.2).
pub const MAX_PAYLOAD: u32 = (1 << 24) - 1;

/// The protocol version carried in every control frame header; the only one this crate speaks.
pub const SPDY_VERSION: u16 = 3;

/// FIN flag of data frames, SYN_STREAM, SYN_REPLY and HEADERS: the sender half-closes the stream
/// after this frame.
pub const FLAG_FIN: u8 = 0x01;

/// UNIDIRECTIONAL flag of SYN_STREAM: the recipient starts the stream half-closed.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
