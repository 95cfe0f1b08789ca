//! One recorder address: a slot for a connection, the probe (unless its answer is cached), then
//! the `POST`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use castfmt::protocol::{EVENT_PATH, JSON_CONTENT_TYPE};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;

use super::answer_body::{answer_excerpt, keep_if_answer_ends};
use super::connection_pool::ConnectionPool;
use super::exchange::{exchange, head, Replay};
use super::probe_cache::ProbeCache;
use crate::error::AttemptError;

/// Why an address that answered 404 to the probe did not get the event, when another address
/// failed and the send is an error.
pub(super) const UNSUPPORTED_REASON: &str = "does not support API events (404 to HEAD /v2/event)";

/// What a recorder made of the event.
#[derive(Debug)]
pub(super) enum Answer {
    /// 200 to the `POST`.
    Stored,
    /// 404 to the probe, now or cached: the event was not sent.
    Unsupported,
}

/// Offers the event (`json`) to the recorder at `addr`. Waiting for a free connection slot counts
/// against the caller's time limit for the attempt, as the dial does.
pub(super) async fn attempt(
    probes: &ProbeCache<bool>,
    pool: &Arc<ConnectionPool>,
    addr: SocketAddr,
    json: &Bytes,
) -> Result<Answer, AttemptError> {
    let supported = probes.get(addr);
    if supported == Some(false) {
        return Ok(Answer::Unsupported);
    }
    let host = HeaderValue::try_from(addr.to_string())
        .map_err(|e| AttemptError::Request(http::Error::from(e)))?;
    let slot = pool.slot(addr).await;
    let mut connection = pool.checkout(addr, &slot).await?;
    if supported.is_none() {
        let response = head(pool, addr, &slot, &mut connection, &host, EVENT_PATH).await?;
        match response.status() {
            StatusCode::OK => probes.set(addr, true),
            StatusCode::NOT_FOUND => {
                probes.set(addr, false);
                pool.checkin(addr, connection);
                return Ok(Answer::Unsupported);
            }
            status => return Err(AttemptError::ProbeStatus(status)),
        }
    }
    let post = || {
        Request::builder()
            .method(Method::POST)
            .uri(EVENT_PATH)
            .header(HOST, host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE))
            .body(Full::new(json.clone()))
    };
    let response = exchange(pool, addr, &slot, &mut connection, Replay::UnsentOnly, post).await?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(AttemptError::PostStatus {
            status,
            answer: answer_excerpt(response.into_body()).await,
        });
    }
    // The event is stored once the recorder says 200; the body only decides whether the
    // connection can be kept.
    keep_if_answer_ends(pool, addr, connection, response.into_body(), slot);
    Ok(Answer::Stored)
}
