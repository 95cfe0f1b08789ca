//! The recorder protocols' fixed vocabulary: paths, headers, and the NDJSON lines a v2 recorder
//! streams back.
//!
//! Tailscale's client (`sessionrecording/connect.go`) probes `HEAD /v2/record` over h2c and
//! uploads with `POST /v2/record` (v2) or falls back to `POST /record` with `Expect:
//! 100-continue` (v1); API events go to `POST /v2/event` (after a `HEAD /v2/event` probe). A v2
//! recorder answers with NDJSON frames (Go's `v2ResponseFrame`, both fields `omitempty`):
//! `{"ack":N}` with the bytes received so far, or `{"error":"..."}` when storing failed.
//!
//! Our extension, offered by kube-recorder: batches of API events, `POST /v2/events` with one
//! event per line ([`EVENTS_PATH`], [`EventBatchAnswer`]), probed with `HEAD /v2/events`; a
//! recorder that does not answer the probe with 200 gets one `POST /v2/event` per event.

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

/// Path of batches of API events (`POST`, NDJSON: one event per line) and of their probe
/// (`HEAD`): this project's extension, offered by kube-recorder. A recorder that answers the
/// probe with anything but 200 speaks only Tailscale's one-event-per-`POST` protocol
/// ([`EVENT_PATH`]), which clients then use.
pub const EVENTS_PATH: &str = "/v2/events";

/// `Content-Type` of an event batch: NDJSON, one JSON object per line.
pub const EVENT_BATCH_CONTENT_TYPE: &str = "application/x-ndjson";

/// Header of a recorder's answer to `HEAD /v2/events`: the most events it takes in one batch.
pub const EVENT_BATCH_MAX_EVENTS_HEADER: &str = "kap-max-batch-events";

/// Header of a recorder's answer to `HEAD /v2/events`: the largest batch body it takes, in bytes.
pub const EVENT_BATCH_MAX_BYTES_HEADER: &str = "kap-max-batch-bytes";

/// The most events kube-recorder takes in one batch; more are refused (413) with nothing stored.
pub const EVENT_BATCH_MAX_EVENTS: usize = 1024;

/// A recorder's answer to `POST /v2/events` (status 200): every event of the batch not listed in
/// `rejected` is stored and durable. Any other status means that none of the batch is known to
/// be stored. JSON: `{"stored":N,"rejected":[{"index":I,"error":"..."}]}`, `rejected` left out
/// when empty; `index` counts the batch's events (its non-blank lines) from 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatchAnswer {
    /// How many events were stored.
    pub stored: usize,
    /// The events refused, in order, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedEvent>,
}

/// One event of a batch that a recorder refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// The event's place in the batch, from 0.
    pub index: usize,
    /// Why it was refused, for people.
    pub error: String,
}

/// An answer to `POST /v2/events` that does not fit the batch it answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventBatchAnswerError(String);

impl EventBatchAnswer {
    /// Reads the answer to a batch of `count` events, and checks that it accounts for each
    /// exactly once: rejected indexes in order, below `count`, and `stored` the rest.
    pub fn parse(body: &[u8], count: usize) -> Result<EventBatchAnswer, EventBatchAnswerError> {
        let answer: EventBatchAnswer =
            serde_json::from_slice(body).map_err(|e| EventBatchAnswerError(e.to_string()))?;
        let mut next = 0;
        for rejected in &answer.rejected {
            if rejected.index < next || rejected.index >= count {
                return Err(EventBatchAnswerError(format!(
                    "rejected index {} out of order or beyond the batch of {count}",
                    rejected.index
                )));
            }
            next = rejected.index + 1;
        }
        if answer.stored.checked_add(answer.rejected.len()) != Some(count) {
            return Err(EventBatchAnswerError(format!(
                "{} stored and {} rejected of a batch of {count}",
                answer.stored,
                answer.rejected.len()
            )));
        }
        Ok(answer)
    }

    /// The outcome of each of the batch's `count` events, in order: stored, or the reason it
    /// was refused.
    pub fn outcomes(self, count: usize) -> Vec<Result<(), String>> {
        let mut outcomes = vec![Ok(()); count];
        for rejected in self.rejected {
            if let Some(outcome) = outcomes.get_mut(rejected.index) {
                *outcome = Err(format!(
                    "the recorder refused the event: {}",
                    rejected.error
                ));
            }
        }
        outcomes
    }

    /// The answer's JSON.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a count and a list of strings cannot fail; the fallback is never used.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{\"stored\":0}".to_vec())
    }
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
