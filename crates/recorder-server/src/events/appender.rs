//! The event log writer: group commit.
//!
//! Fsync policy: an event is acknowledged (HTTP 200) only after the line holding it has been
//! written and `fdatasync`ed, so an acknowledged event survives a crash or power loss. Events that
//! arrive while a sync is in progress are written together and share the next sync (group commit),
//! up to [`MAX_BATCH_EVENTS`] events or [`MAX_BATCH_BYTES`] bytes per sync; so durability per event
//! costs one sync per batch, not one per event, under load. The lines of one client batch
//! (`POST /v2/events`) come as one item and are never split between syncs.
//!
//! Hand-overs: the request that finds no writer running starts one on the blocking pool, and that
//! writer takes batch after batch from the queue until it finds the queue empty. Under load the
//! writer is busy syncing whenever a request queues its lines, so storing an event costs the
//! request no hand-over but the wake-up that brings its answer; only at low load does a write
//! start a thread. (A thread parked on the queue for the server's whole life would hold one thread
//! for nothing, and the blocking pool keeps tokio's paused-time tests from advancing their clock
//! while a write runs.)

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::civil_time::{unix_now, utc_day};
use crate::error::StoreError;

/// Most events written per sync.
pub(crate) const MAX_BATCH_EVENTS: usize = 1024;
/// Most bytes written per sync (a single event may be larger; it then goes alone).
pub(crate) const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Items (events or client batches) waiting for the writer before senders wait too.
const QUEUE: usize = 4096;

struct Pending {
    /// One or more event lines, each ending in a newline.
    lines: Vec<u8>,
    /// How many events `lines` holds.
    events: usize,
    done: oneshot::Sender<Result<(), String>>,
    /// Its place in the queue, given back once it is answered.
    _place: OwnedSemaphorePermit,
}

/// What the appenders and the writer share.
struct Shared {
    dir: PathBuf,
    queue: Mutex<Queue>,
    /// Places in the queue ([`QUEUE`]).
    places: Arc<Semaphore>,
    /// Told whenever a writer stops.
    stopped: Notify,
    /// The open event file and its UTC day; used by the one running writer only.
    file: Mutex<Option<(String, File)>>,
    /// Writes (and syncs) so far, for tests of the grouping.
    #[cfg(test)]
    writes: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Pending>,
    /// Whether a writer is running (it takes what is queued before it stops).
    writing: bool,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle for appending events. [`EventAppender::spawn`]'s task ends once every handle is
/// dropped and the last write has finished.
#[derive(Clone)]
pub(crate) struct EventAppender {
    shared: Arc<Shared>,
    /// Closes the end task's channel when the last handle goes.
    _alive: mpsc::Sender<()>,
}

impl std::fmt::Debug for EventAppender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventAppender")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl EventAppender {
    /// An appender for event files in `dir`, and a task that ends when the appender and its
    /// clones are gone and no write is running (so awaiting it at shutdown waits for the last
    /// sync).
    pub(crate) fn spawn(dir: PathBuf) -> (Self, JoinHandle<()>) {
        let shared = Arc::new(Shared {
            dir,
            queue: Mutex::new(Queue::default()),
            places: Arc::new(Semaphore::new(QUEUE)),
            stopped: Notify::new(),
            file: Mutex::new(None),
            #[cfg(test)]
            writes: std::sync::atomic::AtomicUsize::new(0),
        });
        let (alive, mut gone) = mpsc::channel(1);
        let ended = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            // Every handle dropped: no new writer can start.
            let _ = gone.recv().await;
            loop {
                let stopped = ended.stopped.notified();
                if !ended.queue().writing {
                    return;
                }
                stopped.await;
            }
        });
        (
            Self {
                shared,
                _alive: alive,
            },
            task,
        )
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
        let gone = || self.error("event writer stopped".into());
        let place = Arc::clone(&self.shared.places)
            .acquire_owned()
            .await
            .map_err(|_| gone())?;
        let (done, result) = oneshot::channel();
        let start_writer = {
            let mut queue = self.shared.queue();
            queue.waiting.push_back(Pending {
                lines,
                events,
                done,
                _place: place,
            });
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            let shared = Arc::clone(&self.shared);
            // Dropped unrun only when the runtime shuts down; the queued senders are then
            // dropped with `shared` and their appends fail as "stopped".
            drop(tokio::task::spawn_blocking(move || write_queued(&shared)));
        }
        match result.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(self.error(message)),
            Err(_) => Err(gone()),
        }
    }

    fn error(&self, message: String) -> StoreError {
        StoreError::Io {
            op: "append to",
            path: self.shared.dir.clone(),
            source: std::io::Error::other(message),
        }
    }
}

/// The writer (on the blocking pool): writes and syncs what is queued, batch after batch, until
/// the queue is empty, and answers each item after its batch's sync.
fn write_queued(shared: &Shared) {
    // A writer that panics marks itself stopped and fails what is queued, so that appends do
    // not wait for a writer that is gone; the next append starts another.
    struct Running<'a>(&'a Shared);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let waiting = {
                    let mut queue = self.0.queue();
                    queue.writing = false;
                    std::mem::take(&mut queue.waiting)
                };
                for pending in waiting {
                    let _ = pending.done.send(Err("the event writer failed".into()));
                }
                self.0.stopped.notify_waiters();
            }
        }
    }
    let running = Running(shared);
    let mut file = shared.file.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let batch = {
            let mut queue = shared.queue();
            if queue.waiting.is_empty() {
                // Cleared under the same lock an append checks, so an item queued after this
                // starts a writer of its own.
                queue.writing = false;
                break;
            }
            take_batch(&mut queue.waiting)
        };
        let buffer = match batch.as_slice() {
            // One item (a client batch, or a lone event at low load) is written as it is.
            [only] => std::borrow::Cow::Borrowed(&only.lines),
            several => std::borrow::Cow::Owned(several.iter().fold(
                Vec::with_capacity(several.iter().map(|p| p.lines.len()).sum()),
                |mut buffer, pending| {
                    buffer.extend_from_slice(&pending.lines);
                    buffer
                },
            )),
        };
        let result = write_batch(&shared.dir, &mut file, &buffer).map_err(|e| e.to_string());
        #[cfg(test)]
        shared
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        drop(buffer);
        if let Err(error) = &result {
            tracing::error!(%error, items = batch.len(), "storing events failed");
            // Start a fresh file handle next time, after a failure of unknown extent.
            *file = None;
        }
        for pending in batch {
            let _ = pending.done.send(result.clone());
        }
    }
    drop(file);
    drop(running);
    shared.stopped.notify_waiters();
}

/// The items at the front of `waiting` that go into one write and one sync: the first always,
/// then as many as fit in [`MAX_BATCH_EVENTS`] and [`MAX_BATCH_BYTES`]. Items whose sender gave
/// up waiting are written all the same: the sender may have been cut off after its answer was
/// decided, and a stored event is never the wrong outcome.
fn take_batch(waiting: &mut VecDeque<Pending>) -> Vec<Pending> {
    let mut batch = Vec::new();
    let (mut events, mut bytes) = (0, 0);
    while let Some(next) = waiting.front() {
        let fits =
            events + next.events <= MAX_BATCH_EVENTS && bytes + next.lines.len() <= MAX_BATCH_BYTES;
        if !batch.is_empty() && !fits {
            break;
        }
        events += next.events;
        bytes += next.lines.len();
        if let Some(next) = waiting.pop_front() {
            batch.push(next);
        }
    }
    batch
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use futures_util::FutureExt as _;

    use super::*;

    fn stored_lines(dir: &Path) -> Vec<String> {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(dir).expect("events dir") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("event file");
            lines.extend(text.lines().map(str::to_owned));
        }
        lines.sort();
        lines
    }

    // The test holds the writer's file across awaits on purpose: a write that takes its time.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_queued_during_a_write_share_the_next_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (appender, ended) = EventAppender::spawn(dir.path().to_owned());
        appender
            .append(b"{\"n\":\"first\"}".to_vec())
            .await
            .expect("first");
        assert_eq!(appender.shared.writes.load(Ordering::Relaxed), 1);

        // A write in progress (the writer holds the file while it writes and syncs): what is
        // queued meanwhile waits, and then goes out in one write.
        let file = appender.shared.file.lock().expect("file");
        let mut sends = tokio::task::JoinSet::new();
        for n in 0..50 {
            let appender = appender.clone();
            sends.spawn(async move {
                let line = format!("{{\"n\":{n}}}").into_bytes();
                appender.append(line).await
            });
        }
        // The writer takes nothing before it has the file, so all 50 wait in the queue.
        while appender.shared.queue().waiting.len() < 50 {
            tokio::task::yield_now().await;
        }
        drop(file);
        while let Some(sent) = sends.join_next().await {
            sent.expect("task").expect("stored");
        }
        // The first write, then one with all the rest.
        assert_eq!(appender.shared.writes.load(Ordering::Relaxed), 2);
        let mut expected: Vec<String> = (0..50).map(|n| format!("{{\"n\":{n}}}")).collect();
        expected.push("{\"n\":\"first\"}".into());
        expected.sort();
        assert_eq!(stored_lines(dir.path()), expected);

        drop(appender);
        ended.await.expect("end task");
    }

    #[tokio::test]
    async fn a_failed_write_fails_its_events_and_the_next_append_tries_again() {
        let parent = tempfile::tempdir().expect("tempdir");
        let dir = parent.path().join("events");
        let (appender, ended) = EventAppender::spawn(dir.clone());
        let failed = appender.append(b"{}".to_vec()).await;
        assert!(failed.is_err(), "stored without a directory: {failed:?}");

        std::fs::create_dir(&dir).expect("create dir");
        appender
            .append(b"{\"a\":1}".to_vec())
            .await
            .expect("stored");
        assert_eq!(stored_lines(&dir), ["{\"a\":1}"]);
        drop(appender);
        ended.await.expect("end task");
    }

    // The test holds the writer's file across awaits on purpose: a write that takes its time.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test]
    async fn the_end_task_waits_for_a_running_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (appender, mut ended) = EventAppender::spawn(dir.path().to_owned());
        let shared = Arc::clone(&appender.shared);
        let file = shared.file.lock().expect("file");
        let writer = appender.clone();
        let append = tokio::spawn(async move { writer.append(b"{}".to_vec()).await });
        while !shared.queue().writing {
            tokio::task::yield_now().await;
        }
        // The sender gives up and every handle goes; the write already started must still
        // finish before the end task does.
        append.abort();
        let _ = append.await;
        drop(appender);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            (&mut ended).now_or_never().is_none(),
            "ended while a write was running"
        );
        drop(file);
        ended.await.expect("end task");
        assert!(!shared.queue().writing);
        assert_eq!(stored_lines(dir.path()), ["{}"]);
    }
}
