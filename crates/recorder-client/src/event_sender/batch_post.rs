//! The batch endpoint's two requests: `HEAD /v2/events` (does the recorder take batches, and how
//! large) and `POST /v2/events` (NDJSON, one event per line; the answer says which are stored).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use castfmt::protocol::{
    EventBatchAnswer, EVENTS_PATH, EVENT_BATCH_CONTENT_TYPE, EVENT_BATCH_MAX_BYTES_HEADER,
    EVENT_BATCH_MAX_EVENTS_HEADER,
};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use tokio::time::timeout;

use super::answer_body::{answer_excerpt, BODY_WAIT};
use super::connection_pool::ConnectionPool;
use super::exchange::{exchange, head, Replay};
use crate::error::AttemptError;

/// The most of a batch answer read: a count and the rejected events' reasons, which the recorder
/// keeps short.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// How large the batches to one recorder may be: the sender's own limits, lowered to what the
/// recorder announced in its answer to the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchLimits {
    /// Events per batch, at least 1.
    pub(super) max_events: usize,
    /// Bytes per batch body; one event larger than this goes alone.
    pub(super) max_bytes: usize,
}

impl BatchLimits {
    /// `own` lowered to the limits a recorder announced in `headers`; `None` when it announced
    /// no event count: a 200 without it is not an offer of batches (a server that answers 200 to
    /// any path, say), and batches sent there could never be acknowledged. An unreadable byte
    /// limit is no limit.
    pub(super) fn announced(own: BatchLimits, headers: &HeaderMap) -> Option<BatchLimits> {
        let announced = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        let max_events = announced(EVENT_BATCH_MAX_EVENTS_HEADER)?;
        Some(BatchLimits {
            max_events: max_events.min(own.max_events).max(1),
            max_bytes: announced(EVENT_BATCH_MAX_BYTES_HEADER)
                .map_or(own.max_bytes, |n| n.min(own.max_bytes)),
        })
    }
}

fn host(addr: SocketAddr) -> Result<HeaderValue, AttemptError> {
    HeaderValue::try_from(addr.to_string()).map_err(|e| AttemptError::Request(http::Error::from(e)))
}

/// `HEAD /v2/events`: `Some(limits)` when the recorder answers 200 with the batch limits, `None`
/// when it answers anything else (a recorder that speaks only Tailscale's one-event-per-`POST`
/// protocol answers 404, or 405 if it routes the path to something else). Only a failed
/// exchange is an error.
pub(super) async fn probe_batches(
    pool: &Arc<ConnectionPool>,
    addr: SocketAddr,
    own: BatchLimits,
) -> Result<Option<BatchLimits>, AttemptError> {
    let host = host(addr)?;
    let slot = pool.slot(addr).await;
    let mut connection = pool.checkout(addr, &slot).await?;
    let response = head(pool, addr, &slot, &mut connection, &host, EVENTS_PATH).await?;
    pool.checkin(addr, connection);
    if response.status() != StatusCode::OK {
        return Ok(None);
    }
    Ok(BatchLimits::announced(own, response.headers()))
}

/// `POST /v2/events` with `body` holding `count` events: the outcome of each event, in order, or
/// why none of them is known to be stored. The reasons are for people.
pub(super) async fn post_batch(
    pool: &Arc<ConnectionPool>,
    addr: SocketAddr,
    body: Bytes,
    count: usize,
) -> Result<Vec<Result<(), String>>, String> {
    let failed = |error: AttemptError| error.reason();
    let host = host(addr).map_err(failed)?;
    let slot = pool.slot(addr).await;
    let mut connection = pool.checkout(addr, &slot).await.map_err(failed)?;
    let post = || {
        Request::builder()
            .method(Method::POST)
            .uri(EVENTS_PATH)
            .header(HOST, host.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static(EVENT_BATCH_CONTENT_TYPE),
            )
            .body(Full::new(body.clone()))
    };
    // Sent again on a new connection only if it never went out: a batch the recorder may have
    // stored is not stored twice.
    let response = exchange(pool, addr, &slot, &mut connection, Replay::UnsentOnly, post)
        .await
        .map_err(failed)?;
    let status = response.status();
    if status != StatusCode::OK {
        let answer = answer_excerpt(response.into_body()).await;
        return Err(if answer.is_empty() {
            format!("POST {EVENTS_PATH} answered {status}")
        } else {
            format!("POST {EVENTS_PATH} answered {status}: {answer}")
        });
    }
    let read = timeout(
        BODY_WAIT,
        Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect(),
    )
    .await;
    let answer = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) => return Err(format!("reading the answer to POST {EVENTS_PATH}: {error}")),
        Err(_) => {
            return Err(format!(
                "the answer to POST {EVENTS_PATH} did not end within {BODY_WAIT:?}"
            ))
        }
    };
    // The answer was read to its end: the connection can carry the next batch.
    pool.checkin(addr, connection);
    drop(slot);
    let answer = EventBatchAnswer::parse(&answer, count)
        .map_err(|error| format!("unreadable answer to POST {EVENTS_PATH}: {error}"))?;
    Ok(answer.outcomes(count))
}
