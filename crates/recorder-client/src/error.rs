//! Errors: connecting to recorders (for a recording or an API event), feeding a recording, and an
//! upload failing mid-session.

use std::error::Error as _;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use castfmt::protocol::EVENT_PATH;
use http::StatusCode;

/// No recorder could be connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The list of recorder addresses was empty.
    #[error("no session recorder addresses to connect to")]
    NoAddresses,
    /// Every address failed; each failure is listed in the order tried.
    #[error("could not connect to any session recorder: {}", AttemptList(.0))]
    AllFailed(Vec<AttemptFailure>),
}

impl ConnectError {
    /// The failed attempts, in the order tried (empty for [`ConnectError::NoAddresses`]).
    pub fn attempts(&self) -> &[AttemptFailure] {
        match self {
            ConnectError::NoAddresses => &[],
            ConnectError::AllFailed(attempts) => attempts,
        }
    }
}

struct AttemptList<'a>(&'a [AttemptFailure]);

impl fmt::Display for AttemptList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{attempt}")?;
        }
        Ok(())
    }
}

/// One recorder address that could not be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("recorder {addr}: {error}")]
pub struct AttemptFailure {
    /// The address tried.
    pub addr: SocketAddr,
    /// What went wrong.
    #[source]
    pub error: AttemptError,
}

/// Why one recorder address could not be used: for a recording ([`ConnectError`]) or for an API
/// event (the reasons listed in an [`EventSendError`](crate::EventSendError)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// The connection could not be opened (refused, unreachable, ...).
    #[error("dial failed: {0}")]
    Dial(#[source] io::Error),
    /// The connection did not open within the per-dial limit.
    #[error("dial timed out after {0:?}")]
    DialTimeout(Duration),
    /// The request could not be built (an address that makes no valid URI).
    #[error("invalid request: {0}")]
    Request(#[source] http::Error),
    /// HTTP failed on an open connection.
    #[error("HTTP error: {0}")]
    Http(#[source] hyper::Error),
    /// The recorder refused the upload with this status.
    #[error("recorder answered {0}")]
    Status(StatusCode),
    /// A v1 recorder answered before asking for the body with `100 Continue`.
    #[error("recorder answered {0} before 100 Continue")]
    NoContinue(StatusCode),
    /// The recorder answered the API event probe (`HEAD /v2/event`) with neither 200 nor 404.
    #[error("HEAD {EVENT_PATH} answered {0}")]
    ProbeStatus(StatusCode),
    /// The recorder refused an API event (`POST /v2/event`).
    #[error("POST {EVENT_PATH} answered {status}{}", excerpt(.answer))]
    PostStatus {
        /// The status other than 200.
        status: StatusCode,
        /// The start of the answer's body (the recorder's reason), possibly empty.
        answer: String,
    },
    /// An API event sent in a batch (`POST /v2/events`) is not stored: the recorder refused it,
    /// or the batch failed (the reason says which and why).
    #[error("{0}")]
    EventBatch(String),
    /// The limit on one recorder (for an API event: dial, probe and `POST`) ran out.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// The limit on trying all addresses ran out during this attempt.
    #[error("gave up: all recorders must answer within {0:?}")]
    Timeout(Duration),
    /// The limit on trying all addresses ran out before this address was tried.
    #[error("not tried: all recorders must answer within {0:?}")]
    NotTried(Duration),
}

impl AttemptError {
    /// The error with its causes, for people: hyper's own text is often only its kind
    /// ("error trying to connect"), the reason is in its source.
    pub(crate) fn reason(&self) -> String {
        let mut reason = self.to_string();
        let mut source = self.source().and_then(|e| e.source());
        while let Some(error) = source {
            reason.push_str(": ");
            reason.push_str(&error.to_string());
            source = error.source();
        }
        reason
    }
}

fn excerpt(answer: &str) -> String {
    if answer.is_empty() {
        String::new()
    } else {
        format!(": {answer}")
    }
}

/// A session event could not be added to the recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The recording has stopped (failed, abandoned or finished); nothing more is recorded.
    #[error("the recording has stopped")]
    Stopped,
    /// [`try_feed`](crate::Feeder::try_feed) found the buffer full: the recorder fell behind by
    /// more than the buffer, so the recording was abandoned.
    #[error("the recorder fell behind by more than {limit_bytes} bytes; recording abandoned")]
    Lagging {
        /// The buffer size ([`RecorderConfig::buffer_bytes`](crate::RecorderConfig::buffer_bytes)).
        limit_bytes: usize,
    },
}

/// Why an upload failed after it started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The recorder sent `{"error": "..."}`.
    #[error("recorder reported an error: {0}")]
    Recorder(String),
    /// No ack arrived within the ack window (v2).
    #[error("no ack from the recorder in {0:?}")]
    NoAck(Duration),
    /// The recorder's final answer did not arrive within the ack window after the recording ended.
    #[error("the recorder did not confirm the upload within {0:?}")]
    FinishTimeout(Duration),
    /// The recorder ended the upload before the recording ended.
    #[error("the recorder ended the upload early")]
    EndedEarly,
    /// The recorder answered with a status other than 200.
    #[error("recorder answered {0}")]
    Status(StatusCode),
    /// The recorder's response stream could not be read as NDJSON ack frames.
    #[error("malformed frame from the recorder: {0}")]
    BadFrame(String),
    /// The connection failed.
    #[error("connection to the recorder failed: {0}")]
    Connection(String),
}
