//! What a connection is doing: how many of its requests are in flight (from the request head
//! until its answer's body has been sent or dropped), and since when it has had none, so that a
//! connection that carries no request for a while can be closed.
//!
//! hyper closes an idle HTTP/1.1 keep-alive connection after its header read timeout, but it
//! has no such limit for a connection whose protocol is still being told apart (a client that
//! sends `P`, the first byte of the HTTP/2 preface, and then nothing) nor for an HTTP/2
//! connection without streams (its keep-alive pings are answered by any client library). Either
//! would hold one of the listener's connection slots for as long as the client likes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection's requests in flight, and since when it has had none.
#[derive(Debug)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    /// When the last request in flight ended (or the connection was accepted).
    idle_since: Mutex<Instant>,
    /// Told whenever a request begins or ends.
    changed: Notify,
}

/// A request in flight; it ends when this is dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Activity {
    /// A connection accepted now, with no request yet.
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            changed: Notify::new(),
        })
    }

    /// A request begins.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        InFlight(Arc::clone(self))
    }

    /// Resolves once the connection has had no request in flight for `limit` in a row.
    pub(crate) async fn idle_for(&self, limit: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read: a change after the read still wakes this.
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                changed.await;
                continue;
            }
            let deadline = *self.idle_since() + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = changed => {}
            }
        }
    }

    fn idle_since(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        // The time is set before the count falls: a waiter that sees no request in flight also
        // sees when the last one ended.
        *activity.idle_since() = Instant::now();
        activity.in_flight.fetch_sub(1, Ordering::SeqCst);
        activity.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    /// Whether `idle_for(LIMIT)` has resolved after the clock moved on by `by`.
    async fn idle_after(activity: &Arc<Activity>, by: Duration) -> bool {
        let idle = activity.idle_for(LIMIT);
        tokio::pin!(idle);
        tokio::select! {
            biased;
            () = &mut idle => return true,
            () = tokio::time::sleep(by) => {}
        }
        futures_util::poll!(idle.as_mut()).is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_is_idle_after_the_limit() {
        let activity = Activity::new();
        assert!(!idle_after(&activity, LIMIT - Duration::from_secs(1)).await);
        assert!(idle_after(&activity, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_it_busy_however_long_it_lasts() {
        let activity = Activity::new();
        let request = activity.begin();
        assert!(!idle_after(&activity, LIMIT * 10).await);
        // The limit counts from the end of the last request, not from the accept.
        drop(request);
        assert!(!idle_after(&activity, LIMIT - Duration::from_secs(1)).await);
        assert!(idle_after(&activity, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_begins_while_waiting_restarts_the_wait() {
        let activity = Activity::new();
        let idle = activity.idle_for(LIMIT);
        tokio::pin!(idle);
        assert!(futures_util::poll!(idle.as_mut()).is_pending());
        tokio::time::sleep(LIMIT - Duration::from_secs(1)).await;
        let first = activity.begin();
        let second = activity.begin();
        tokio::time::sleep(LIMIT).await;
        assert!(futures_util::poll!(idle.as_mut()).is_pending());
        drop(first);
        tokio::time::sleep(LIMIT).await;
        assert!(futures_util::poll!(idle.as_mut()).is_pending());
        drop(second);
        tokio::time::sleep(LIMIT - Duration::from_secs(1)).await;
        assert!(futures_util::poll!(idle.as_mut()).is_pending());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(futures_util::poll!(idle.as_mut()).is_ready());
    }
}
