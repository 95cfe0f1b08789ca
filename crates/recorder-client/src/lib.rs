//! Records `kubectl exec` and `kubectl attach` sessions as [asciicast v2] and streams them to a
//! session recorder that speaks Tailscale's `tsrecorder` protocols, and sends it Kubernetes API
//! request events.
//!
//! Implements the client side of Tailscale's session recording as its Kubernetes API server proxy
//! uses it: the [`sessionrecording` package] (`connect.go`: `ConnectToRecorder`, `supportsV2`,
//! `connectV1`, `connectV2`; `header.go`: `CastHeader`) and the asciicast writer of
//! `k8s-operator/sessionrecording/tsrecorder`; and its API request events (`event.go`). Three parts:
//!
//! - **Encoding, pure and clock-free**: [`CastHeader`] (the header line, with Tailscale's field
//!   names; from [`castfmt`], like the other format types re-exported here), [`CastEncoder`]
//!   (session happenings to NDJSON lines: `o` for stdout and stderr, `r`
//!   as `COLSxROWS` in the spec's order, `i` for stdin when asked, an `m` marker for the exit
//!   status; times given as durations since the session start), [`EchoTracker`] (which typed
//!   bytes of a tty session the terminal echoed: only those are recorded as input, the others are
//!   replaced by an `m` marker) and [`Utf8Carry`] (UTF-8 decoding
//!   that carries a character split across events, and replaces invalid bytes exactly as
//!   `String::from_utf8_lossy` would for the whole stream).
//! - **Upload, on Tokio and hyper**: [`Recorder::connect`] tries the recorder addresses in order
//!   (5 s per dial, 30 s in all), probes `HEAD /v2/record` over h2c and uploads with protocol v2
//!   (`POST /v2/record` over h2c, `{"ack": n}` / `{"error": ".."}` lines back, failure after 30 s
//!   without an ack) or falls back to v1 (`POST /record` over HTTP/1.1 with `Expect:
//!   100-continue`, the body sent only after `100 Continue`). The returned [`Recording`] takes
//!   events through a bounded buffer (backpressure for fail-closed sessions, abandonment for
//!   fail-open ones); a writer task decodes, encodes and uploads them off the proxy's forwarding
//!   path. The events are [`sessiontap`]'s ([`SessionEvent`], [`OwnedSessionEvent`],
//!   [`OutputStream`], [`ExitStatus`], re-exported here), fed as its tap reports them.
//! - **API events**: [`ApiRequestEvent`] (Tailscale's `sessionrecording.Event`, type
//!   `kubernetes-api-request`, with the JSON Go writes for it) and [`ApiResponseEvent`] (this
//!   crate's `kubernetes-api-response`, linked by `id`); [`EventSender`] probes `HEAD /v2/event`
//!   over HTTP/1.1 and posts each event to `POST /v2/event`, trying the addresses in order, with
//!   the probe's answer cached and keep-alive connections kept per recorder. A recorder answering
//!   404 to the probe does not support events and is skipped; when none does, the send is
//!   [`EventDelivery::Unsupported`]. A recorder that offers batches (`HEAD /v2/events` answered
//!   200: kube-recorder, our extension) gets the events of concurrent sends together in one
//!   `POST /v2/events`, stored with one sync; each send still waits for its own event.
//!
//! - **Port-forward captures**: [`Recorder::start_capture`] uploads the bytes of one
//!   `kubectl port-forward` connection as castfmt's binary-safe `kap-port-forward/1` over the
//!   same protocols (marked `Content-Type: application/x-kap-port-forward`); a
//!   [`CaptureRecording`] takes them through a [`CaptureBudget`] the captures of one session
//!   share.
//!
//! For tty sessions the header waits for the first resize to learn the terminal size, but never
//! stalls: see [`TtyOptions`].
//!
//! ```no_run
//! # async fn run() -> Result<(), recorder_client::ConnectError> {
//! use recorder_client::{
//!     Caller, CastHeader, KubernetesSession, OutputStream, Recorder, RecorderConfig, Session,
//!     SessionEvent, SessionType,
//! };
//!
//! let recorder = Recorder::new(RecorderConfig::default());
//! let header = CastHeader::kubernetes(
//!     1_700_000_000,
//!     Caller::User {
//!         node: "laptop.tail-scale.ts.net.".into(),
//!         node_id: "nXYZ".into(),
//!         login_name: "alice@example.com".into(),
//!         user_id: 42,
//!     },
//!     "sh",
//!     KubernetesSession {
//!         pod_name: "demo".into(),
//!         namespace: "default".into(),
//!         container: "app".into(),
//!         session_type: SessionType::Exec,
//!     },
//! );
//! let addrs = ["100.64.0.7:80".parse().expect("address")];
//! let recording = recorder.connect(&addrs, Session::new(header, true)).await?;
//! let failed = recording.failed(); // select! on this in a fail-closed session
//!
//! // From the session's forwarding tasks (fail-closed: `feed` waits for room).
//! recording.feed(SessionEvent::Resize { cols: 120, rows: 40 }).await.ok();
//! recording.feed(SessionEvent::Output { stream: OutputStream::Stdout, bytes: b"$ " }).await.ok();
//!
//! let outcome = recording.finish().await;
//! println!("recording {outcome}");
//! # drop(failed);
//! # Ok(())
//! # }
//! ```
//!
//! [asciicast v2]: https://docs.asciinema.org/manual/asciicast/v2/
//! [`sessionrecording` package]: https://github.com/tailscale/tailscale/tree/main/sessionrecording

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod capture;
mod config;
mod dial;
mod encoder;
mod error;
mod event_sender;
mod feeder;
mod outcome;
mod recording;
mod transport;
mod utf8;
mod writer;

// The recording formats live in castfmt, shared with the recorder; they are re-exported here
// because this crate's API (and the proxy) speaks them.
pub use capture::{CaptureBudget, CaptureRecording};
pub use castfmt::{
    write_event_line, ApiRequestEvent, ApiResponseEvent, Caller, CastHeader, EventCode,
    EventDestination, EventRequest, EventResponse, EventSource, InvalidHeader, KubernetesSession,
    Protocol, SessionType, API_REQUEST_EVENT_TYPE, API_RESPONSE_EVENT_TYPE, ASCIICAST_VERSION,
};
pub use config::RecorderConfig;
pub use dial::{DialFuture, Dialer, RecorderIo, TcpDialer};
pub use encoder::{CastEncoder, EchoDecision, EchoTracker, EncoderOptions, TermSize, TtyOptions};
pub use error::{AttemptError, AttemptFailure, ConnectError, FeedError, UploadError};
pub use event_sender::{EventConfig, EventDelivery, EventSendError, EventSender};
pub use feeder::Feeder;
pub use outcome::{AbandonReason, Outcome};
pub use recording::{Recorder, Recording, Session};
// The session vocabulary is sessiontap's: the tap's events are fed to a recording as they are.
// Re-exported so that a caller without a tap (tests, replays) need not depend on sessiontap.
pub use sessiontap::{ExitStatus, OutputStream, OwnedSessionEvent, SessionEvent};
pub use utf8::{Utf8Carry, REPLACEMENT};

/// The README's example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
