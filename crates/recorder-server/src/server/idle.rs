//! What a connection is doing: which of its requests are moving, and since when none has, so
//! that a connection that carries no moving request for a while can be closed.
//!
//! hyper closes an idle HTTP/1.1 keep-alive connection after its header read timeout, but it
//! has no such limit for a connection whose protocol is still being told apart (a client that
//! sends `P`, the first byte of the HTTP/2 preface, and then nothing), for an HTTP/2 connection
//! without streams (its keep-alive pings are answered by any client library), nor for an answer
//! the client never reads (an HTTP/2 receive window of 0, or a full socket): hyper waits for the
//! client without a limit. Each would hold one of the listener's connection slots for as long as
//! the client likes.
//!
//! A request moves from its head until its answer's body has ended, except while a frame the
//! body gave waits for the client to take it: hyper asks a body for its next frame only once the
//! last one is on its way. A body that waits for data of its own (the acks of a quiet upload, a
//! live view of an idle session) still moves.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One connection's requests, and since when none has moved.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<State>,
    /// Told whenever a request begins, ends, stalls or moves again.
    changed: Notify,
}

#[derive(Debug)]
struct State {
    /// Requests begun and not ended.
    in_flight: usize,
    /// Of those, the ones whose last frame waits for the client.
    stalled: usize,
    /// When the last moving request ended or stalled (or the connection was accepted).
    still_since: Instant,
}

impl State {
    fn moving(&self) -> usize {
        self.in_flight - self.stalled
    }
}

/// A request in flight; it ends when this is dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Activity {
    /// A connection accepted now, with no request yet.
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(State {
                in_flight: 0,
                stalled: 0,
                still_since: Instant::now(),
            }),
            changed: Notify::new(),
        })
    }

    /// A request begins.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.update(|state| state.in_flight += 1);
        InFlight(Arc::clone(self))
    }

    /// How many requests move now.
    pub(crate) fn moving(&self) -> usize {
        self.state().moving()
    }

    /// Resolves once no request of the connection has moved for `limit` in a row.
    pub(crate) async fn still_for(&self, limit: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read: a change after the read still wakes this.
            changed.as_mut().enable();
            let (moving, still_since) = {
                let state = self.state();
                (state.moving(), state.still_since)
            };
            if moving > 0 {
                changed.await;
                continue;
            }
            let deadline = still_since + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = changed => {}
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state; notes when the last moving request stopped.
    fn update(&self, change: impl FnOnce(&mut State)) {
        {
            let mut state = self.state();
            let before = state.moving();
            change(&mut state);
            if before > 0 && state.moving() == 0 {
                state.still_since = Instant::now();
            }
        }
        self.changed.notify_waiters();
    }
}

impl InFlight {
    /// The answer's body, counted as this request: it moves while the client takes its frames.
    pub(crate) fn watch<B>(self, body: B) -> Watched<B> {
        Watched {
            body,
            request: self,
            stalled: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|state| state.in_flight -= 1);
    }
}

/// An answer's body whose request stalls while a frame it gave waits for the client.
#[derive(Debug)]
pub(crate) struct Watched<B> {
    body: B,
    request: InFlight,
    stalled: bool,
}

impl<B> Watched<B> {
    fn set_stalled(&mut self, stalled: bool) {
        if self.stalled != stalled {
            self.stalled = stalled;
            self.request.0.update(|state| {
                if stalled {
                    state.stalled += 1;
                } else {
                    state.stalled -= 1;
                }
            });
        }
    }
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        // Asked again: the last frame is on its way.
        self.set_stalled(false);
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.set_stalled(true);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for Watched<B> {
    fn drop(&mut self) {
        self.set_stalled(false);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::BodyExt as _;

    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    /// Whether `still_for(LIMIT)` has resolved after the clock moved on by `by`.
    async fn still_after(activity: &Arc<Activity>, by: Duration) -> bool {
        let still = activity.still_for(LIMIT);
        tokio::pin!(still);
        tokio::select! {
            biased;
            () = &mut still => return true,
            () = tokio::time::sleep(by) => {}
        }
        futures_util::poll!(still.as_mut()).is_ready()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_is_still_after_the_limit() {
        let activity = Activity::new();
        assert!(!still_after(&activity, LIMIT - Duration::from_secs(1)).await);
        assert!(still_after(&activity, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_moves_however_long_it_lasts() {
        let activity = Activity::new();
        let request = activity.begin();
        assert!(!still_after(&activity, LIMIT * 10).await);
        // The limit counts from the end of the last request, not from the accept.
        drop(request);
        assert!(!still_after(&activity, LIMIT - Duration::from_secs(1)).await);
        assert!(still_after(&activity, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_begins_while_waiting_restarts_the_wait() {
        let activity = Activity::new();
        let still = activity.still_for(LIMIT);
        tokio::pin!(still);
        assert!(futures_util::poll!(still.as_mut()).is_pending());
        tokio::time::sleep(LIMIT - Duration::from_secs(1)).await;
        let first = activity.begin();
        let second = activity.begin();
        tokio::time::sleep(LIMIT).await;
        assert!(futures_util::poll!(still.as_mut()).is_pending());
        drop(first);
        tokio::time::sleep(LIMIT).await;
        assert!(futures_util::poll!(still.as_mut()).is_pending());
        drop(second);
        tokio::time::sleep(LIMIT - Duration::from_secs(1)).await;
        assert!(futures_util::poll!(still.as_mut()).is_pending());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(futures_util::poll!(still.as_mut()).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_whose_frame_the_client_does_not_take_stalls_its_request() {
        let activity = Activity::new();
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        let body = http_body_util::StreamBody::new(Box::pin(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move {
                let chunk = receiver.recv().await?;
                Some((
                    Ok::<_, std::convert::Infallible>(Frame::data(chunk)),
                    receiver,
                ))
            },
        )));
        let mut body = activity.begin().watch(body);
        // Waiting for data of its own: the request moves, however long.
        assert!(futures_util::poll!(body.frame()).is_pending());
        assert!(!still_after(&activity, LIMIT * 10).await);
        // A frame given and not asked past: it waits for the client.
        sender.send(Bytes::from_static(b"ack")).await.expect("send");
        assert!(body.frame().await.is_some());
        assert_eq!(activity.moving(), 0);
        assert!(!still_after(&activity, LIMIT - Duration::from_secs(1)).await);
        assert!(still_after(&activity, Duration::from_secs(2)).await);
        // Asked for the next: it moves again.
        assert!(futures_util::poll!(body.frame()).is_pending());
        assert_eq!(activity.moving(), 1);
        drop(body);
        assert_eq!(activity.moving(), 0);
        assert_eq!(activity.state().in_flight, 0);
    }
}
