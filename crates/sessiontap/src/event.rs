//! What a tap reports: session events, borrowed and owned.

/// Which of the container's output streams a chunk of output belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Standard output (also the only output stream of a tty session, where the terminal merges
    /// stderr into it).
    Stdout,
    /// Standard error (only in sessions without a tty).
    Stderr,
}

/// Which byte stream of the session an event was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (kubectl) to the server: stdin and resizes.
    ClientToServer,
    /// From the server (kubelet, through the API server) to the client: output and the exit status.
    ServerToClient,
}

/// How the remote command ended, as the server reported it on the error stream (SPDY) or the error
/// channel (WebSocket).
///
/// Decoded the way client-go's `tools/remotecommand` decodes it (`errorDecoderV4` for the
/// `metav1.Status` JSON of v4 and later, `errorDecoder` for the plain text of earlier versions).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The command exited with status 0: a `Status` with `"status": "Success"`, or (every version)
    /// an error stream that ended without any bytes.
    Success,
    /// The command exited with a non-zero status: a `Failure` with reason `NonZeroExitCode` whose
    /// `details.causes[]` holds a cause with reason `ExitCode` and the code as its message.
    Code(i32),
    /// Anything else: another `Failure` (its message), a malformed or unknown status, or the plain
    /// text of a v1-v3 error stream.
    Failure {
        /// The server's message (or a description of what was wrong with the status).
        message: String,
    },
}

/// One thing that happened in a session, borrowing from the bytes that were fed to the tap (or from a
/// buffer inside it) so that output costs no copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent<'a> {
    /// Bytes the container wrote. One write may be reported as several events; concatenate them.
    Output {
        /// The stream the bytes were written to.
        stream: OutputStream,
        /// The bytes, never empty.
        bytes: &'a [u8],
    },
    /// Bytes the client sent to the container's stdin (never empty).
    Input {
        /// The bytes, never empty.
        bytes: &'a [u8],
    },
    /// The client's terminal size changed (tty sessions). `0x0` means the client does not know its
    /// size (kubectl under a terminal without a size); it is reported as is and left to the recorder.
    Resize {
        /// Columns (`Width`).
        cols: u16,
        /// Rows (`Height`).
        rows: u16,
    },
    /// The session's exit status; reported at most once per session.
    Exit {
        /// How the command ended.
        status: &'a ExitStatus,
    },
}

impl SessionEvent<'_> {
    /// The byte stream the event was read from.
    pub fn direction(&self) -> Direction {
        match self {
            SessionEvent::Output { .. } | SessionEvent::Exit { .. } => Direction::ServerToClient,
            SessionEvent::Input { .. } | SessionEvent::Resize { .. } => Direction::ClientToServer,
        }
    }

    /// Copies the event into an [`OwnedSessionEvent`].
    pub fn to_owned_event(&self) -> OwnedSessionEvent {
        match *self {
            SessionEvent::Output { stream, bytes } => OwnedSessionEvent::Output {
                stream,
                bytes: bytes.to_vec(),
            },
            SessionEvent::Input { bytes } => OwnedSessionEvent::Input {
                bytes: bytes.to_vec(),
            },
            SessionEvent::Resize { cols, rows } => OwnedSessionEvent::Resize { cols, rows },
            SessionEvent::Exit { status } => OwnedSessionEvent::Exit {
                status: status.clone(),
            },
        }
    }
}

/// A [`SessionEvent`] that owns its bytes: for queues, tests and the `script` helpers (feature `script`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedSessionEvent {
    /// See [`SessionEvent::Output`].
    Output {
        /// The stream the bytes were written to.
        stream: OutputStream,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// See [`SessionEvent::Input`].
    Input {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// See [`SessionEvent::Resize`].
    Resize {
        /// Columns (`Width`).
        cols: u16,
        /// Rows (`Height`).
        rows: u16,
    },
    /// See [`SessionEvent::Exit`].
    Exit {
        /// How the command ended.
        status: ExitStatus,
    },
}

impl OwnedSessionEvent {
    /// The byte stream the event was read from.
    pub fn direction(&self) -> Direction {
        match self {
            OwnedSessionEvent::Output { .. } | OwnedSessionEvent::Exit { .. } => {
                Direction::ServerToClient
            }
            OwnedSessionEvent::Input { .. } | OwnedSessionEvent::Resize { .. } => {
                Direction::ClientToServer
            }
        }
    }
}

impl From<SessionEvent<'_>> for OwnedSessionEvent {
    fn from(event: SessionEvent<'_>) -> Self {
        event.to_owned_event()
    }
}

/// Merges adjacent output events of the same stream and adjacent input events, and drops empty
/// ones, so that event lists that differ only in how the bytes were chunked compare equal.
///
/// ```
/// use sessiontap::{coalesce, OutputStream, OwnedSessionEvent};
///
/// let out = |b: &[u8]| OwnedSessionEvent::Output { stream: OutputStream::Stdout, bytes: b.to_vec() };
/// assert_eq!(coalesce([out(b"he"), out(b""), out(b"llo")]), [out(b"hello")]);
/// ```
pub fn coalesce(events: impl IntoIterator<Item = OwnedSessionEvent>) -> Vec<OwnedSessionEvent> {
    let mut merged: Vec<OwnedSessionEvent> = Vec::new();
    for event in events {
        match (merged.last_mut(), event) {
            (_, OwnedSessionEvent::Output { bytes, .. } | OwnedSessionEvent::Input { bytes })
                if bytes.is_empty() => {}
            (
                Some(OwnedSessionEvent::Output {
                    stream: last,
                    bytes,
                }),
                OwnedSessionEvent::Output {
                    stream,
                    bytes: more,
                },
            ) if *last == stream => bytes.extend_from_slice(&more),
            (
                Some(OwnedSessionEvent::Input { bytes }),
                OwnedSessionEvent::Input { bytes: more },
            ) => {
                bytes.extend_from_slice(&more);
            }
            (_, event) => merged.push(event),
        }
    }
    merged
}
