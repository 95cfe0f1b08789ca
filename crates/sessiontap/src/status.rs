//! The error stream (SPDY) / error channel (WebSocket): how the remote command ended.
//!
//! Kubelet (`pkg/kubelet/cri/streaming/remotecommand`, `v4WriteStatusFunc`) writes one
//! `metav1.Status` as JSON for protocol v4 and later, always, success included; for earlier versions
//! (`v1WriteStatusFunc`) it writes the error's text, and nothing at all on success. client-go reads
//! the whole stream and decodes it (`errorDecoderV4`, `errorDecoder`); an empty stream is a success in
//! every version.

use serde_json::{Map, Value};

use crate::event::ExitStatus;
use crate::json_stream::{ObjectScanner, Scanned};

/// How the server encodes the exit status on the error stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorFormat {
    /// One `metav1.Status` JSON object (v4 and later; `v4.channel.k8s.io`, `v5.channel.k8s.io`
    /// and `v4.base64.channel.k8s.io` over WebSocket).
    Status,
    /// The error's text, nothing on success (`channel.k8s.io` to `v3.channel.k8s.io`;
    /// `channel.k8s.io` and `base64.channel.k8s.io` over WebSocket).
    PlainText,
}

/// Why the error stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The stream held more than [`TapLimits::max_error_stream`](crate::TapLimits::max_error_stream)
    /// bytes before it ended (or, for JSON, before the object closed).
    #[error("error stream longer than {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
}

/// Collects the error stream (bounded) and decodes it once.
#[derive(Debug)]
pub(crate) struct ErrorStreamCollector {
    format: ErrorFormat,
    buffer: Vec<u8>,
    scanner: ObjectScanner,
    limit: usize,
    /// Whether the status has been decoded (later bytes are ignored).
    done: bool,
}

impl ErrorStreamCollector {
    pub(crate) fn new(format: ErrorFormat, limit: usize) -> Self {
        ErrorStreamCollector {
            format,
            buffer: Vec::new(),
            scanner: ObjectScanner::default(),
            limit,
            done: false,
        }
    }

    /// Whether the status has been decoded already.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Adds bytes of the stream. For [`ErrorFormat::Status`] the status is decoded as soon as the
    /// JSON object closes, without waiting for the end of the stream.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<Option<ExitStatus>, StatusError> {
        if self.done || bytes.is_empty() {
            return Ok(None);
        }
        let mut taken = bytes.len();
        let mut closed = false;
        if self.format == ErrorFormat::Status {
            for (index, &byte) in bytes.iter().enumerate() {
                // Anything but an object (Unexpected) is left for the end of the stream to report.
                if self.scanner.push(byte) == Scanned::Closed {
                    taken = index + 1;
                    closed = true;
                    break;
                }
            }
        }
        if self.buffer.len() + taken > self.limit {
            self.done = true;
            self.buffer = Vec::new();
            return Err(StatusError::TooLarge { limit: self.limit });
        }
        self.buffer.extend_from_slice(&bytes[..taken]);
        Ok(closed.then(|| self.finish_now()))
    }

    /// Ends a message on the error channel (WebSocket): plain text is complete at the end of the
    /// first non-empty message; JSON waits for its object to close.
    pub(crate) fn message_end(&mut self) -> Option<ExitStatus> {
        if self.done || self.format == ErrorFormat::Status || self.buffer.is_empty() {
            return None;
        }
        Some(self.finish_now())
    }

    /// Ends the stream: decodes what was collected unless that was done already.
    pub(crate) fn end(&mut self) -> Option<ExitStatus> {
        if self.done {
            return None;
        }
        Some(self.finish_now())
    }

    /// Ends the stream abnormally (the connection failed): `message` is the status unless one
    /// was decoded already.
    pub(crate) fn abort(&mut self, message: String) -> Option<ExitStatus> {
        if self.done {
            return None;
        }
        self.done = true;
        self.buffer = Vec::new();
        Some(ExitStatus::Failure { message })
    }

    fn finish_now(&mut self) -> ExitStatus {
        self.done = true;
        let bytes = std::mem::take(&mut self.buffer);
        decode(self.format, &bytes)
    }
}

/// A `metav1.Status` Failure as the kubelet writes one on the error stream when it cannot run the
/// command (reason `InternalError`, code 500), carrying `message`: what a proxy writes to end a
/// session with a reason kubectl prints.
pub(crate) fn failure_status_json(message: &str) -> Vec<u8> {
    kubestatus::Status::internal_error(message).to_json()
}

/// Decodes a complete error stream the way client-go does.
pub(crate) fn decode(format: ErrorFormat, bytes: &[u8]) -> ExitStatus {
    if bytes.is_empty()
        || (format == ErrorFormat::Status && bytes.iter().all(u8::is_ascii_whitespace))
    {
        return ExitStatus::Success;
    }
    match format {
        ErrorFormat::PlainText => ExitStatus::Failure {
            message: String::from_utf8_lossy(bytes).into_owned(),
        },
        ErrorFormat::Status => match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(status)) => decode_status(&status),
            Ok(_) => protocol_error("not a Status object"),
            Err(err) => protocol_error(&err.to_string()),
        },
    }
}

/// client-go `errorDecoderV4.decode`, except that any code that fits in an `i32` is accepted
/// (client-go insists on 0 to 255, which is all kubelet sends).
fn decode_status(status: &Map<String, Value>) -> ExitStatus {
    match field(status, "status") {
        Some(Value::String(s)) if s == "Success" => ExitStatus::Success,
        Some(Value::String(s)) if s == "Failure" => {
            if field(status, "reason").and_then(Value::as_str) != Some("NonZeroExitCode") {
                let message = field(status, "message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return ExitStatus::Failure {
                    message: message.to_owned(),
                };
            }
            let Some(Value::Object(details)) = field(status, "details") else {
                return protocol_error("details must be set");
            };
            let causes = match field(details, "causes") {
                Some(Value::Array(causes)) => causes.as_slice(),
                _ => &[],
            };
            let exit_cause = causes.iter().find_map(|cause| {
                let cause = cause.as_object()?;
                (field(cause, "reason")?.as_str()? == "ExitCode").then_some(cause)
            });
            let Some(cause) = exit_cause else {
                return protocol_error("no ExitCode cause given");
            };
            let message = field(cause, "message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match message.parse::<i32>() {
                Ok(code) => ExitStatus::Code(code),
                Err(_) => protocol_error(&format!("invalid exit code value {message:?}")),
            }
        }
        _ => protocol_error("unknown error"),
    }
}

/// A JSON object's field as Go's `encoding/json` finds it: the exact key, else any key equal to it
/// in another letter case.
fn field<'v>(object: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

fn protocol_error(what: &str) -> ExitStatus {
    ExitStatus::Failure {
        message: format!("error stream protocol error: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> ExitStatus {
        decode(ErrorFormat::Status, json.as_bytes())
    }

    #[test]
    fn success() {
        assert_eq!(
            status(r#"{"metadata":{},"status":"Success"}"#),
            ExitStatus::Success
        );
        assert_eq!(status(""), ExitStatus::Success);
        assert_eq!(decode(ErrorFormat::PlainText, b""), ExitStatus::Success);
    }

    #[test]
    fn exit_codes() {
        let kubelet = r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(status(kubelet), ExitStatus::Code(3));
        assert_eq!(
            status(
                r#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"Other","message":"x"},{"reason":"ExitCode","message":"255"}]}}"#
            ),
            ExitStatus::Code(255)
        );
        assert_eq!(
            status(
                r#"{"Status":"Failure","Reason":"NonZeroExitCode","Details":{"Causes":[{"Reason":"ExitCode","Message":"130"}]}}"#
            ),
            ExitStatus::Code(130),
            "keys match in any letter case, as in Go"
        );
    }

    #[test]
    fn failures() {
        assert_eq!(
            status(
                r#"{"status":"Failure","message":"container not found","reason":"InternalError","code":500}"#
            ),
            ExitStatus::Failure {
                message: "container not found".into()
            }
        );
        for (json, what) in [
            (
                r#"{"status":"Failure","reason":"NonZeroExitCode"}"#,
                "details must be set",
            ),
            (
                r#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[]}}"#,
                "no ExitCode cause given",
            ),
            (
                r#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}"#,
                "invalid exit code value \"x\"",
            ),
            (r#"{"status":"Pending"}"#, "unknown error"),
            ("[]", "not a Status object"),
        ] {
            assert_eq!(
                status(json),
                ExitStatus::Failure {
                    message: format!("error stream protocol error: {what}")
                },
                "{json}"
            );
        }
        assert!(matches!(status("{"), ExitStatus::Failure { .. }));
        assert_eq!(
            decode(
                ErrorFormat::PlainText,
                b"command terminated with non-zero exit code"
            ),
            ExitStatus::Failure {
                message: "command terminated with non-zero exit code".into()
            }
        );
    }

    #[test]
    fn failure_written_to_end_a_session_reads_back() {
        let json = failure_status_json("session ended: \"recording failed\"");
        assert_eq!(
            json,
            br#"{"metadata":{},"status":"Failure","message":"session ended: \"recording failed\"","reason":"InternalError","code":500}"#
        );
        assert_eq!(
            decode(ErrorFormat::Status, &json),
            ExitStatus::Failure {
                message: "session ended: \"recording failed\"".into()
            }
        );
    }

    #[test]
    fn status_split_across_pieces_is_decoded_when_the_object_closes() {
        let json = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"42"}]}}"#;
        for split in 1..json.len() {
            let mut collector = ErrorStreamCollector::new(ErrorFormat::Status, 65536);
            assert_eq!(collector.feed(&json[..split]), Ok(None), "split at {split}");
            assert_eq!(
                collector.feed(&json[split..]),
                Ok(Some(ExitStatus::Code(42)))
            );
            assert_eq!(collector.feed(b"trailing"), Ok(None));
            assert_eq!(collector.end(), None, "decoded once");
        }
    }

    #[test]
    fn plain_text_waits_for_the_end() {
        let mut collector = ErrorStreamCollector::new(ErrorFormat::PlainText, 65536);
        assert_eq!(collector.feed(b"oh "), Ok(None));
        assert_eq!(collector.feed(b"no"), Ok(None));
        assert_eq!(
            collector.end(),
            Some(ExitStatus::Failure {
                message: "oh no".into()
            })
        );
        let mut empty = ErrorStreamCollector::new(ErrorFormat::PlainText, 65536);
        assert_eq!(
            empty.message_end(),
            None,
            "the empty first message is not the status"
        );
        assert_eq!(empty.end(), Some(ExitStatus::Success));
    }

    #[test]
    fn limit() {
        let mut collector = ErrorStreamCollector::new(ErrorFormat::Status, 16);
        assert_eq!(collector.feed(b"{\"status\":"), Ok(None));
        assert_eq!(
            collector.feed(b"\"Success\"}"),
            Err(StatusError::TooLarge { limit: 16 })
        );
        assert!(collector.is_done());
    }
}
