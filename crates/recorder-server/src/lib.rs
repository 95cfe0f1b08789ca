//! A session recorder for `kubectl exec`/`attach` recordings and Kubernetes API events: an open
//! counterpart of Tailscale's recorder (`tsrecorder`), speaking the same protocols.
//!
//! The recorder accepts, on one port speaking both HTTP/1.1 and h2c (HTTP/2 with prior
//! knowledge, RFC 9113 section 3.3):
//!
//! - recordings over the v2 protocol, `POST /v2/record` on h2c, answered at once with a stream of
//!   `{"ack": N}` lines (bytes received so far), sent after data and at least once a second while
//!   idle, or `{"error": "..."}` when storing fails — as Tailscale's
//!   `sessionrecording.connectV2` expects;
//! - recordings over the v1 protocol, `POST /record` with `Expect: 100-continue`
//!   (RFC 9110 section 10.1.1), answered 200 when the body has ended;
//! - API events, `POST /v2/event`, one JSON object each.
//!
//! A recording is an asciicast v2 stream (<https://docs.asciinema.org/manual/asciicast/v2/>) and
//! is stored byte for byte as it arrives; the recorder reads its header and event times on the
//! side ([`LenientHeader`]) to keep an index entry ([`RecordingMeta`]): who, which pod, when, how
//! long, how many bytes, whether it is complete, and the exit status when the client recorded
//! one as a marker event `[t, "m", "exit 3"]`; for a `kubectl cp` session (a header with
//! kube-auth-proxy's `fileCopy`), which way the files went and which files, from its
//! `file: <path> (<size> bytes)` markers ([`FileCopyMeta`]). A recording cut off mid-way is kept
//! and marked incomplete.
//!
//! An upload sent with `Content-Type: application/x-kap-port-forward` (on either protocol) is a
//! port-forward capture instead: kube-auth-proxy's `kap-port-forward/1` JSON lines, the bytes of
//! one connection through a `kubectl port-forward` as base64 events each way. It is stored as
//! `<id>.pfcap` beside the casts, indexed with `kind` `port-forward-capture` and its connection
//! and bytes each way ([`PortForwardCaptureMeta`]), and served back as it is.
//!
//! Each recording is sealed when it ends ([`seal`]): a hash chain over its bytes and a manifest
//! signed with the recorder's Ed25519 key, linked into an append-only, hash-chained index, which
//! `kube-recorder verify` checks.
//!
//! See [`Store`] for the directory layout and [`events`] for the event log.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use recorder_server::{RecorderServer, ServerOptions};
//!
//! let options = ServerOptions::new("127.0.0.1:0".parse()?, "/var/lib/kube-recorder");
//! let server = RecorderServer::start(options).await?;
//! println!("recording at http://{}", server.addr());
//! for recording in server.store().list().await? {
//!     println!("{} {} {:?}", recording.id, recording.who(), recording.outcome);
//! }
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]

mod api_client;
mod capture_scan;
mod cast_scan;
mod civil_time;
pub mod crypt;
mod error;
pub mod events;
mod line_splitter;
mod playback;
mod recording_id;
mod recording_meta;
pub mod s3;
pub mod seal;
mod server;
mod store;

pub use api_client::{ApiError, CastDownload, RecorderApiClient};
// The recording formats live in castfmt, shared with the recorder client; they are re-exported
// here because this crate's API (index entries, playback) speaks them.
pub use capture_scan::MAX_CAPTURE_LINE;
pub use cast_scan::{MAX_HEADER_LINE, MAX_LISTED_FILES};
pub use castfmt::{
    CastEvent, CopiedFile, EventLineError, HeaderError, LenientHeader, Outcome, Protocol,
};
pub use error::{ServerError, StoreError};
pub use events::{EventFilter, FilterError};
pub use line_splitter::{Line, LineSplitter};
pub use playback::{Playback, PlaybackOptions, PlaybackStep};
pub use recording_id::is_valid_id;
pub use recording_meta::{FileCopyMeta, PortForwardCaptureMeta, RecordingKind, RecordingMeta};
pub use server::{
    AccessOptions, CidrError, IpCidr, RecorderServer, ServerOptions, RECORDER_CAPABILITY,
    VIEW_EVENT_TYPE,
};
pub use store::{
    DirStorage, Hold, RecordingEnd, RecordingReader, RecordingStorage, RecordingWriter, Store,
    SweepReport, HOLDS_FILE,
};

/// Renders a Unix time as RFC 3339 in UTC to the second, as listings show it.
pub fn format_unix_time(unix_seconds: f64) -> String {
    civil_time::rfc3339(unix_seconds)
}
