//! Moving one recording upload from the request body to the store.
//!
//! The upload runs in a task of its own, apart from the connection that carries it: when a
//! connection is dropped (client gone, or shutdown cutting it) the task still sees the body end
//! with an error and stores what arrived as incomplete.

use std::sync::Arc;

use axum::body::Body;
use castfmt::Outcome;
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::App;
use crate::store::{RecordingEnd, RecordingWriter};

/// How long an upload may pause before what it sent is handed to the file.
const FLUSH_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// Received bytes are published for the ack stream at most this often while they keep coming...
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// ...or once this many more have arrived; and whenever the upload pauses, and at its end.
const PUBLISH_BYTES: u64 = 1 << 20;

/// The count of received bytes, published to the ack stream in steps: an ack per body frame
/// would cost a frame to the client, and a wake-up on both sides, for every 16-256 KiB.
struct Received<'a> {
    progress: &'a watch::Sender<Progress>,
    total: u64,
    published: u64,
    published_at: tokio::time::Instant,
}

impl<'a> Received<'a> {
    fn new(progress: &'a watch::Sender<Progress>) -> Self {
        Self {
            progress,
            total: 0,
            published: 0,
            published_at: tokio::time::Instant::now(),
        }
    }

    fn add(&mut self, len: u64) {
        self.total += len;
        if self.total - self.published >= PUBLISH_BYTES
            || self.published_at.elapsed() >= PUBLISH_EVERY
        {
            self.publish();
        }
    }

    fn publish(&mut self) {
        if self.total > self.published {
            let total = self.total;
            self.progress.send_modify(|p| p.received = total);
            self.published = total;
            self.published_at = tokio::time::Instant::now();
        }
    }
}

/// How an upload ends when the recorder shuts down under it.
fn shut_down() -> RecordingEnd {
    RecordingEnd::Incomplete("the recorder shut down during the upload".to_owned())
}

/// Progress of an upload, watched by the `/v2/record` ack stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Bytes received and handed to the store so far.
    pub(crate) received: u64,
    /// Set once, when the upload has ended and is stored: `Ok` when complete, else what went
    /// wrong (sent to the client as `{"error": ...}`).
    pub(crate) end: Option<Result<(), String>>,
}

/// Reads `body` into `writer` until it ends, is cut off, fails to store, grows too large or the
/// server cuts it. Returns (and publishes in `progress`) how it ended.
pub(crate) async fn run(
    app: Arc<App>,
    mut body: Body,
    mut writer: RecordingWriter,
    progress: watch::Sender<Progress>,
    permit: OwnedSemaphorePermit,
) -> Result<(), String> {
    let id = writer.id().to_owned();
    let mut cut = app.cut.clone();
    let mut received = Received::new(&progress);
    let end = loop {
        // Bytes are buffered while they keep coming; when the client pauses for
        // [`FLUSH_AFTER`] they go to the file, so a live cast is readable and an idle session's
        // data is not held only in memory. (Flushing at every momentary pause would hand each
        // small frame of a fast stream to the blocking pool on its own.)
        let frame = match body.frame().now_or_never() {
            Some(frame) => frame,
            None => {
                let paused = tokio::select! {
                    biased;
                    _ = cut.wait_for(|cut| *cut) => None,
                    frame = body.frame() => Some(Some(frame)),
                    () = tokio::time::sleep(FLUSH_AFTER) => Some(None),
                };
                match paused {
                    None => break shut_down(),
                    Some(Some(frame)) => frame,
                    Some(None) => {
                        received.publish();
                        if let Err(error) = writer.flush().await {
                            break RecordingEnd::Incomplete(format!("storage error: {error}"));
                        }
                        tokio::select! {
                            biased;
                            _ = cut.wait_for(|cut| *cut) => break shut_down(),
                            frame = body.frame() => frame,
                        }
                    }
                }
            }
        };
        let data = match frame {
            None => break RecordingEnd::Complete,
            Some(Err(error)) => {
                break RecordingEnd::Incomplete(format!("upload cut off: {}", error_chain(&error)));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
        };
        if let Some(max) = app.max_recording_bytes {
            if writer.bytes() + data.len() as u64 > max {
                break RecordingEnd::Incomplete(format!("recording larger than {max} bytes"));
            }
        }
        let len = data.len() as u64;
        if let Err(error) = writer.write_bytes(data).await {
            break RecordingEnd::Incomplete(format!("storage error: {error}"));
        }
        received.add(len);
    };
    received.publish();
    // Stop reading before the final fsync, so a client is not kept sending into a dead upload.
    drop(body);
    let result = match writer.finish(end).await {
        Ok(meta) if meta.outcome == Outcome::Complete => {
            tracing::info!(%id, bytes = meta.bytes, who = %meta.who(), "recording stored");
            Ok(())
        }
        Ok(meta) => {
            let reason = meta.reason.unwrap_or_default();
            tracing::warn!(%id, bytes = meta.bytes, %reason, "recording stored incomplete");
            Err(reason)
        }
        Err(error) => {
            tracing::error!(%id, %error, "recording could not be stored");
            Err(format!("storage error: {error}"))
        }
    };
    progress.send_modify(|p| p.end = Some(result.clone()));
    drop(permit);
    result
}

/// An error with its causes, `outer: inner: innermost`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
