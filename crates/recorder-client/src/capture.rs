//! Port-forward captures: the bytes of one TCP connection through a `kubectl port-forward`, both
//! ways, uploaded as castfmt's `kap-port-forward/1` JSON lines over the same recorder protocols as
//! a session recording (v2 with acks, v1 fallback, address failover), the upload marked with
//! `Content-Type: application/x-kap-port-forward` so the recorder stores it as a capture.
//!
//! [`Recorder::start_capture`] returns at once: a writer task connects and uploads while the
//! proxy feeds the connection's bytes through a bounded buffer ([`CaptureBudget`], which the
//! captures of one session share). A fail-closed session awaits
//! [`CaptureRecording::connected`] before forwarding the connection's bytes, feeds with
//! [`CaptureRecording::feed`] (waits for room) and ends when [`CaptureRecording::failed`]
//! resolves; a fail-open one feeds with [`CaptureRecording::try_feed`], which drops the capture
//! (cut short, so the recorder keeps it marked incomplete) when the recorder falls behind.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use castfmt::{
    CaptureDirection, InvalidCaptureHeader, PortForwardCapture, PortForwardCaptureHeader, Protocol,
    PORT_FORWARD_CAPTURE_CONTENT_TYPE,
};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::config::RecorderConfig;
use crate::dial::Dialer;
use crate::error::{FeedError, UploadError};
use crate::outcome::{AbandonReason, Outcome};
use crate::recording::Recorder;
use crate::transport::{self, Upload, UploadAborted};

/// Lines are gathered into body frames of about this size while data is waiting.
const BATCH_BYTES: usize = 64 * 1024;

/// The most bytes a budget can hold (the semaphore counts permits in `u32`s per acquisition).
const MAX_BUDGET: usize = u32::MAX as usize;

/// The bytes that may wait between the proxy and the uploads of a group of captures (one
/// port-forward session's), at most. Cheap to clone; clones share the bound.
#[derive(Debug, Clone)]
pub struct CaptureBudget {
    space: Arc<Semaphore>,
    capacity: usize,
}

impl CaptureBudget {
    /// A budget of `bytes` (at least 1).
    pub fn new(bytes: usize) -> Self {
        let capacity = bytes.clamp(1, MAX_BUDGET);
        CaptureBudget {
            space: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Its size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes free now.
    pub fn available(&self) -> usize {
        self.space.available_permits()
    }

    fn permits(&self, len: usize) -> u32 {
        // A piece bigger than the whole budget takes all of it.
        u32::try_from(len.clamp(1, self.capacity)).unwrap_or(u32::MAX)
    }
}

enum Message {
    Data {
        at: Duration,
        direction: CaptureDirection,
        bytes: Vec<u8>,
        _space: OwnedSemaphorePermit,
    },
    Note {
        at: Duration,
        text: String,
    },
    Finish,
}

/// Where the upload is: the recorder and protocol once connected, or why it never was.
type Connected = Option<Result<(SocketAddr, Protocol), String>>;

struct Shared {
    messages: mpsc::UnboundedSender<Message>,
    budget: CaptureBudget,
    start: Instant,
    abandon: watch::Sender<Option<AbandonReason>>,
    outcome: watch::Receiver<Option<Outcome>>,
    connected: watch::Receiver<Connected>,
}

impl Recorder {
    /// Starts capturing one port-forward connection to the first recorder in `addrs` that takes
    /// the upload: returns at once, connecting in the background (see
    /// [`CaptureRecording::connected`]); bytes fed meanwhile wait in `budget`. The capture's time
    /// starts now. Must be called within a Tokio runtime.
    pub fn start_capture(
        &self,
        addrs: &[SocketAddr],
        header: &PortForwardCaptureHeader,
        budget: &CaptureBudget,
    ) -> Result<CaptureRecording, InvalidCaptureHeader> {
        let header = header.try_to_json_line()?;
        let start = Instant::now();
        let (messages_tx, messages) = mpsc::unbounded_channel();
        let (abandon_tx, abandon) = watch::channel(None);
        let (outcome_tx, outcome) = watch::channel(None);
        let (connected_tx, connected) = watch::channel(None);
        let writer = CaptureWriter {
            dialer: self.dialer(),
            config: self.config().clone(),
            addrs: addrs.to_vec(),
            header,
            messages,
            abandon,
            outcome: outcome_tx,
            connected: connected_tx,
        };
        let writer = tokio::spawn(writer.run());
        Ok(CaptureRecording {
            shared: Arc::new(Shared {
                messages: messages_tx,
                budget: budget.clone(),
                start,
                abandon: abandon_tx,
                outcome,
                connected,
            }),
            writer: Some(writer),
        })
    }
}

/// One connection being captured. Feed it the connection's bytes in the order they were
/// forwarded, and [`finish`](Self::finish) it when the connection ends; dropping it without
/// `finish` cuts the upload short (the recorder keeps it, marked incomplete).
pub struct CaptureRecording {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<Outcome>>,
}

impl std::fmt::Debug for CaptureRecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureRecording")
            .field("budget", &self.shared.budget)
            .field("connected", &*self.shared.connected.borrow())
            .finish_non_exhaustive()
    }
}

impl CaptureRecording {
    /// Resolves once the upload has started, with the recorder and the protocol; `Err` with why
    /// when no recorder took it (or the capture stopped first).
    pub async fn connected(&self) -> Result<(SocketAddr, Protocol), String> {
        let mut connected = self.shared.connected.clone();
        let answer = connected
            .wait_for(Option::is_some)
            .await
            .map(|answer| answer.clone());
        match answer {
            Ok(Some(answer)) => answer,
            _ => Err("the capture writer stopped".into()),
        }
    }

    /// Adds bytes forwarded in `direction`, waiting while the budget is full (fail-closed).
    /// Fails once the capture has stopped: a fail-closed session should then end.
    pub async fn feed(&self, direction: CaptureDirection, bytes: Vec<u8>) -> Result<(), FeedError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.is_stopped() {
            return Err(FeedError::Stopped);
        }
        let at = self.shared.start.elapsed();
        let permits = self.shared.budget.permits(bytes.len());
        let space = tokio::select! {
            space = Arc::clone(&self.shared.budget.space).acquire_many_owned(permits) => {
                space.map_err(|_| FeedError::Stopped)?
            }
            () = self.stopped() => return Err(FeedError::Stopped),
        };
        self.send(at, direction, bytes, space)
    }

    /// Adds bytes without ever waiting (fail-open). When the budget has no room the recorder
    /// has fallen behind: the capture is abandoned (kept incomplete) and this returns
    /// [`FeedError::Lagging`]; afterwards [`FeedError::Stopped`].
    pub fn try_feed(&self, direction: CaptureDirection, bytes: Vec<u8>) -> Result<(), FeedError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.is_stopped() {
            return Err(FeedError::Stopped);
        }
        let at = self.shared.start.elapsed();
        let permits = self.shared.budget.permits(bytes.len());
        match Arc::clone(&self.shared.budget.space).try_acquire_many_owned(permits) {
            Ok(space) => self.send(at, direction, bytes, space),
            Err(TryAcquireError::Closed) => Err(FeedError::Stopped),
            Err(TryAcquireError::NoPermits) => {
                let limit_bytes = self.shared.budget.capacity;
                self.abandon_with(AbandonReason::Lagging { limit_bytes });
                Err(FeedError::Lagging { limit_bytes })
            }
        }
    }

    /// Adds a note (an `m` event): text that is not connection data.
    pub fn note(&self, text: impl Into<String>) {
        let at = self.shared.start.elapsed();
        let _ = self.shared.messages.send(Message::Note {
            at,
            text: text.into(),
        });
    }

    /// Whether the capture has stopped (failed or abandoned).
    pub fn is_stopped(&self) -> bool {
        self.shared.abandon.borrow().is_some() || self.shared.outcome.borrow().is_some()
    }

    /// Stops capturing and cuts the upload short (the recorder keeps it, marked incomplete).
    pub fn abandon(&self, reason: impl Into<String>) {
        self.abandon_with(AbandonReason::Requested(reason.into()));
    }

    /// Resolves when the capture stops before [`finish`](Self::finish): with
    /// [`Outcome::Failed`] or [`Outcome::Abandoned`]. Never resolves for a capture that is
    /// uploaded. The future owns what it needs.
    pub fn failed(&self) -> impl Future<Output = Outcome> + Send + 'static {
        let mut outcome = self.shared.outcome.clone();
        async move {
            let ended = outcome
                .wait_for(|outcome| outcome.as_ref().is_some_and(|o| !o.is_uploaded()))
                .await
                .map(|outcome| outcome.clone());
            match ended {
                Ok(Some(outcome)) => outcome,
                Ok(None) | Err(_) => {
                    let last = outcome.borrow().clone();
                    match last {
                        Some(Outcome::Uploaded { .. }) => std::future::pending().await,
                        Some(outcome) => outcome,
                        None => Outcome::Failed {
                            reason: UploadError::Connection("the capture writer stopped".into()),
                        },
                    }
                }
            }
        }
    }

    /// Ends the capture: writes what is buffered, ends the upload and waits for the recorder to
    /// confirm it (at most [`RecorderConfig::ack_window`] after the last byte is sent).
    pub async fn finish(mut self) -> Outcome {
        let _ = self.shared.messages.send(Message::Finish);
        let Some(writer) = self.writer.take() else {
            return failed(UploadError::Connection(
                "the capture was already finished".into(),
            ));
        };
        match writer.await {
            Ok(outcome) => outcome,
            Err(e) => failed(UploadError::Connection(format!(
                "the capture writer failed: {e}"
            ))),
        }
    }

    fn send(
        &self,
        at: Duration,
        direction: CaptureDirection,
        bytes: Vec<u8>,
        space: OwnedSemaphorePermit,
    ) -> Result<(), FeedError> {
        self.shared
            .messages
            .send(Message::Data {
                at,
                direction,
                bytes,
                _space: space,
            })
            .map_err(|_| FeedError::Stopped)
    }

    fn abandon_with(&self, reason: AbandonReason) {
        self.shared.abandon.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    /// Resolves once the capture has stopped.
    async fn stopped(&self) {
        let mut abandon = self.shared.abandon.subscribe();
        let mut outcome = self.shared.outcome.clone();
        tokio::select! {
            _ = abandon.wait_for(Option::is_some) => {}
            _ = outcome.wait_for(Option::is_some) => {}
        }
    }
}

impl Drop for CaptureRecording {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.abandon_with(AbandonReason::Dropped);
        }
    }
}

/// The task that connects, encodes and uploads one capture.
struct CaptureWriter {
    dialer: Arc<dyn Dialer>,
    config: RecorderConfig,
    addrs: Vec<SocketAddr>,
    header: Vec<u8>,
    messages: mpsc::UnboundedReceiver<Message>,
    abandon: watch::Receiver<Option<AbandonReason>>,
    outcome: watch::Sender<Option<Outcome>>,
    connected: watch::Sender<Connected>,
}

impl CaptureWriter {
    async fn run(mut self) -> Outcome {
        let connect = transport::connect_as(
            &*self.dialer,
            &self.addrs,
            &self.config,
            Some(PORT_FORWARD_CAPTURE_CONTENT_TYPE),
        );
        let connected = tokio::select! {
            biased;
            reason = abandoned(&mut self.abandon) => Err(Outcome::Abandoned { reason }),
            result = connect => result.map_err(|error| failed(UploadError::Connection(error.to_string()))),
        };
        let mut upload = match connected {
            Ok((upload, _)) => upload,
            Err(outcome) => {
                self.connected.send_replace(Some(Err(outcome.to_string())));
                return self.end(outcome);
            }
        };
        self.connected
            .send_replace(Some(Ok((upload.addr, upload.protocol))));
        let mut sent = 0u64;
        let outcome = self.upload_all(&mut upload, &mut sent).await;
        let (addr, protocol) = (upload.addr, upload.protocol);
        match &outcome {
            Outcome::Uploaded { bytes } => {
                tracing::debug!(recorder = %addr, ?protocol, bytes, "port-forward capture uploaded");
            }
            Outcome::Failed { reason } => {
                abort(&mut upload, reason.to_string());
                tracing::warn!(recorder = %addr, ?protocol, sent, %reason, "port-forward capture failed");
            }
            Outcome::Abandoned { reason } => {
                abort(&mut upload, reason.to_string());
                tracing::warn!(recorder = %addr, ?protocol, sent, %reason, "port-forward capture abandoned");
            }
        }
        self.end(outcome)
    }

    fn end(mut self, outcome: Outcome) -> Outcome {
        // Nothing more is taken; what waits is dropped, and its budget freed.
        self.messages.close();
        while self.messages.try_recv().is_ok() {}
        self.outcome.send_replace(Some(outcome.clone()));
        outcome
    }

    async fn upload_all(&mut self, upload: &mut Upload, sent: &mut u64) -> Outcome {
        let mut out = std::mem::take(&mut self.header);
        let mut finish_by: Option<Instant> = None;
        loop {
            if !out.is_empty() {
                let chunk = Bytes::from(std::mem::take(&mut out));
                let len = chunk.len() as u64;
                tokio::select! {
                    biased;
                    result = &mut upload.monitor => return answer_before_end(result),
                    reason = abandoned(&mut self.abandon) => return Outcome::Abandoned { reason },
                    () = sleep_until_some(finish_by) => return failed(UploadError::FinishTimeout(self.config.ack_window)),
                    written = upload.body.send_data(chunk) => match written {
                        Ok(()) => *sent += len,
                        Err(_) => return connection_lost(upload, self.config.ack_window).await,
                    },
                }
                continue;
            }
            if let Some(deadline) = finish_by {
                return self.confirm(upload, deadline, *sent).await;
            }
            tokio::select! {
                biased;
                result = &mut upload.monitor => return answer_before_end(result),
                reason = abandoned(&mut self.abandon) => return Outcome::Abandoned { reason },
                message = self.messages.recv() => {
                    let Some(message) = message else {
                        return Outcome::Abandoned { reason: AbandonReason::Dropped };
                    };
                    let mut next = Some(message);
                    while let Some(message) = next.take() {
                        match message {
                            Message::Finish => {
                                finish_by = Some(Instant::now() + self.config.ack_window);
                                break;
                            }
                            Message::Note { at, text } => PortForwardCapture::write_note(&mut out, at, &text),
                            Message::Data { at, direction, bytes, _space } => {
                                PortForwardCapture::write_event(&mut out, at, direction, &bytes);
                                // `_space` is released here: the bytes have left the buffer.
                            }
                        }
                        if out.len() < BATCH_BYTES {
                            next = self.messages.try_recv().ok();
                        }
                    }
                }
            }
        }
    }

    /// Everything is written: ends the body and waits for the recorder's final answer.
    async fn confirm(&mut self, upload: &mut Upload, deadline: Instant, sent: u64) -> Outcome {
        let (placeholder, _) = http_body_util::channel::Channel::<Bytes, UploadAborted>::new(1);
        drop(std::mem::replace(&mut upload.body, placeholder));
        let answer = tokio::select! {
            biased;
            answer = timeout_at(deadline, &mut upload.monitor) => answer,
            reason = abandoned(&mut self.abandon) => return Outcome::Abandoned { reason },
        };
        match answer {
            Err(_) => failed(UploadError::FinishTimeout(self.config.ack_window)),
            Ok(Ok(Ok(()))) => Outcome::Uploaded { bytes: sent },
            Ok(Ok(Err(reason))) => failed(reason),
            Ok(Err(e)) => failed(monitor_failed(e)),
        }
    }
}

/// Cuts the upload short so the recorder sees it incomplete, and stops watching its answer.
fn abort(upload: &mut Upload, reason: String) {
    let (placeholder, _) = http_body_util::channel::Channel::<Bytes, UploadAborted>::new(1);
    std::mem::replace(&mut upload.body, placeholder).abort(UploadAborted(reason));
    upload.monitor.abort();
}

/// The connection dropped the upload body: learn why from the recorder's side.
async fn connection_lost(upload: &mut Upload, window: Duration) -> Outcome {
    match timeout_at(Instant::now() + window, &mut upload.monitor).await {
        Ok(result) => answer_before_end(result),
        Err(_) => failed(UploadError::Connection(
            "the connection stopped taking the upload".into(),
        )),
    }
}

fn failed(reason: UploadError) -> Outcome {
    Outcome::Failed { reason }
}

fn monitor_failed(e: JoinError) -> UploadError {
    UploadError::Connection(format!("watching the recorder's answer failed: {e}"))
}

fn answer_before_end(result: Result<Result<(), UploadError>, JoinError>) -> Outcome {
    failed(match result {
        Ok(Ok(())) => UploadError::EndedEarly,
        Ok(Err(reason)) => reason,
        Err(e) => monitor_failed(e),
    })
}

async fn abandoned(abandon: &mut watch::Receiver<Option<AbandonReason>>) -> AbandonReason {
    match abandon.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone().unwrap_or(AbandonReason::Dropped),
        Err(_) => AbandonReason::Dropped,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
