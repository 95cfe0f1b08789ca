//! The writer task of a recording: takes events from the buffer, encodes them, and streams the
//! lines into the upload, watching the recorder's answer as it goes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sessiontap::OwnedSessionEvent;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinError;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::encoder::CastEncoder;
use crate::error::UploadError;
use crate::feeder::Message;
use crate::outcome::{AbandonReason, Outcome};
use crate::transport::{Upload, UploadAborted, BODY_FRAMES};
use castfmt::Protocol;

/// Lines are gathered into body frames of about this size while events are waiting.
const BATCH_BYTES: usize = 64 * 1024;
/// Room beyond [`BATCH_BYTES`] for the line that crosses it: an output event of one read (up to
/// 32 KiB of a frame, a little more once escaped) usually fits.
const BATCH_SLACK: usize = 48 * 1024;

pub(crate) struct Writer {
    pub(crate) encoder: CastEncoder,
    pub(crate) upload: Upload,
    pub(crate) events: mpsc::UnboundedReceiver<Message>,
    pub(crate) abandon: watch::Receiver<Option<AbandonReason>>,
    pub(crate) outcome: watch::Sender<Option<Outcome>>,
    pub(crate) budget: Arc<Semaphore>,
    pub(crate) start: Instant,
    pub(crate) ack_window: Duration,
}

impl Writer {
    pub(crate) async fn run(mut self) -> Outcome {
        let mut sent = 0u64;
        let outcome = self.upload_all(&mut sent).await;
        // Nothing more is taken: wake any feeder waiting for space.
        self.budget.close();
        self.events.close();
        let addr = self.upload.addr;
        let protocol = self.upload.protocol;
        let acked = *self.upload.acked.borrow();
        match &outcome {
            Outcome::Uploaded { bytes } => {
                tracing::debug!(recorder = %addr, ?protocol, bytes, "session recording uploaded");
            }
            Outcome::Failed { reason } => {
                self.abort(reason.to_string());
                tracing::warn!(recorder = %addr, ?protocol, sent, acked, %reason, "session recording failed");
            }
            Outcome::Abandoned { reason } => {
                self.abort(reason.to_string());
                tracing::warn!(recorder = %addr, ?protocol, sent, acked, %reason, "session recording abandoned");
            }
        }
        self.outcome.send_replace(Some(outcome.clone()));
        outcome
    }

    /// Cuts the upload short so the recorder sees it incomplete, and stops watching its answer.
    fn abort(&mut self, reason: String) {
        let (placeholder, _) = http_body_util::channel::Channel::<Bytes, UploadAborted>::new(1);
        std::mem::replace(&mut self.upload.body, placeholder).abort(UploadAborted(reason));
        self.upload.monitor.abort();
    }

    async fn upload_all(&mut self, sent: &mut u64) -> Outcome {
        let mut out = Vec::new();
        self.encoder.start(&mut out);
        // Set when the session has ended: the recorder must confirm the upload by then.
        let mut finish_by: Option<Instant> = None;
        loop {
            if !out.is_empty() {
                let chunk = Bytes::from(std::mem::take(&mut out));
                let len = chunk.len() as u64;
                tokio::select! {
                    biased;
                    result = &mut self.upload.monitor => return answer_before_end(result),
                    reason = abandoned(&mut self.abandon) => return self.salvage(reason, Some(chunk), sent).await,
                    () = sleep_until_some(finish_by) => return failed(UploadError::FinishTimeout(self.ack_window)),
                    // A clone (a reference count): the chunk is salvaged when an abandon wins.
                    written = self.upload.body.send_data(chunk.clone()) => match written {
                        Ok(()) => *sent += len,
                        Err(_) => return self.connection_lost().await,
                    },
                }
                continue;
            }
            if let Some(deadline) = finish_by {
                return self.confirm(deadline, *sent).await;
            }
            let header_due = self.encoder.header_deadline().map(|d| self.start + d);
            tokio::select! {
                biased;
                result = &mut self.upload.monitor => return answer_before_end(result),
                reason = abandoned(&mut self.abandon) => return self.salvage(reason, None, sent).await,
                () = sleep_until_some(header_due) => {
                    self.encoder.deadline_passed(self.start.elapsed(), &mut out);
                }
                message = self.events.recv() => {
                    let Some(message) = message else {
                        // Every handle is gone without finishing.
                        return Outcome::Abandoned { reason: AbandonReason::Dropped };
                    };
                    // A batch starts with room for all of it, so filling it does not reallocate
                    // and copy as it grows; between batches (an idle session) nothing is held.
                    out.reserve(BATCH_BYTES + BATCH_SLACK);
                    let mut next = Some(message);
                    while let Some(message) = next.take() {
                        if let Some(at) = self.encode(message, &mut out) {
                            self.encoder.finish(at, &mut out);
                            finish_by = Some(Instant::now() + self.ack_window);
                            break;
                        }
                        if out.len() < BATCH_BYTES {
                            next = self.events.try_recv().ok();
                        }
                    }
                }
            }
        }
    }

    /// An abandoned recording still gets what was fed before the abandon: the events already
    /// taken (`pending`, and those queued) are sent, and over v2 the writer waits until the
    /// recorder acknowledged them, so cutting the upload right after does not discard them in
    /// flight. A fail-closed session forwards only what its recording took, so without this the
    /// recording of a session ended because its tap could not read a frame would miss output
    /// the client had already seen. Bounded by the ack window; a recording dropped without
    /// finishing (`Dropped`) is cut at once.
    async fn salvage(
        &mut self,
        reason: AbandonReason,
        pending: Option<Bytes>,
        sent: &mut u64,
    ) -> Outcome {
        if matches!(reason, AbandonReason::Dropped) {
            return Outcome::Abandoned { reason };
        }
        let mut out = Vec::new();
        while let Ok(message) = self.events.try_recv() {
            if self.encode(message, &mut out).is_some() {
                // The end of the session: not written, the recording stays incomplete.
                break;
            }
        }
        let deadline = Instant::now() + self.ack_window;
        let rest = (!out.is_empty()).then(|| Bytes::from(out));
        for chunk in pending.into_iter().chain(rest) {
            let len = chunk.len() as u64;
            match timeout_at(deadline, self.upload.body.send_data(chunk)).await {
                Ok(Ok(())) => *sent += len,
                _ => return Outcome::Abandoned { reason },
            }
        }
        let target = *sent;
        match self.upload.protocol {
            Protocol::V2 => {
                let acks = self.upload.acked.wait_for(|&acked| acked >= target);
                let _ = timeout_at(deadline, acks).await;
            }
            // No acks: wait instead until hyper has taken every frame from the body (it
            // discards empty ones, and writes and flushes what it took before it takes more):
            // the body's queue holds `BODY_FRAMES`, so once that many more went in, ours are out.
            _ => {
                for _ in 0..=BODY_FRAMES {
                    let barrier = self.upload.body.send_data(Bytes::new());
                    if !matches!(timeout_at(deadline, barrier).await, Ok(Ok(()))) {
                        break;
                    }
                }
            }
        }
        Outcome::Abandoned { reason }
    }

    /// Encodes one message; returns the end time when it is the end of the session.
    fn encode(&mut self, message: Message, out: &mut Vec<u8>) -> Option<Duration> {
        match message {
            Message::Finish { at } => Some(at),
            Message::Marker { at, label } => {
                self.encoder.marker(at, &label, out);
                None
            }
            Message::Event { at, event, _space } => {
                match event {
                    OwnedSessionEvent::Output { stream, bytes } => {
                        self.encoder.output(at, stream, &bytes, out)
                    }
                    OwnedSessionEvent::Input { bytes } => self.encoder.input(at, &bytes, out),
                    OwnedSessionEvent::Resize { cols, rows } => {
                        self.encoder.resize(at, cols, rows, out)
                    }
                    OwnedSessionEvent::Exit { status } => self.encoder.exit(at, &status, out),
                }
                // `_space` is released here: the event has left the buffer.
                None
            }
        }
    }

    /// Everything is written: ends the body and waits for the recorder's final answer.
    async fn confirm(&mut self, deadline: Instant, sent: u64) -> Outcome {
        // Dropping the sender ends the body cleanly (HTTP/2 END_STREAM; the last HTTP/1.1 chunk).
        let (placeholder, _) = http_body_util::channel::Channel::<Bytes, UploadAborted>::new(1);
        drop(std::mem::replace(&mut self.upload.body, placeholder));
        let answer = tokio::select! {
            biased;
            answer = timeout_at(deadline, &mut self.upload.monitor) => answer,
            reason = abandoned(&mut self.abandon) => return Outcome::Abandoned { reason },
        };
        match answer {
            Err(_) => failed(UploadError::FinishTimeout(self.ack_window)),
            Ok(Ok(Ok(()))) => Outcome::Uploaded { bytes: sent },
            Ok(Ok(Err(reason))) => failed(reason),
            Ok(Err(e)) => failed(monitor_failed(e)),
        }
    }

    /// The connection dropped the upload body: learn why from the recorder's side.
    async fn connection_lost(&mut self) -> Outcome {
        let deadline = Instant::now() + self.ack_window;
        match timeout_at(deadline, &mut self.upload.monitor).await {
            Ok(result) => answer_before_end(result),
            Err(_) => failed(UploadError::Connection(
                "the connection stopped taking the upload".into(),
            )),
        }
    }
}

fn failed(reason: UploadError) -> Outcome {
    Outcome::Failed { reason }
}

fn monitor_failed(e: JoinError) -> UploadError {
    UploadError::Connection(format!("watching the recorder's answer failed: {e}"))
}

/// The recorder's answer ended while the session was still being recorded.
fn answer_before_end(result: Result<Result<(), UploadError>, JoinError>) -> Outcome {
    failed(match result {
        Ok(Ok(())) => UploadError::EndedEarly,
        Ok(Err(reason)) => reason,
        Err(e) => monitor_failed(e),
    })
}

/// Resolves when a feeder or the handle abandons the recording.
async fn abandoned(abandon: &mut watch::Receiver<Option<AbandonReason>>) -> AbandonReason {
    match abandon.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone().unwrap_or(AbandonReason::Dropped),
        // Every handle is gone.
        Err(_) => AbandonReason::Dropped,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
