//! Round trips: complete byte streams of a scripted session, in either protocol, and the events a
//! tap must report for them. Used by this crate's tests, by the fuzz target's seeds and by test
//! servers that play a session back.
//!
//! The streams are faithful to what kubectl (client-go) and the API server / kubelet send:
//! - SPDY: the client's SYN_STREAMs (`error`, then `stdin` if asked, `stdout` if asked, `stderr`
//!   without a tty, `resize` with a tty from v3 on) with zlib-compressed headers, one context per
//!   direction; the server's SYN_REPLYs; data frames; the status on the error stream (a
//!   `metav1.Status` from v4, text before, nothing for success before v4); FINs and GOAWAY.
//! - WebSocket: masked client frames and unmasked server frames in the chosen channel protocol
//!   (base64 ones included); the empty message the server sends on its first writable channel
//!   right after the 101; the status on the error channel; the v5 close signal for stdin; close
//!   frames.
//!
//! ```
//! use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
//! use sessiontap::{OwnedSessionEvent, OutputStream, Protocol, RemoteCommandVersion, SessionParams, ExitStatus};
//!
//! let session = ScriptedSession {
//!     protocol: Protocol::Spdy { version: RemoteCommandVersion::V4 },
//!     params: SessionParams { stdout: true, stderr: true, ..SessionParams::default() },
//!     steps: vec![Step::Stdout(b"hi\n".to_vec()), Step::Stderr(b"oops\n".to_vec()), Step::Exit(1)],
//! };
//! let wire = session.encode(&EncodeOptions::default());
//! assert!(wire.client_setup_len > 0 && wire.client_setup_len <= wire.client_to_server.len());
//! assert_eq!(
//!     session.expected_events().last(),
//!     Some(&OwnedSessionEvent::Exit { status: ExitStatus::Code(1) })
//! );
//! ```

pub mod portforward;
mod spdy;
mod websocket;

use crate::event::{ExitStatus, OutputStream, OwnedSessionEvent};
use crate::params::SessionParams;
use crate::protocol::Protocol;
use crate::status::ErrorFormat;

/// One thing that happens in a scripted session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// The client sends these bytes on stdin (left out unless `params.stdin`).
    Stdin(Vec<u8>),
    /// The container writes these bytes to stdout (left out unless `params.stdout`).
    Stdout(Vec<u8>),
    /// The container writes these bytes to stderr (left out unless `params.stderr` and not
    /// `params.tty`).
    Stderr(Vec<u8>),
    /// The client's terminal changes size (left out unless `params.tty` and the protocol carries
    /// resizes).
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// The command exits with this code; the session ends here (later steps are left out).
    /// A session without one ends with its error stream closed empty, which client-go reads as
    /// success.
    Exit(i32),
}

/// A session to encode: the protocol the 101 chose, the request's parameters and what happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedSession {
    /// The protocol in force.
    pub protocol: Protocol,
    /// The exec/attach request's parameters: which streams exist.
    pub params: SessionParams,
    /// What happens, in order. Steps the parameters rule out are left out of both the streams and
    /// the expected events (see [`Step`]).
    pub steps: Vec<Step>,
}

/// How to shape the encoded streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// The most bytes of one step written at once: each piece becomes one SPDY data frame or one
    /// WebSocket message. Default 32 KiB (the `io.Copy` buffer of client-go and kubelet).
    pub max_write: usize,
    /// WebSocket: fragment messages into frames of at most this many payload bytes. Default
    /// `Some(33_792)`, client-go's buffer size.
    pub max_websocket_frame: Option<usize>,
    /// Interleave keep-alives: SPDY PINGs (and their echoes) before every step; WebSocket pings
    /// and pongs before every step and between the fragments of a message.
    pub pings: bool,
    /// WebSocket binary protocols: the client sends TEXT frames with a raw channel byte, as the
    /// Python client does.
    pub client_text_frames: bool,
    /// Seed of the WebSocket client's masking keys.
    pub mask_seed: u32,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            max_write: 32 * 1024,
            max_websocket_frame: Some(wsframe::CLIENT_GO_BUFFER_SIZE),
            pings: false,
            client_text_frames: false,
            mask_seed: 0x5eed_1234,
        }
    }
}

/// The two byte streams of an encoded session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EncodedSession {
    /// What the client sends, as the proxy reads it from the client.
    pub client_to_server: Vec<u8>,
    /// What the server sends, as the proxy reads it from upstream.
    pub server_to_client: Vec<u8>,
    /// How many bytes at the start of `client_to_server` must reach the tap before any byte of
    /// `server_to_client` (SPDY: the SYN_STREAMs that name the streams' roles, which a real server
    /// has seen before it sends on them; 0 for WebSocket).
    pub client_setup_len: usize,
}

/// The steps a session's parameters allow, up to and including the first exit.
pub(crate) enum Effective<'a> {
    Stdin(&'a [u8]),
    Output(OutputStream, &'a [u8]),
    Resize(u16, u16),
    Exit(i32),
}

impl ScriptedSession {
    /// Encodes both byte streams of the session.
    pub fn encode(&self, options: &EncodeOptions) -> EncodedSession {
        match self.protocol {
            Protocol::Spdy { version } => spdy::encode(self, version, options),
            Protocol::WebSocket(protocol) => websocket::encode(self, protocol, options),
        }
    }

    /// The events a tap reports for the encoded session, in script order, coalesced (see
    /// [`coalesce`](crate::coalesce)): client events (input, resizes) and server events (output,
    /// exit) interleave as scripted, so compare each [`Direction`](crate::Direction) on its own.
    /// There is always exactly one exit, last.
    pub fn expected_events(&self) -> Vec<OwnedSessionEvent> {
        let mut events = Vec::new();
        let mut status = ExitStatus::Success;
        for step in self.effective_steps() {
            events.push(match step {
                Effective::Stdin(bytes) => OwnedSessionEvent::Input {
                    bytes: bytes.to_vec(),
                },
                Effective::Output(stream, bytes) => OwnedSessionEvent::Output {
                    stream,
                    bytes: bytes.to_vec(),
                },
                Effective::Resize(cols, rows) => OwnedSessionEvent::Resize { cols, rows },
                Effective::Exit(code) => {
                    status = self.exit_status(code);
                    continue;
                }
            });
        }
        events.push(OwnedSessionEvent::Exit { status });
        crate::coalesce(events)
    }

    /// The steps that reach the wire.
    pub(crate) fn effective_steps(&self) -> impl Iterator<Item = Effective<'_>> {
        let p = &self.params;
        let resize = p.tty && self.protocol.has_resize();
        let mut ended = false;
        self.steps.iter().filter_map(move |step| {
            if ended {
                return None;
            }
            match step {
                Step::Stdin(bytes) if p.stdin => Some(Effective::Stdin(bytes)),
                Step::Stdout(bytes) if p.stdout => {
                    Some(Effective::Output(OutputStream::Stdout, bytes))
                }
                Step::Stderr(bytes) if p.stderr && !p.tty => {
                    Some(Effective::Output(OutputStream::Stderr, bytes))
                }
                Step::Resize { cols, rows } if resize => Some(Effective::Resize(*cols, *rows)),
                Step::Exit(code) => {
                    ended = true;
                    Some(Effective::Exit(*code))
                }
                _ => None,
            }
        })
    }

    /// What the tap reports for `Exit(code)`.
    fn exit_status(&self, code: i32) -> ExitStatus {
        match (code, self.protocol.error_format()) {
            (0, _) => ExitStatus::Success,
            (code, ErrorFormat::Status) => ExitStatus::Code(code),
            (code, ErrorFormat::PlainText) => ExitStatus::Failure {
                message: exit_message(code),
            },
        }
    }
}

/// Kubelet's message for a non-zero exit (`exitErr` is Go's `exec.ExitError`).
pub(crate) fn exit_message(code: i32) -> String {
    format!("command terminated with non-zero exit code: exit status {code}")
}

/// What the server writes on the error stream for `Exit(code)`: kubelet's `v4WriteStatusFunc`
/// (JSON) or `v1WriteStatusFunc` (text, nothing on success).
pub(crate) fn status_bytes(format: ErrorFormat, code: i32) -> Vec<u8> {
    match (format, code) {
        (ErrorFormat::PlainText, 0) => Vec::new(),
        (ErrorFormat::PlainText, code) => exit_message(code).into_bytes(),
        (ErrorFormat::Status, 0) => kubestatus::Status::success().to_json(),
        (ErrorFormat::Status, code) => {
            kubestatus::Status::exit_code(code, exit_message(code)).to_json()
        }
    }
}

/// client-go's resize message: `json.Encoder.Encode(TerminalSize)`, newline included.
pub(crate) fn resize_bytes(cols: u16, rows: u16) -> Vec<u8> {
    format!("{{\"Width\":{cols},\"Height\":{rows}}}\n").into_bytes()
}

/// Splits `bytes` into writes of at most `max` bytes (at least one byte each; none for empty).
pub(crate) fn writes(bytes: &[u8], max: usize) -> std::slice::Chunks<'_, u8> {
    bytes.chunks(max.max(1))
}
