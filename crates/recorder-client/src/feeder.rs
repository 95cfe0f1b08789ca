//! Feeding a recording: the [`Feeder`] that puts a session's events (sessiontap's
//! [`OwnedSessionEvent`]) into the bounded buffer in front of the writer task.

use std::sync::Arc;
use std::time::Duration;

use sessiontap::OwnedSessionEvent;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

use crate::error::FeedError;
use crate::outcome::{AbandonReason, Outcome};

/// The buffer space an event takes: its bytes, at least 1.
fn cost(event: &OwnedSessionEvent) -> usize {
    match event {
        OwnedSessionEvent::Output { bytes, .. } | OwnedSessionEvent::Input { bytes } => {
            bytes.len().max(1)
        }
        OwnedSessionEvent::Resize { .. } | OwnedSessionEvent::Exit { .. } => 1,
    }
}

/// A message from the feeders to the writer task.
pub(crate) enum Message {
    /// An event, with the buffer space it holds until the writer has encoded it.
    Event {
        at: Duration,
        event: OwnedSessionEvent,
        _space: OwnedSemaphorePermit,
    },
    /// A marker (`m` event) at `at`, e.g. why the proxy ended the session.
    Marker { at: Duration, label: String },
    /// The session ended at `at`.
    Finish { at: Duration },
}

pub(crate) struct Shared {
    pub(crate) events: mpsc::UnboundedSender<Message>,
    pub(crate) budget: Arc<Semaphore>,
    pub(crate) capacity: usize,
    pub(crate) start: Instant,
    pub(crate) record_input: bool,
    pub(crate) abandon: watch::Sender<Option<AbandonReason>>,
    pub(crate) outcome: watch::Receiver<Option<Outcome>>,
}

/// Feeds session events into a recording. Cheap to clone: the two directions of a session can
/// each hold one. Events are stamped with the time they are fed.
///
/// The events are sessiontap's, as its tap reports them. An [`OwnedSessionEvent`] is moved into the
/// buffer as it is; a borrowed [`SessionEvent`](sessiontap::SessionEvent) is copied into it once.
/// How each is recorded: [`Output`](OwnedSessionEvent::Output) (stdout or stderr) as an `o` event,
/// its bytes decoded as UTF-8 with a carry per stream, so any split is fine;
/// [`Input`](OwnedSessionEvent::Input) as an `i` event when the session's input is recorded
/// ([`Session::record_input`](crate::Session::record_input), by default
/// [`RecorderConfig::record_input`](crate::RecorderConfig::record_input); in a tty session only
/// what the terminal echoes), otherwise dropped before it is buffered; [`Resize`](OwnedSessionEvent::Resize) as the tty header's size or an `r`
/// event; [`Exit`](OwnedSessionEvent::Exit) as an `m` marker event (`exit 0` for
/// [`ExitStatus::Success`](sessiontap::ExitStatus::Success)).
///
/// Fail-closed sessions use [`feed`](Self::feed), which waits while the buffer is full, so nothing
/// is ever dropped and a slow recorder slows the session. Fail-open sessions use
/// [`try_feed`](Self::try_feed), which never waits: when the buffer is full the recording is
/// abandoned and the session goes on unrecorded.
#[derive(Clone)]
pub struct Feeder {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Feeder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeder")
            .field("capacity", &self.shared.capacity)
            .field("available", &self.shared.budget.available_permits())
            .finish()
    }
}

impl Feeder {
    /// Adds `event`, waiting while the buffer is full (fail-closed). Fails once the recording has
    /// stopped: a fail-closed session should then end (see
    /// [`Recording::failed`](crate::Recording::failed) for why).
    pub async fn feed(&self, event: impl Into<OwnedSessionEvent>) -> Result<(), FeedError> {
        let event = event.into();
        if self.skipped(&event) {
            return Ok(());
        }
        let at = self.shared.start.elapsed();
        let space = Arc::clone(&self.shared.budget)
            .acquire_many_owned(self.permits(&event))
            .await
            .map_err(|_| FeedError::Stopped)?;
        self.send(at, event, space)
    }

    /// Adds `event` without ever waiting (fail-open). When the buffer has no room, the recorder has
    /// fallen behind by more than
    /// [`RecorderConfig::buffer_bytes`](crate::RecorderConfig::buffer_bytes): the recording is
    /// abandoned ([`Outcome::Abandoned`], logged) and this returns [`FeedError::Lagging`];
    /// afterwards [`FeedError::Stopped`].
    pub fn try_feed(&self, event: impl Into<OwnedSessionEvent>) -> Result<(), FeedError> {
        let event = event.into();
        if self.skipped(&event) {
            return Ok(());
        }
        let at = self.shared.start.elapsed();
        match Arc::clone(&self.shared.budget).try_acquire_many_owned(self.permits(&event)) {
            Ok(space) => self.send(at, event, space),
            Err(TryAcquireError::Closed) => Err(FeedError::Stopped),
            Err(TryAcquireError::NoPermits) => {
                let limit_bytes = self.shared.capacity;
                self.abandon_with(AbandonReason::Lagging { limit_bytes });
                Err(FeedError::Lagging { limit_bytes })
            }
        }
    }

    /// Whether the recording has stopped (failed, abandoned or finished).
    pub fn is_stopped(&self) -> bool {
        self.shared.budget.is_closed()
    }

    fn skipped(&self, event: &OwnedSessionEvent) -> bool {
        match event {
            OwnedSessionEvent::Input { .. } => !self.shared.record_input,
            OwnedSessionEvent::Output { bytes, .. } => bytes.is_empty(),
            OwnedSessionEvent::Resize { .. } | OwnedSessionEvent::Exit { .. } => false,
        }
    }

    fn permits(&self, event: &OwnedSessionEvent) -> u32 {
        // An event bigger than the whole buffer takes all of it.
        let cost = cost(event).min(self.shared.capacity);
        u32::try_from(cost).unwrap_or(u32::MAX)
    }

    fn send(
        &self,
        at: Duration,
        event: OwnedSessionEvent,
        space: OwnedSemaphorePermit,
    ) -> Result<(), FeedError> {
        self.shared
            .events
            .send(Message::Event {
                at,
                event,
                _space: space,
            })
            .map_err(|_| FeedError::Stopped)
    }

    pub(crate) fn abandon_with(&self, reason: AbandonReason) {
        self.shared.abandon.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
        // Wake fail-closed feeders and refuse further events at once.
        self.shared.budget.close();
    }
}
