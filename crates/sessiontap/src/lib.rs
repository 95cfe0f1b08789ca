//! Passive observers of Kubernetes `exec` and `attach` sessions: given the two byte streams of a
//! session (client to server, server to client) as a proxy forwards them, report what happened in
//! it — output on stdout and stderr, input on stdin, terminal resizes and the exit status — without
//! changing, holding back or copying the bytes.
//!
//! Implements the remote command protocol as Kubernetes v1.32 speaks it:
//! - the client side of client-go [`tools/remotecommand`] (stream creation and the `streamtype`
//!   header in `v2.go`..`v5.go`, the resize stream in `v3.go`, `errorDecoderV4` in `v4.go`, the
//!   WebSocket channels of `websocket.go`), and
//! - the server side of kubelet's streaming server [`pkg/kubelet/cri/streaming/remotecommand`]
//!   (`httpstream.go` for SPDY: `waitForStreams`, `v1WriteStatusFunc` and `v4WriteStatusFunc`;
//!   `websocket.go` for the channel protocols) and apimachinery's `wsstream`.
//!
//! Over SPDY/3.1 (framing by [`spdyframe`]) stream roles come from the client's SYN_STREAM
//! `streamtype` headers, the client's header blocks inflated in order through one zlib context
//! (the server's are framed, not inflated). A tap made with [`SessionTap::with_params`] frees that
//! context once the client has opened every stream the server waits for, and refuses any later
//! header block from the client. Over WebSocket (framing by [`wsframe`]) channels 0 stdin, 1 stdout, 2 stderr, 3 error
//! and 4 resize, in all five channel subprotocols (`channel.k8s.io`, `v4.`, `v5.`, `base64.`,
//! `v4.base64.`). Resizes are a JSON stream of `{"Width":80,"Height":24}` objects; the exit status
//! is a `metav1.Status` (v4 and later) or plain text (earlier).
//!
//! Sans-I/O and pure: no async runtime, no clock, no globals, no `unsafe`. Memory is bounded for
//! any input ([`TapLimits`]) and no input panics; output is reported as slices of the input (or of
//! the WebSocket decoder's bounded buffer when it unmasks or decodes base64).
//!
//! The `script` module (cargo feature `script`, off by default) builds complete, faithful byte
//! streams of scripted sessions in either protocol, for tests and test servers; the example below
//! uses it.
//!
//! The framing crates are re-exported ([`spdyframe`], [`wsframe`]) with the types of this crate's
//! API that come from them ([`StreamId`], [`ChannelProtocol`]; the sources of
//! [`TapError`]'s variants are `spdyframe::FrameError`, `spdyframe::HeaderError` and
//! `wsframe::StreamError`), so a user needs no dependency of its own on them.
//!
//! ```
//! use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
//! use sessiontap::{coalesce, OwnedSessionEvent, OutputStream, Protocol, SessionParams, SessionTap, TapLimits, ExitStatus};
//!
//! // The protocol the 101 response chose and the query of the exec request.
//! let protocol = Protocol::from_websocket_subprotocol("v5.channel.k8s.io").expect("known protocol");
//! let params = SessionParams::from_query("command=sh&stdin=true&stdout=true&tty=true")?;
//!
//! // Both byte streams of a short session, as kubectl and the API server would send them.
//! let session = ScriptedSession {
//!     protocol,
//!     params,
//!     steps: vec![
//!         Step::Resize { cols: 80, rows: 24 },
//!         Step::Stdin(b"exit 3\n".to_vec()),
//!         Step::Stdout(b"$ exit 3\r\n".to_vec()),
//!         Step::Exit(3),
//!     ],
//! };
//! let wire = session.encode(&EncodeOptions::default());
//!
//! // The proxy forwards each chunk and shows a copy to the tap.
//! let mut tap = SessionTap::new(protocol, TapLimits::default());
//! let mut events = Vec::new();
//! for chunk in wire.client_to_server.chunks(7) {
//!     tap.client_bytes(chunk, &mut |event| events.push(event.to_owned_event()))?;
//! }
//! for chunk in wire.server_to_client.chunks(5) {
//!     tap.server_bytes(chunk, &mut |event| events.push(event.to_owned_event()))?;
//! }
//! assert_eq!(
//!     coalesce(events),
//!     [
//!         OwnedSessionEvent::Resize { cols: 80, rows: 24 },
//!         OwnedSessionEvent::Input { bytes: b"exit 3\n".to_vec() },
//!         OwnedSessionEvent::Output { stream: OutputStream::Stdout, bytes: b"$ exit 3\r\n".to_vec() },
//!         OwnedSessionEvent::Exit { status: ExitStatus::Code(3) },
//!     ]
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`tools/remotecommand`]: https://github.com/kubernetes/client-go/tree/v0.32.0/tools/remotecommand
//! [`pkg/kubelet/cri/streaming/remotecommand`]: https://github.com/kubernetes/kubernetes/tree/v1.32.0/pkg/kubelet/cri/streaming/remotecommand

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod ending;
mod error;
mod event;
mod json_stream;
mod notice;
mod params;
pub mod portforward;
mod protocol;
mod resize;
#[cfg(feature = "script")]
pub mod script;
mod spdy;
mod status;
mod tap;
mod websocket;

pub use ending::{ending_bytes, FrameBoundary};
pub use error::{SpdyStreamError, TapError};
pub use event::{coalesce, Direction, ExitStatus, OutputStream, OwnedSessionEvent, SessionEvent};
pub use notice::stdout_bytes;
pub use params::{ParamsError, SessionParams};
pub use protocol::{Protocol, RemoteCommandVersion};
pub use resize::ResizeError;
pub use spdyframe::StreamId;
pub use status::{ErrorFormat, StatusError};
pub use tap::{SessionTap, TapLimits, TapStats};
pub use wsframe::ChannelProtocol;
pub use {spdyframe, wsframe};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
