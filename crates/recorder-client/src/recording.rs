//! The handle the proxy records a session through: [`Recorder`] connects, [`Recording`] (and its
//! [`Feeder`]s) take session events without blocking the forwarding task, a writer task encodes and
//! uploads them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use castfmt::{CastHeader, Protocol};
use sessiontap::OwnedSessionEvent;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::RecorderConfig;
use crate::dial::{Dialer, TcpDialer};
use crate::encoder::{CastEncoder, EncoderOptions};
use crate::error::{AttemptFailure, ConnectError, FeedError, UploadError};
use crate::feeder::{Feeder, Message, Shared};
use crate::outcome::{AbandonReason, Outcome};
use crate::transport;
use crate::writer::Writer;

/// What is being recorded: the header (everything but the tty size, which the session supplies),
/// whether the session has a terminal and whether its input is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The header to write. Its `timestamp` should be the session start (Unix seconds).
    pub header: CastHeader,
    /// Whether the session has a tty (`tty=true` in the request): then the header waits for the
    /// terminal size, see [`TtyOptions`](crate::TtyOptions).
    pub tty: bool,
    /// Whether stdin is recorded as `i` events (for a tty session only what the terminal echoes,
    /// see [`EncoderOptions::record_input`]); `None`: as
    /// [`RecorderConfig::record_input`] says.
    pub record_input: Option<bool>,
}

impl Session {
    /// A session whose input is recorded as the [`RecorderConfig`] says.
    pub fn new(header: CastHeader, tty: bool) -> Self {
        Session {
            header,
            tty,
            record_input: None,
        }
    }

    /// The same session with its input recorded, or not, whatever the [`RecorderConfig`] says.
    pub fn with_record_input(mut self, record_input: bool) -> Self {
        self.record_input = Some(record_input);
        self
    }
}

/// Connects sessions to recorders. Build one at start-up and share it.
#[derive(Clone)]
pub struct Recorder {
    config: RecorderConfig,
    dialer: Arc<dyn Dialer>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder client that dials over TCP.
    pub fn new(config: RecorderConfig) -> Self {
        Recorder::with_dialer(config, TcpDialer)
    }

    /// A recorder client that opens connections with `dialer`.
    pub fn with_dialer(config: RecorderConfig, dialer: impl Dialer) -> Self {
        Recorder {
            config,
            dialer: Arc::new(dialer),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RecorderConfig {
        &self.config
    }

    /// The dialer, for uploads started elsewhere in the crate (port-forward captures).
    pub(crate) fn dialer(&self) -> Arc<dyn Dialer> {
        Arc::clone(&self.dialer)
    }

    /// Connects to the first recorder in `addrs` that accepts an upload and starts recording
    /// `session`. Call it before the session starts upstream, so a fail-closed session never runs
    /// unrecorded; the session's time starts when this returns.
    ///
    /// Must be called within a Tokio runtime: the upload runs in tasks of its own.
    pub async fn connect(
        &self,
        addrs: &[SocketAddr],
        session: Session,
    ) -> Result<Recording, ConnectError> {
        let (upload, failures) = transport::connect(&*self.dialer, addrs, &self.config).await?;
        let start = Instant::now();
        let addr = upload.addr;
        let protocol = upload.protocol;
        let capacity = self.config.buffer_bytes.clamp(1, MAX_BUFFER);
        let budget = Arc::new(Semaphore::new(capacity));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (abandon_tx, abandon_rx) = watch::channel(None);
        let (outcome_tx, outcome_rx) = watch::channel(None);
        let record_input = session.record_input.unwrap_or(self.config.record_input);
        // A `kubectl cp` to the pod sends its archive on stdin: the writer needs those bytes for
        // the listing even when input is not recorded (the encoder records none of them as text
        // then, archive or not).
        let reads_archive_on_stdin = session
            .header
            .file_copy
            .as_ref()
            .is_some_and(|copy| copy.direction == castfmt::FileCopyDirection::ToPod);
        let encoder = CastEncoder::new(
            session.header,
            EncoderOptions {
                tty: session.tty,
                record_input,
                tty_options: self.config.tty,
            },
        );
        let writer = Writer {
            encoder,
            upload,
            events: events_rx,
            abandon: abandon_rx,
            outcome: outcome_tx,
            budget: Arc::clone(&budget),
            start,
            ack_window: self.config.ack_window,
        };
        let writer = tokio::spawn(writer.run());
        Ok(Recording {
            feeder: Feeder {
                shared: Arc::new(Shared {
                    events: events_tx,
                    budget,
                    capacity,
                    start,
                    record_input: record_input || reads_archive_on_stdin,
                    abandon: abandon_tx,
                    outcome: outcome_rx,
                }),
            },
            writer: Some(writer),
            addr,
            protocol,
            failures,
        })
    }
}

/// The most bytes the buffer can hold (the semaphore counts permits in `u32`s per acquisition).
const MAX_BUFFER: usize = u32::MAX as usize;

/// A session being recorded. Feed it events (directly or through [`feeder`](Self::feeder)
/// clones), watch [`failed`](Self::failed), and call [`finish`](Self::finish) when the session
/// ends. Dropping it without `finish` abandons the upload.
#[derive(Debug)]
pub struct Recording {
    feeder: Feeder,
    writer: Option<JoinHandle<Outcome>>,
    addr: SocketAddr,
    protocol: Protocol,
    failures: Vec<AttemptFailure>,
}

impl Recording {
    /// The recorder the session is uploaded to.
    pub fn recorder_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The protocol of the upload.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Addresses tried before the one in use, and why each failed.
    pub fn failed_attempts(&self) -> &[AttemptFailure] {
        &self.failures
    }

    /// A feeder for this recording (for instance one per direction of the session).
    pub fn feeder(&self) -> Feeder {
        self.feeder.clone()
    }

    /// See [`Feeder::feed`].
    pub async fn feed(&self, event: impl Into<OwnedSessionEvent>) -> Result<(), FeedError> {
        self.feeder.feed(event).await
    }

    /// See [`Feeder::try_feed`].
    pub fn try_feed(&self, event: impl Into<OwnedSessionEvent>) -> Result<(), FeedError> {
        self.feeder.try_feed(event)
    }

    /// Resolves when the recording stops before [`finish`](Self::finish): with
    /// [`Outcome::Failed`] or [`Outcome::Abandoned`]. Never resolves for a recording that is
    /// uploaded. The future owns what it needs, so a session task can `select!` on it.
    pub fn failed(&self) -> impl Future<Output = Outcome> + Send + 'static {
        let mut outcome = self.feeder.shared.outcome.clone();
        async move {
            let ended = outcome
                .wait_for(|outcome| outcome.as_ref().is_some_and(|o| !o.is_uploaded()))
                .await
                .map(|outcome| outcome.clone());
            match ended {
                Ok(Some(outcome)) => outcome,
                // The writer is gone: report it unless it uploaded the recording.
                Ok(None) | Err(_) => match current(&outcome) {
                    Some(Outcome::Uploaded { .. }) => std::future::pending().await,
                    Some(outcome) => outcome,
                    None => Outcome::Failed {
                        reason: UploadError::Connection("the recording writer stopped".into()),
                    },
                },
            }
        }
    }

    /// Stops recording and cuts the upload short (the recorder keeps it, marked incomplete). For
    /// instance when a tap could not parse the session.
    pub fn abandon(&self, reason: impl Into<String>) {
        self.feeder
            .abandon_with(AbandonReason::Requested(reason.into()));
    }

    /// Adds a marker (`m` event) to the recording after the events fed so far: a note that is not
    /// the command's output, such as why the proxy ended the session. Unlike
    /// [`abandon`](Self::abandon) the recording goes on and can still be complete.
    pub fn mark(&self, label: impl Into<String>) {
        let at = self.feeder.shared.start.elapsed();
        // If the writer already stopped, nobody reads this; its outcome says why.
        let _ = self.feeder.shared.events.send(Message::Marker {
            at,
            label: label.into(),
        });
    }

    /// Ends the recording: writes what is buffered (and a tty header still waiting), ends the
    /// upload and waits for the recorder to confirm it (at most
    /// [`RecorderConfig::ack_window`] after the last byte is sent).
    pub async fn finish(mut self) -> Outcome {
        let at = self.feeder.shared.start.elapsed();
        // If the writer already stopped, nobody reads this; its outcome says why.
        let _ = self.feeder.shared.events.send(Message::Finish { at });
        let Some(writer) = self.writer.take() else {
            return Outcome::Failed {
                reason: UploadError::Connection("the recording was already finished".into()),
            };
        };
        match writer.await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed {
                reason: UploadError::Connection(format!("the recording writer failed: {e}")),
            },
        }
    }
}

fn current(outcome: &watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    outcome.borrow().clone()
}

impl Drop for Recording {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.feeder.abandon_with(AbandonReason::Dropped);
        }
    }
}
