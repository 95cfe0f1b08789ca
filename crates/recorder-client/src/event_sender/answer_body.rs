//! What is read of a recorder's answer body, and for how long. The status alone decides an
//! event's fate; the body is read only for a refusal's reason, or so that the connection can
//! carry the next event, and never for longer than [`BODY_WAIT`], so that a recorder that keeps
//! a body open cannot turn a stored event into a timeout (and a copy sent to the next address).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http_body::Body as _;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use tokio::time::{timeout, timeout_at, Instant};

use super::connection_pool::{Connection, ConnectionPool, ConnectionSlot};

/// How long an answer's body may take to end. A recorder answers an event with an empty body,
/// or a refusal with a one-line reason, at once.
pub(super) const BODY_WAIT: Duration = Duration::from_secs(1);

/// How much of a refusal's body goes into the error: enough for the recorder's one-line reason.
const ANSWER_EXCERPT: usize = 200;

/// The most of a 200 answer's body read so that its connection can carry the next event; a
/// recorder answers with an empty body.
const MAX_OK_BODY: usize = 64 * 1024;

/// After a 200 to the `POST`: returns `connection` to the pool if the answer's body is already
/// at its end, or once it ends within [`BODY_WAIT`] (read in a task of its own, so that the
/// send does not wait for it); otherwise drops it. The slot is held until then, so that the
/// connection counts against the address's limit for as long as it is open and not idle.
pub(super) fn keep_if_answer_ends(
    pool: &Arc<ConnectionPool>,
    addr: SocketAddr,
    connection: Connection,
    body: Incoming,
    slot: ConnectionSlot,
) {
    if body.is_end_stream() {
        pool.checkin(addr, connection);
        drop(slot);
        return;
    }
    let pool = Arc::clone(pool);
    tokio::spawn(async move {
        match timeout(BODY_WAIT, Limited::new(body, MAX_OK_BODY).collect()).await {
            Ok(Ok(_)) => pool.checkin(addr, connection),
            Ok(Err(error)) => {
                tracing::debug!(%addr, %error, "dropping recorder connection: answer body");
            }
            Err(_) => {
                tracing::debug!(%addr, "dropping recorder connection: answer body did not end");
            }
        }
        drop(slot);
    });
}

/// The start of a refusal's body (kube-recorder sends `{"error": "..."}`), as text: what arrives
/// within [`BODY_WAIT`].
pub(super) async fn answer_excerpt(mut body: Incoming) -> String {
    let deadline = Instant::now() + BODY_WAIT;
    let mut read = BytesMut::new();
    while read.len() < ANSWER_EXCERPT {
        match timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(error))) => {
                tracing::debug!(%error, "reading the recorder's refusal");
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let cut = &read[..read.len().min(ANSWER_EXCERPT)];
    // Cut at a character boundary; anything not UTF-8 is shown as replacement characters.
    let cut = match std::str::from_utf8(cut) {
        Err(e) if e.error_len().is_none() => &cut[..e.valid_up_to()],
        _ => cut,
    };
    String::from_utf8_lossy(cut).trim().to_owned()
}
