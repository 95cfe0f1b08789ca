//! The response body of `POST /v2/record`: NDJSON acks.
//!
//! Tailscale's client (`sessionrecording.connectV2`, frame type `v2ResponseFrame`) reads
//! `{"ack": <bytes received so far>}` frames and gives up after 30 s without one, and a recorder
//! acks "even if there is no new data to ack" so an idle session's recorder connection is known
//! to be alive. The last frame is `{"error": "..."}` when storing failed. An ack is sent after
//! data arrives (the upload publishes what arrived in steps, see `upload::Received`, and
//! several steps between two polls share one ack) and at least every
//! `interval` while idle; the first ack comes with the first data or after one interval.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use castfmt::protocol::{ack_line, error_line};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::upload::Progress;

struct AckState {
    progress: watch::Receiver<Progress>,
    ticker: Interval,
    acked: u64,
    done: bool,
}

/// The ack stream for an upload whose progress is published in `progress`.
pub(crate) fn ack_body(progress: watch::Receiver<Progress>, interval: Duration) -> Body {
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = AckState {
        progress,
        ticker,
        acked: 0,
        done: false,
    };
    Body::from_stream(futures_util::stream::unfold(state, next_frame))
}

async fn next_frame(mut state: AckState) -> Option<(Result<Bytes, Infallible>, AckState)> {
    if state.done {
        return None;
    }
    loop {
        let (received, end) = {
            let progress = state.progress.borrow_and_update();
            (progress.received, progress.end.clone())
        };
        if let Some(end) = end {
            state.done = true;
            let frame = match end {
                Ok(()) => ack_frame(received),
                Err(message) => error_frame(&message),
            };
            return Some((Ok(frame), state));
        }
        if received > state.acked {
            state.acked = received;
            state.ticker.reset();
            return Some((Ok(ack_frame(received)), state));
        }
        tokio::select! {
            changed = state.progress.changed() => {
                if changed.is_err() {
                    state.done = true;
                    return Some((Ok(error_frame("the recorder lost the upload")), state));
                }
            }
            _ = state.ticker.tick() => {
                return Some((Ok(ack_frame(state.acked)), state));
            }
        }
    }
}

fn ack_frame(received: u64) -> Bytes {
    Bytes::from(ack_line(received))
}

fn error_frame(message: &str) -> Bytes {
    Bytes::from(error_line(message))
}
