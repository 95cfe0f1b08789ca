//! kube-auth-proxy's port-forward capture format (`kap-port-forward/1`): the bytes of one TCP
//! connection through a `kubectl port-forward`, both ways, binary-safe. Stored by a grant with
//! `recordPortForwardData`; one capture per connection.
//!
//! JSON lines, like asciicast, but not asciicast (its data is text; these bytes are not):
//!
//! ```text
//! {"version":"kap-port-forward/1","id":"<session audit id>","timestamp":1700000000,
//!  "transport":"websocket","connection":{"requestId":"0","port":8080},
//!  "kubernetes":{"PodName":"demo","Namespace":"default"},
//!  "srcNode":"laptop.tail-scale.ts.net","srcNodeID":"nXYZ","srcNodeUserID":42,"srcNodeUser":"alice@example.com"}
//! [0.001234,"c","R0VUIC8gSFRUUC8xLjANCg0K"]
//! [0.002001,"s","SFRUUC8xLjAgMjAwIE9LDQoNCg=="]
//! ```
//!
//! The header (one line) says which session (`id`: the id of the session's
//! `kubernetes-port-forward` audit events), which connection (`requestId` and pod `port`), which
//! pod, who (the caller fields of the asciicast header: `srcNode`, `srcNodeID`, `srcNodeTags` or
//! `srcNodeUserID` + `srcNodeUser`), and when the connection opened (`timestamp`, Unix seconds).
//! Each event is `[seconds since the connection opened, direction, standard base64 of the bytes]`
//! with direction `c` (client to pod) or `s` (pod to client), in the order the proxy forwarded
//! them; an event carries at most [`PortForwardCapture::MAX_EVENT_BYTES`]. `m` events are notes
//! (text), which readers of the bytes skip.
//!
//! The writer is strict ([`PortForwardCaptureHeader::try_to_json_line`],
//! [`PortForwardCapture::write_event`]); the reader is lenient ([`LenientCaptureHeader`],
//! [`CaptureEvent`]): any field may be missing, extra keys are ignored, base64 is read with or
//! without padding.
//!
//! ```
//! use std::time::Duration;
//! use castfmt::{
//!     Caller, CaptureConnection, CaptureDirection, CaptureEvent, CapturedPod,
//!     LenientCaptureHeader, PortForwardCapture, PortForwardCaptureHeader,
//! };
//!
//! let header = PortForwardCaptureHeader::new(
//!     "9f1c".into(),
//!     1_700_000_000,
//!     Caller::Tagged { node: "ci".into(), node_id: "nCI".into(), tags: vec!["tag:ci".into()] },
//!     CapturedPod { pod_name: "db".into(), namespace: "default".into() },
//!     CaptureConnection { request_id: "0".into(), port: 5432 },
//!     "spdy",
//! );
//! let mut capture = header.try_to_json_line()?;
//! PortForwardCapture::write_event(&mut capture, Duration::from_millis(5), CaptureDirection::ClientToPod, &[0, 159, 255]);
//!
//! let mut lines = capture.split(|&b| b == b'\n');
//! let read = LenientCaptureHeader::parse(lines.next().unwrap_or_default())?;
//! assert_eq!(read.port, Some(5432));
//! let event = CaptureEvent::parse(lines.next().unwrap_or_default())?;
//! assert_eq!(event.direction(), Some(CaptureDirection::ClientToPod));
//! assert_eq!(event.bytes()?, vec![0, 159, 255]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::header::Caller;

/// The format's name and version, the header's `version`.
pub const PORT_FORWARD_CAPTURE_VERSION: &str = "kap-port-forward/1";

/// The `Content-Type` of a capture upload (`POST /v2/record` or `POST /record`) and of a stored
/// capture served back; a recorder stores an upload without it as asciicast.
pub const PORT_FORWARD_CAPTURE_CONTENT_TYPE: &str = "application/x-kap-port-forward";

/// Constants and the event writer of the format.
#[derive(Debug)]
#[non_exhaustive]
pub struct PortForwardCapture;

impl PortForwardCapture {
    /// The most bytes one event carries; the writer splits longer pieces.
    pub const MAX_EVENT_BYTES: usize = 48 * 1024;

    /// Appends the event lines (newline included) for `bytes` forwarded in `direction` at `at`
    /// (since the connection opened): one line per [`Self::MAX_EVENT_BYTES`], none for no bytes.
    /// The time is written with microsecond precision in plain decimal notation.
    pub fn write_event(out: &mut Vec<u8>, at: Duration, direction: CaptureDirection, bytes: &[u8]) {
        let mut time = String::with_capacity(24);
        // Writing to a String cannot fail.
        let _ = write!(time, "{}.{:06}", at.as_secs(), at.subsec_micros());
        for piece in bytes.chunks(Self::MAX_EVENT_BYTES) {
            out.reserve(time.len() + piece.len().div_ceil(3) * 4 + 12);
            out.push(b'[');
            out.extend_from_slice(time.as_bytes());
            out.extend_from_slice(b",\"");
            out.extend_from_slice(direction.code().as_bytes());
            out.extend_from_slice(b"\",\"");
            let start = out.len();
            out.resize(start + piece.len().div_ceil(3) * 4, 0);
            // The slice has exactly the encoded length.
            let written = STANDARD
                .encode_slice(piece, &mut out[start..])
                .unwrap_or_default();
            out.truncate(start + written);
            out.extend_from_slice(b"\"]\n");
        }
    }

    /// Appends a note (`m` event): text that is not connection data, e.g. why the capture ends.
    pub fn write_note(out: &mut Vec<u8>, at: Duration, text: &str) {
        let mut time = String::with_capacity(24);
        let _ = write!(time, "{}.{:06}", at.as_secs(), at.subsec_micros());
        out.push(b'[');
        out.extend_from_slice(time.as_bytes());
        out.extend_from_slice(b",\"m\",");
        // Serialising a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
        out.extend_from_slice(b"]\n");
    }
}

/// Which way bytes went through the forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureDirection {
    /// `c`: from the client (kubectl's local port) to the pod.
    ClientToPod,
    /// `s`: from the pod (the server side) to the client.
    PodToClient,
}

impl CaptureDirection {
    /// The event code: `c` or `s`.
    pub fn code(self) -> &'static str {
        match self {
            CaptureDirection::ClientToPod => "c",
            CaptureDirection::PodToClient => "s",
        }
    }

    /// The direction of an event code (`c`, `s`).
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "c" => Some(CaptureDirection::ClientToPod),
            "s" => Some(CaptureDirection::PodToClient),
            _ => None,
        }
    }
}

/// The forwarded connection a capture is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureConnection {
    /// The `requestID` of its streams (kubectl: `0`, `1`, ... per session).
    #[serde(rename = "requestId")]
    pub request_id: String,
    /// The pod's port.
    pub port: u16,
}

/// The pod a capture's connection reached. Keys as in the asciicast header's `kubernetes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPod {
    /// The pod's name.
    #[serde(rename = "PodName")]
    pub pod_name: String,
    /// Its namespace.
    #[serde(rename = "Namespace")]
    pub namespace: String,
}

/// The first line of a capture, as a client writes it (strictly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForwardCaptureHeader {
    /// Always [`PORT_FORWARD_CAPTURE_VERSION`].
    pub version: String,
    /// The id of the session's `kubernetes-port-forward` audit events.
    pub id: String,
    /// When the connection opened, Unix seconds.
    pub timestamp: i64,
    /// How the session reached the API server: `websocket` (SPDY in a WebSocket) or `spdy`.
    pub transport: String,
    /// Which connection.
    pub connection: CaptureConnection,
    /// Which pod.
    pub kubernetes: CapturedPod,
    /// The caller's node name.
    #[serde(rename = "srcNode")]
    pub src_node: String,
    /// The caller's stable node ID.
    #[serde(rename = "srcNodeID")]
    pub src_node_id: String,
    /// The caller's node tags, when the node is tagged.
    #[serde(rename = "srcNodeTags", default, skip_serializing_if = "Vec::is_empty")]
    pub src_node_tags: Vec<String>,
    /// The numeric ID of the user who owns the caller's node, when it is not tagged.
    #[serde(
        rename = "srcNodeUserID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub src_node_user_id: Option<i64>,
    /// The login name of the user who owns the caller's node, when it is not tagged.
    #[serde(
        rename = "srcNodeUser",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub src_node_user: Option<String>,
}

/// A capture header a recorder would misread.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port-forward capture header: {0}")]
pub struct InvalidCaptureHeader(String);

impl PortForwardCaptureHeader {
    /// The header of a capture of `connection` to `pod`, opened at `timestamp` by `caller`, in
    /// the session whose audit id is `id`.
    pub fn new(
        id: String,
        timestamp: i64,
        caller: Caller,
        pod: CapturedPod,
        connection: CaptureConnection,
        transport: &str,
    ) -> Self {
        let (src_node, src_node_id, src_node_tags, src_node_user_id, src_node_user) = match caller {
            Caller::User {
                node,
                node_id,
                login_name,
                user_id,
            } => (node, node_id, Vec::new(), Some(user_id), Some(login_name)),
            Caller::Tagged {
                node,
                node_id,
                tags,
            } => (node, node_id, tags, None, None),
        };
        PortForwardCaptureHeader {
            version: PORT_FORWARD_CAPTURE_VERSION.to_owned(),
            id,
            timestamp,
            transport: transport.to_owned(),
            connection,
            kubernetes: pod,
            src_node: src_node.trim_end_matches('.').to_owned(),
            src_node_id,
            src_node_tags,
            src_node_user_id,
            src_node_user,
        }
    }

    /// Checks what a reader relies on: the version, an id, a pod, and one kind of caller.
    pub fn validate(&self) -> Result<(), InvalidCaptureHeader> {
        let bad = |why: &str| Err(InvalidCaptureHeader(why.to_owned()));
        if self.version != PORT_FORWARD_CAPTURE_VERSION {
            return bad("version is not kap-port-forward/1");
        }
        if self.id.is_empty() {
            return bad("no session id");
        }
        if self.kubernetes.pod_name.is_empty() {
            return bad("no pod name");
        }
        let user = self.src_node_user.is_some() || self.src_node_user_id.is_some();
        if user && !self.src_node_tags.is_empty() {
            return bad("a caller is a user's node or a tagged node, not both");
        }
        if self.src_node_user.is_some() != self.src_node_user_id.is_some() {
            return bad("srcNodeUser and srcNodeUserID go together");
        }
        Ok(())
    }

    /// The header line, newline included, when [valid](Self::validate).
    pub fn try_to_json_line(&self) -> Result<Vec<u8>, InvalidCaptureHeader> {
        self.validate()?;
        let mut line = serde_json::to_vec(self).map_err(|e| InvalidCaptureHeader(e.to_string()))?;
        line.push(b'\n');
        Ok(line)
    }
}

/// A capture header as a recorder reads it: every field optional, mistyped ones unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LenientCaptureHeader {
    /// `version`.
    pub version: Option<String>,
    /// `id`: the session's audit id.
    pub id: Option<String>,
    /// `timestamp`.
    pub timestamp: Option<i64>,
    /// `transport`.
    pub transport: Option<String>,
    /// `connection.requestId`.
    pub request_id: Option<String>,
    /// `connection.port`.
    pub port: Option<u16>,
    /// `kubernetes.PodName`.
    pub pod: Option<String>,
    /// `kubernetes.Namespace`.
    pub namespace: Option<String>,
    /// `srcNode`.
    pub src_node: Option<String>,
    /// `srcNodeID`.
    pub src_node_id: Option<String>,
    /// `srcNodeUser`.
    pub src_node_user: Option<String>,
    /// `srcNodeUserID`.
    pub src_node_user_id: Option<i64>,
    /// `srcNodeTags`.
    pub src_node_tags: Vec<String>,
}

/// A line that is not a capture header or event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CaptureLineError(String);

impl LenientCaptureHeader {
    /// Reads a header line (without its newline); it must be a JSON object.
    pub fn parse(line: &[u8]) -> Result<Self, CaptureLineError> {
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| CaptureLineError(format!("header is not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(CaptureLineError("header is not a JSON object".into()));
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let connection = map.get("connection");
        let kubernetes = map.get("kubernetes");
        Ok(LenientCaptureHeader {
            version: text(map.get("version")),
            id: text(map.get("id")),
            timestamp: map.get("timestamp").and_then(Value::as_i64),
            transport: text(map.get("transport")),
            request_id: text(connection.and_then(|c| c.get("requestId"))),
            port: connection
                .and_then(|c| c.get("port"))
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok()),
            pod: text(kubernetes.and_then(|k| k.get("PodName"))),
            namespace: text(kubernetes.and_then(|k| k.get("Namespace"))),
            src_node: text(map.get("srcNode")),
            src_node_id: text(map.get("srcNodeID")),
            src_node_user: text(map.get("srcNodeUser")),
            src_node_user_id: map.get("srcNodeUserID").and_then(Value::as_i64),
            src_node_tags: map
                .get("srcNodeTags")
                .and_then(Value::as_array)
                .map(|tags| {
                    tags.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// What is wrong with the header for a reader, if anything: another version.
    pub fn problem(&self) -> Option<String> {
        match self.version.as_deref() {
            Some(PORT_FORWARD_CAPTURE_VERSION) => None,
            Some(other) => Some(format!(
                "version {other:?} is not {PORT_FORWARD_CAPTURE_VERSION}"
            )),
            None => Some("header has no version".into()),
        }
    }
}

/// One event line of a capture, read leniently: `[time, code, data]`, any code.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureEvent {
    /// Seconds since the connection opened.
    pub time: f64,
    /// `c`, `s`, `m` (or anything else a writer chose).
    pub code: String,
    /// The data as written: base64 for `c` and `s`, text for `m`; a non-string value as its
    /// JSON text.
    pub data: String,
}

/// Base64 as a reader takes it: standard alphabet, padding or none.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl CaptureEvent {
    /// Reads one event line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Self, CaptureLineError> {
        let (time, code, data): (f64, String, Value) = serde_json::from_slice(line)
            .map_err(|e| CaptureLineError(format!("not a capture event: {e}")))?;
        let data = match data {
            Value::String(text) => text,
            other => other.to_string(),
        };
        Ok(CaptureEvent { time, code, data })
    }

    /// The direction of a data event (`c` or `s`); `None` for notes and unknown codes.
    pub fn direction(&self) -> Option<CaptureDirection> {
        CaptureDirection::from_code(&self.code)
    }

    /// The bytes of a data event (its base64 decoded).
    pub fn bytes(&self) -> Result<Vec<u8>, CaptureLineError> {
        LENIENT_BASE64
            .decode(self.data.trim())
            .map_err(|e| CaptureLineError(format!("event data is not base64: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(caller: Caller) -> PortForwardCaptureHeader {
        PortForwardCaptureHeader::new(
            "abc".into(),
            1_700_000_000,
            caller,
            CapturedPod {
                pod_name: "db".into(),
                namespace: "prod".into(),
            },
            CaptureConnection {
                request_id: "3".into(),
                port: 5432,
            },
            "websocket",
        )
    }

    fn user() -> Caller {
        Caller::User {
            node: "laptop.tail-scale.ts.net.".into(),
            node_id: "nXYZ".into(),
            login_name: "alice@example.com".into(),
            user_id: 42,
        }
    }

    #[test]
    fn writes_the_header_with_the_fields_in_order() {
        let line = header(user()).try_to_json_line().expect("valid");
        assert_eq!(
            String::from_utf8(line).expect("utf-8"),
            concat!(
                r#"{"version":"kap-port-forward/1","id":"abc","timestamp":1700000000,"transport":"websocket","#,
                r#""connection":{"requestId":"3","port":5432},"kubernetes":{"PodName":"db","Namespace":"prod"},"#,
                r#""srcNode":"laptop.tail-scale.ts.net","srcNodeID":"nXYZ","srcNodeUserID":42,"srcNodeUser":"alice@example.com"}"#,
                "\n"
            )
        );
        let tagged = header(Caller::Tagged {
            node: "ci".into(),
            node_id: "nCI".into(),
            tags: vec!["tag:ci".into()],
        });
        let line = tagged.try_to_json_line().expect("valid");
        let read = LenientCaptureHeader::parse(line.trim_ascii_end()).expect("header");
        assert_eq!(read.src_node_tags, vec!["tag:ci".to_owned()]);
        assert_eq!(read.src_node_user, None);
        assert_eq!(read.problem(), None);
    }

    #[test]
    fn refuses_headers_a_reader_would_misread() {
        let mut bad = header(user());
        bad.version = "2".into();
        assert!(bad.try_to_json_line().is_err());
        let mut bad = header(user());
        bad.src_node_tags = vec!["tag:x".into()];
        assert!(bad.validate().is_err());
        let mut bad = header(user());
        bad.id.clear();
        assert!(bad.validate().is_err());
        let mut bad = header(user());
        bad.src_node_user = None;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn reads_headers_leniently() {
        let read = LenientCaptureHeader::parse(
            br#"{"version":"kap-port-forward/1","connection":{"requestId":"0","port":"x"},"kubernetes":{"PodName":"p"},"extra":[1]}"#,
        )
        .expect("header");
        assert_eq!(read.request_id.as_deref(), Some("0"));
        assert_eq!(read.port, None);
        assert_eq!(read.pod.as_deref(), Some("p"));
        assert_eq!(read.namespace, None);
        let other = LenientCaptureHeader::parse(br#"{"version":2}"#).expect("header");
        assert!(other.problem().is_some());
        assert!(LenientCaptureHeader::parse(b"[1]").is_err());
        assert!(LenientCaptureHeader::parse(b"nope").is_err());
    }

    #[test]
    fn writes_events_split_at_the_limit() {
        let mut out = Vec::new();
        PortForwardCapture::write_event(
            &mut out,
            Duration::from_micros(1_500_001),
            CaptureDirection::PodToClient,
            b"hi\0\xff",
        );
        assert_eq!(out, b"[1.500001,\"s\",\"aGkA/w==\"]\n");
        out.clear();
        PortForwardCapture::write_event(
            &mut out,
            Duration::ZERO,
            CaptureDirection::ClientToPod,
            b"",
        );
        assert!(out.is_empty());
        let big = vec![7u8; PortForwardCapture::MAX_EVENT_BYTES * 2 + 1];
        PortForwardCapture::write_event(
            &mut out,
            Duration::ZERO,
            CaptureDirection::ClientToPod,
            &big,
        );
        let lines: Vec<&[u8]> = out.trim_ascii_end().split(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 3);
        let mut back = Vec::new();
        for line in lines {
            let event = CaptureEvent::parse(line).expect("event");
            assert_eq!(event.direction(), Some(CaptureDirection::ClientToPod));
            back.extend(event.bytes().expect("base64"));
        }
        assert_eq!(back, big);
    }

    #[test]
    fn reads_events_leniently() {
        let event = CaptureEvent::parse(br#"[ 2 , "c" , "aGk" ]"#).expect("event");
        assert_eq!(event.time, 2.0);
        assert_eq!(event.bytes().expect("unpadded"), b"hi");
        let note = CaptureEvent::parse(br#"[3.5,"m","capture cut"]"#).expect("note");
        assert_eq!(note.direction(), None);
        let mut out = Vec::new();
        PortForwardCapture::write_note(&mut out, Duration::from_secs(3), "a \"note\"");
        let note = CaptureEvent::parse(out.trim_ascii_end()).expect("note");
        assert_eq!(note.data, "a \"note\"");
        assert!(CaptureEvent::parse(br#"[1,"c","!!"]"#)
            .expect("event")
            .bytes()
            .is_err());
        assert!(CaptureEvent::parse(br#"{"t":1}"#).is_err());
        let odd = CaptureEvent::parse(br#"[1,"x",{"a":1}]"#).expect("event");
        assert_eq!(odd.data, r#"{"a":1}"#);
    }

    proptest! {
        #[test]
        fn any_bytes_read_back(bytes in proptest::collection::vec(any::<u8>(), 0..110_000), micros in 0u64..10_000_000_000) {
            let mut out = Vec::new();
            PortForwardCapture::write_event(&mut out, Duration::from_micros(micros), CaptureDirection::PodToClient, &bytes);
            let mut back = Vec::new();
            for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let event = CaptureEvent::parse(line).expect("event");
                prop_assert_eq!(event.code.as_str(), "s");
                prop_assert!((event.time - micros as f64 / 1e6).abs() < 1e-6);
                back.extend(event.bytes().expect("base64"));
            }
            prop_assert_eq!(back, bytes);
        }
    }
}
