//! The recorder protocols' fixed vocabulary: paths, headers, and the NDJSON lines a v2 recorder
//! streams back.
//!
//! Tailscale's client (`sessionrecording/connect.go`) probes `HEAD /v2/record` over h2c and
//! uploads with `POST /v2/record` (v2) or falls back to `POST /record` with `Expect:
//! 100-continue` (v1); API events go to `POST /v2/event` (after a `HEAD /v2/event` probe). A v2
//! recorder answers with NDJSON frames (Go's `v2ResponseFrame`, both fields `omitempty`):
//! `{"ack":N}` with the bytes received so far, or `{"error":"..."}` when storing failed.

use serde::{Deserialize, Serialize};

/// Path of a v1 upload (`POST`, HTTP/1.1, `Expect: 100-continue`).
pub const V1_RECORD_PATH: &str = "/record";

/// Path of a v2 upload (`POST` over h2c, acks streamed back) and of its probe (`HEAD`).
pub const V2_RECORD_PATH: &str = "/v2/record";

/// Path of API events (`POST`, one JSON object) and of their probe (`HEAD`).
pub const EVENT_PATH: &str = "/v2/event";

/// The `Expect` value of a v1 upload: the body is sent only after `100 Continue`.
pub const V1_EXPECT: &str = "100-continue";

/// `Content-Type` of a v2 upload's answer: NDJSON ack lines.
pub const ACK_CONTENT_TYPE: &str = "application/x-ndjson";

/// `Content-Type` of an API event, and of a recorder's `{"error":"..."}` answer to a refused
/// request.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// `Content-Type` of a stored recording served back.
pub const CAST_CONTENT_TYPE: &str = "application/x-asciicast";

/// Which recorder protocol a recording travels (or travelled) by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Protocol {
    /// `POST /v2/record` over h2c, with acks streamed back.
    V2,
    /// `POST /record` over HTTP/1.1 with `Expect: 100-continue`.
    V1,
    /// Not known: a recording a recorder found on disk without its index entry (after a crash).
    Unknown,
}

impl Protocol {
    /// The path a recording is posted to; `None` for [`Protocol::Unknown`].
    pub fn path(self) -> Option<&'static str> {
        match self {
            Protocol::V2 => Some(V2_RECORD_PATH),
            Protocol::V1 => Some(V1_RECORD_PATH),
            Protocol::Unknown => None,
        }
    }
}

/// One line a v2 recorder streams back, read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckLine {
    /// `{"ack":N}`: the recorder has received `N` bytes. `{}` is an ack of 0, as Go leaves a zero
    /// `ack` out.
    Ack(u64),
    /// `{"error":"..."}`: storing failed; the recorder ends the answer after it.
    Error(String),
}

/// A line that is not an ack frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AckLineError(String);

/// The JSON of one frame, as Go's `v2ResponseFrame` reads and writes it: both fields optional.
#[derive(Deserialize)]
struct FrameIn {
    #[serde(default)]
    ack: u64,
    #[serde(default)]
    error: String,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    error: &'a str,
}

impl AckLine {
    /// Reads one line (without its newline). A non-empty `error` wins over an `ack` in the same
    /// frame, as in Tailscale's client; an empty `error` is no error.
    pub fn parse(line: &[u8]) -> Result<AckLine, AckLineError> {
        let frame: FrameIn =
            serde_json::from_slice(line).map_err(|e| AckLineError(e.to_string()))?;
        if frame.error.is_empty() {
            Ok(AckLine::Ack(frame.ack))
        } else {
            Ok(AckLine::Error(frame.error))
        }
    }

    /// The line, newline included: `{"ack":N}` or `{"error":"..."}`.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            AckLine::Ack(received) => ack_line(*received),
            AckLine::Error(message) => error_line(message),
        }
    }
}

/// `{"ack":N}` and a newline.
pub fn ack_line(received: u64) -> Vec<u8> {
    format!("{{\"ack\":{received}}}\n").into_bytes()
}

/// `{"error":"..."}` and a newline; also the body of a recorder's error answer, without the
/// newline ([`error_json`]).
pub fn error_line(message: &str) -> Vec<u8> {
    let mut line = error_json(message);
    line.push(b'\n');
    line
}

/// `{"error":"..."}`, the JSON object a recorder answers an error with.
pub fn error_json(message: &str) -> Vec<u8> {
    // Serialising a struct of one string cannot fail; the fallback keeps the line's shape.
    serde_json::to_vec(&ErrorOut { error: message })
        .unwrap_or_else(|_| b"{\"error\":\"\"}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_lines_round_trip() {
        for line in [
            AckLine::Ack(0),
            AckLine::Ack(u64::MAX),
            AckLine::Error("disk full: \"x\"\n".into()),
        ] {
            let bytes = line.encode();
            assert_eq!(bytes.last(), Some(&b'\n'));
            assert_eq!(AckLine::parse(&bytes[..bytes.len() - 1]), Ok(line));
        }
        assert_eq!(ack_line(42), b"{\"ack\":42}\n");
        assert_eq!(error_line("no"), b"{\"error\":\"no\"}\n");
    }

    #[test]
    fn parses_go_frames() {
        assert_eq!(AckLine::parse(b"{}"), Ok(AckLine::Ack(0)));
        assert_eq!(AckLine::parse(br#"{"ack": 7}"#), Ok(AckLine::Ack(7)));
        assert_eq!(
            AckLine::parse(br#"{"ack": 7, "error": "boom"}"#),
            Ok(AckLine::Error("boom".into()))
        );
        assert_eq!(
            AckLine::parse(br#"{"ack": 3, "error": ""}"#),
            Ok(AckLine::Ack(3))
        );
        assert_eq!(
            AckLine::parse(br#"{"ack": 1, "later": true}"#),
            Ok(AckLine::Ack(1))
        );
        assert!(AckLine::parse(b"ack 1").is_err());
        assert!(AckLine::parse(br#"{"ack": -1}"#).is_err());
        assert!(AckLine::parse(br#"{"ack": "1"}"#).is_err());
    }

    #[test]
    fn protocols_have_paths_and_names() {
        assert_eq!(Protocol::V2.path(), Some("/v2/record"));
        assert_eq!(Protocol::V1.path(), Some("/record"));
        assert_eq!(Protocol::Unknown.path(), None);
        assert_eq!(
            serde_json::to_string(&Protocol::Unknown).expect("json"),
            "\"unknown\""
        );
        assert_eq!(
            serde_json::from_str::<Protocol>("\"v2\"").expect("json"),
            Protocol::V2
        );
    }
}
