//! The event log writer: group commit.
//!
//! Fsync policy: an event is acknowledged (HTTP 200) only after the line holding it has been
//! written and `fdatasync`ed, so an acknowledged event survives a crash or power loss. Events that
//! arrive while a sync is in progress are written together and share the next sync (group commit),
//! up to [`MAX_BATCH_EVENTS`] events or [`MAX_BATCH_BYTES`] bytes per sync; so durability per event
//! costs one sync per batch, not one per event, under load. The lines of one client batch
//! (`POST /v2/events`) come as one item and are never split between syncs.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::civil_time::{unix_now, utc_day};
use crate::error::StoreError;

/// Most events written per sync.
pub(crate) const MAX_BATCH_EVENTS: usize = 1024;
/// Most bytes written per sync (a single event may be larger; it then goes alone).
pub(crate) const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Events waiting for the writer before senders wait too.
const QUEUE: usize = 4096;

struct Pending {
    /// One or more event lines, each ending in a newline.
    lines: Vec<u8>,
    /// How many events `lines` holds.
    events: usize,
    done: oneshot::Sender<Result<(), String>>,
}

/// A handle for appending events; the writer ends when every handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct EventAppender {
    tx: mpsc::Sender<Pending>,
    dir: PathBuf,
}

impl EventAppender {
    /// Starts the writer for event files in `dir`.
    pub(crate) fn spawn(dir: PathBuf) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write_loop(dir.clone(), rx));
        (Self { tx, dir }, task)
    }

    /// Appends one event line (no newline) and waits until it is durable.
    pub(crate) async fn append(&self, mut line: Vec<u8>) -> Result<(), StoreError> {
        line.push(b'\n');
        self.append_lines(line, 1).await
    }

    /// Appends `events` event lines, each already ending in a newline, with one write, and waits
    /// until they are durable.
    pub(crate) async fn append_lines(
        &self,
        lines: Vec<u8>,
        events: usize,
    ) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        let gone = || StoreError::Io {
            op: "append to",
            path: self.dir.clone(),
            source: std::io::Error::other("event writer stopped"),
        };
        self.tx
            .send(Pending {
                lines,
                events,
                done,
            })
            .await
            .map_err(|_| gone())?;
        match result.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Io {
                op: "append to",
                path: self.dir.clone(),
                source: std::io::Error::other(message),
            }),
            Err(_) => Err(gone()),
        }
    }
}

/// Collects batches on the async side and writes each on the blocking pool. (A blocking thread
/// parked on the queue for the server's whole life would also stop paused-time tests from
/// advancing their clock.)
async fn write_loop(dir: PathBuf, mut rx: mpsc::Receiver<Pending>) {
    let mut current: Option<(String, File)> = None;
    while let Some(first) = rx.recv().await {
        let mut bytes = first.lines.len();
        let mut events = first.events;
        let mut batch = vec![first];
        while events < MAX_BATCH_EVENTS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(next) => {
                    bytes += next.lines.len();
                    events += next.events;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        // One item (a client batch, or a lone event at low load) is written as it is.
        let buffer = match batch.as_mut_slice() {
            [only] => std::mem::take(&mut only.lines),
            several => {
                let mut buffer = Vec::with_capacity(bytes);
                for pending in several.iter() {
                    buffer.extend_from_slice(&pending.lines);
                }
                buffer
            }
        };
        let batch_dir = dir.clone();
        let written = tokio::task::spawn_blocking(move || {
            let result = write_batch(&batch_dir, &mut current, &buffer);
            (current, result)
        })
        .await;
        let result = match written {
            Ok((file, result)) => {
                current = file;
                result.map_err(|e| e.to_string())
            }
            Err(join) => {
                current = None;
                Err(join.to_string())
            }
        };
        if let Err(error) = &result {
            tracing::error!(%error, events = batch.len(), "storing events failed");
            // Start a fresh file handle next time, after a failure of unknown extent.
            current = None;
        }
        for pending in batch {
            let _ = pending.done.send(result.clone());
        }
    }
}

fn write_batch(
    dir: &Path,
    current: &mut Option<(String, File)>,
    buffer: &[u8],
) -> Result<(), StoreError> {
    let day = utc_day(unix_now());
    let path = dir.join(format!("{day}{}", super::EVENT_FILE_SUFFIX));
    if current
        .as_ref()
        .is_none_or(|(open_day, _)| *open_day != day)
    {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        // The new file's directory entry must be durable too.
        crate::store::sync_dir(dir)?;
        *current = Some((day, file));
    }
    let Some((_, file)) = current.as_mut() else {
        return Ok(());
    };
    file.write_all(buffer)
        .map_err(StoreError::io("write", &path))?;
    file.sync_data().map_err(StoreError::io("sync", &path))
}
