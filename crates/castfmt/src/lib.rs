//! The session-recording formats a recorder client and a recorder share, as data: no I/O, no
//! clock, no async.
//!
//! - **asciicast v2** (<https://docs.asciinema.org/manual/asciicast/v2/>): the header line and the
//!   `[time, code, data]` event lines, each from two sides. A client writes strictly:
//!   [`CastHeader`] (built valid by [`CastHeader::kubernetes`], checked by
//!   [`CastHeader::validate`]) and [`write_event_line`] with an [`EventCode`]. A recorder reads
//!   leniently, since it must store whatever any client sends: [`LenientHeader`] (every field
//!   optional, mistyped fields unknown, extra keys ignored) and [`CastEvent`] (any code, and
//!   [`parse_event_prefix`] for lines too long to hold).
//! - **Tailscale's session header fields** (`sessionrecording.CastHeader` in
//!   `sessionrecording/header.go`, as `k8s-operator/sessionrecording/hijacker.go` fills it):
//!   `srcNode`, `srcNodeID`, `srcNodeUser` + `srcNodeUserID` or `srcNodeTags`, and a `kubernetes`
//!   object with Go's untagged field names `PodName`, `Namespace`, `Container`, `SessionType`.
//! - **API events**: Tailscale's session-recording event (`sessionrecording.Event` in
//!   `sessionrecording/event.go`, type `kubernetes-api-request`) as Go's `encoding/json` writes
//!   it, byte for byte: [`ApiRequestEvent`]; and kube-auth-proxy's `kubernetes-api-response`:
//!   [`ApiResponseEvent`]; the readable `workload` section kube-auth-proxy adds to the request
//!   event of a request that starts containers (`kubectl debug`, `kubectl run`): [`Workload`],
//!   read from the request body by [`Workload::from_request`], sent with
//!   [`ApiRequestEvent::with_workload`].
//! - **The recorder protocols' constants** ([`protocol`]): the paths `/record`, `/v2/record` and
//!   `/v2/event`, the headers, the v2 answer's NDJSON lines `{"ack":N}` / `{"error":"..."}`
//!   ([`AckLine`]), and which [`Protocol`] a recording used.
//! - **How a stored recording ended**: [`Outcome`].
//!
//! ```
//! use std::time::Duration;
//! use castfmt::{
//!     write_event_line, AckLine, CastEvent, CastHeader, Caller, EventCode, KubernetesSession,
//!     LenientHeader, SessionType,
//! };
//!
//! // The client's side.
//! let header = CastHeader::kubernetes(
//!     1_700_000_000,
//!     Caller::Tagged {
//!         node: "ci.tail-scale.ts.net.".into(),
//!         node_id: "nCI".into(),
//!         tags: vec!["tag:ci".into()],
//!     },
//!     "sh",
//!     KubernetesSession {
//!         pod_name: "demo".into(),
//!         namespace: "default".into(),
//!         container: "app".into(),
//!         session_type: SessionType::Exec,
//!     },
//! );
//! let mut cast = header.try_to_json_line()?;
//! write_event_line(&mut cast, Duration::from_millis(1500), EventCode::Output, "$ ");
//!
//! // The recorder's side.
//! let mut lines = cast.split(|&b| b == b'\n');
//! let read = LenientHeader::parse(lines.next().unwrap_or_default())?;
//! assert_eq!(read.pod.as_deref(), Some("demo"));
//! let event = CastEvent::parse(lines.next().unwrap_or_default())?;
//! assert_eq!((event.time, event.code.as_str(), event.data.as_str()), (1.5, "o", "$ "));
//! assert_eq!(AckLine::parse(br#"{"ack":42}"#)?, AckLine::Ack(42));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod api_event;
mod event_line;
mod event_reader;
mod header;
mod header_reader;
mod json_string;
mod outcome;
mod port_forward_capture;
pub mod protocol;
pub mod workload;

pub use api_event::{
    ApiRequestEvent, ApiResponseEvent, EventDestination, EventRequest, EventResponse, EventSource,
    PortForwardConnection, PortForwardEvent, PortForwardPhase, PortForwardRecord,
    PortForwardTotals, RequestEventWithWorkload, API_REQUEST_EVENT_TYPE, API_RESPONSE_EVENT_TYPE,
    PORT_FORWARD_EVENT_TYPE,
};
pub use event_line::{write_event_line, write_event_line_if_utf8, EventCode};
pub use event_reader::{parse_event_prefix, CastEvent, EventLineError};
pub use header::{
    Caller, CastHeader, CopiedFile, FileCopy, FileCopyDirection, InvalidHeader, KubernetesSession,
    SessionType, ASCIICAST_VERSION,
};
pub use header_reader::{HeaderError, LenientFileCopy, LenientHeader};
pub use json_string::{write_json_string, write_json_string_if_utf8};
pub use outcome::Outcome;
pub use port_forward_capture::{
    CaptureConnection, CaptureDirection, CaptureEvent, CaptureLineError, CapturedPod,
    InvalidCaptureHeader, LenientCaptureHeader, PortForwardCapture, PortForwardCaptureHeader,
    PORT_FORWARD_CAPTURE_CONTENT_TYPE, PORT_FORWARD_CAPTURE_VERSION,
};
pub use protocol::{AckLine, AckLineError, Protocol};
pub use workload::{HostPathVolume, Workload, WorkloadContainer, WorkloadSecurity};

/// The README's example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
