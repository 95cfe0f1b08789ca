//! Zero-copy, sans-I/O WebSocket framing (RFC 6455 section 5: 5.2 base framing, 5.3 masking,
//! 5.4 fragmentation, 5.5 control frames; close status codes in 7.4) and the Kubernetes
//! channel protocols on top of it (`channel.k8s.io`, `v4.channel.k8s.io`,
//! `v5.channel.k8s.io`, `base64.channel.k8s.io`, `v4.base64.channel.k8s.io`), as implemented by
//! `k8s.io/apimachinery/pkg/util/httpstream/wsstream/conn.go`, client-go
//! `tools/remotecommand/websocket.go` and kubelet
//! `pkg/kubelet/cri/streaming/remotecommand/websocket.go`.
//!
//! Made for a proxy that forwards a byte stream untouched and observes it on the side:
//! - [`FrameParser`] takes read-sized chunks split anywhere and reports each frame as
//!   [`Event`]s: the header, then its payload as slices of the input (never copied, still
//!   masked), then its end. It holds at most a partial 14-byte header.
//! - [`ChannelDecoder`] turns those events into [`ChannelEvent`]s: channel data (unmasked
//!   and base64-decoded into a bounded scratch buffer of its own), message ends, v5 channel
//!   close signals, pings, pongs and close frames. [`ChannelStream`] chains the two.
//! - [`encode_frame`], [`encode_channel_message`] and friends build streams for tests and test
//!   servers.
//!
//! Extensions (RSV bits, e.g. permessage-deflate) are refused as unsupported: Kubernetes
//! peers negotiate none. Memory is bounded for any input and no input panics.
//!
//! Pure: no I/O, no clock, no globals, no `unsafe`.
//!
//! ```
//! use wsframe::{encode_channel_message, encode_ping, ChannelEvent, ChannelProtocol, ChannelStream, Limits, STDOUT};
//!
//! // kubectl's side of the wire: a 40,001-byte stdout message fragmented as client-go
//! // fragments, a ping between the fragments, masked as client frames are.
//! let data = vec![b'x'; 40_001];
//! let mut wire = Vec::new();
//! encode_channel_message(ChannelProtocol::V5, STDOUT, &data, Some([7, 7, 7, 7]), Some(33_792), &mut wire);
//! let mut ping = Vec::new();
//! encode_ping(b"", Some([1, 2, 3, 4]), &mut ping);
//! let first_frame = 2 + 2 + 4 + 33_792; // header, 16-bit length, mask key, payload
//! wire.splice(first_frame..first_frame, ping);
//!
//! let mut stream = ChannelStream::new(ChannelProtocol::V5, Limits::default());
//! let (mut stdout, mut pings) = (Vec::new(), 0);
//! for read in wire.chunks(4096) {
//!     stream.feed(read, &mut |event| match event {
//!         ChannelEvent::Data { channel: STDOUT, bytes } => stdout.extend_from_slice(bytes),
//!         ChannelEvent::Ping => pings += 1,
//!         _ => {}
//!     })?;
//! }
//! assert_eq!(stdout, data);
//! assert_eq!(pings, 1);
//! # Ok::<(), wsframe::StreamError>(())
//! ```

mod channel;
mod encode;
mod error;
mod frame;
mod mask;
mod parser;
mod stream;

pub use channel::{
    encode_channel_message, encode_close_signal, encode_message, ChannelDecoder, ChannelEvent,
    ChannelProtocol, CLIENT_GO_BUFFER_SIZE, CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT,
};
pub use encode::{encode_close, encode_frame, encode_ping, encode_pong};
pub use error::{ChannelError, FrameError, StreamError};
pub use frame::{FrameHeader, Opcode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
pub use mask::unmask;
pub use parser::{Event, FrameParser, Limits};
pub use stream::ChannelStream;
