//! How a recording ended.

use std::fmt;

use crate::error::UploadError;

/// How a recording ended, as [`Recording::finish`](crate::Recording::finish) reports it (and
/// [`Recording::failed`](crate::Recording::failed) when it ended early).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The whole recording reached the recorder, which confirmed it (v2: its response ended without
    /// an error; v1: it answered 200).
    Uploaded {
        /// Bytes of asciicast sent (header and event lines).
        bytes: u64,
    },
    /// The upload failed; the recorder may keep what it received, marked incomplete.
    Failed {
        /// Why.
        reason: UploadError,
    },
    /// The client stopped recording and cut the upload short, so the recorder keeps what it
    /// received, marked incomplete.
    Abandoned {
        /// Why.
        reason: AbandonReason,
    },
}

impl Outcome {
    /// Whether the recording was uploaded whole.
    pub fn is_uploaded(&self) -> bool {
        matches!(self, Outcome::Uploaded { .. })
    }

    /// How the recorder keeps the recording after this: complete when it was uploaded whole,
    /// otherwise incomplete with what arrived (the recorder's side of the same vocabulary).
    pub fn stored_as(&self) -> castfmt::Outcome {
        match self {
            Outcome::Uploaded { .. } => castfmt::Outcome::Complete,
            Outcome::Failed { .. } | Outcome::Abandoned { .. } => castfmt::Outcome::Incomplete,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Uploaded { bytes } => write!(f, "uploaded {bytes} bytes"),
            Outcome::Failed { reason } => write!(f, "failed: {reason}"),
            Outcome::Abandoned { reason } => write!(f, "abandoned: {reason}"),
        }
    }
}

/// Why the client abandoned a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbandonReason {
    /// A fail-open session's recording fell behind by more than the buffer.
    #[error("the recorder fell behind by more than {limit_bytes} bytes")]
    Lagging {
        /// The buffer size ([`RecorderConfig::buffer_bytes`](crate::RecorderConfig::buffer_bytes)).
        limit_bytes: usize,
    },
    /// The proxy asked ([`Recording::abandon`](crate::Recording::abandon)), for instance because a
    /// tap could not parse the session.
    #[error("{0}")]
    Requested(String),
    /// The [`Recording`](crate::Recording) was dropped without [`finish`](crate::Recording::finish).
    #[error("the recording handle was dropped before the session ended")]
    Dropped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_onto_the_recorders_outcome() {
        assert_eq!(
            Outcome::Uploaded { bytes: 1 }.stored_as(),
            castfmt::Outcome::Complete
        );
        assert_eq!(
            Outcome::Abandoned {
                reason: AbandonReason::Dropped
            }
            .stored_as(),
            castfmt::Outcome::Incomplete
        );
        assert_eq!(
            Outcome::Failed {
                reason: UploadError::EndedEarly
            }
            .stored_as(),
            castfmt::Outcome::Incomplete
        );
    }
}
