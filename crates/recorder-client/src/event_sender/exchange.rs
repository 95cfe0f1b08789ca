//! One request on a recorder connection, and when it may be sent again on a new one.
//!
//! A kept connection can be closed by the recorder (as idle) just as a request goes out on it. Go's
//! `net/http` sends such a request again on a new connection only when that cannot act twice
//! (`transport.go`, `shouldRetryRequest`): always when nothing of it was written, and after it
//! was written only when it is idempotent (a `HEAD`). A `POST` that went out may have been
//! stored even though no answer came, so sending it again could store the event twice; it is
//! reported as failed instead, and the next address gets it.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::error::AttemptError;

use super::connection_pool::{Connection, ConnectionPool, ConnectionSlot, EventBody};

/// Whether a request may be sent again after it went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// Idempotent (the probe): again also after it went out, if the connection closed before
    /// the answer.
    Idempotent,
    /// Not idempotent (the `POST`): again only if it never went out.
    UnsentOnly,
}

/// Why a request got no answer on a connection.
enum SendFailure {
    /// The request never went out: the connection was closed before it was written.
    NotSent(hyper::Error),
    /// The request went out (at least in part) and then the exchange failed.
    Sent(hyper::Error),
}

/// Sends a request, built by `request`, on `connection`. A connection taken from the idle pool
/// that fails as [`Replay`] allows is replaced by a new one, once, and the request sent again.
pub(super) async fn exchange(
    pool: &ConnectionPool,
    addr: SocketAddr,
    slot: &ConnectionSlot,
    connection: &mut Connection,
    replay: Replay,
    request: impl Fn() -> Result<Request<EventBody>, http::Error>,
) -> Result<Response<Incoming>, AttemptError> {
    let failure = match send(connection, request().map_err(AttemptError::Request)?).await {
        Ok(response) => return Ok(response),
        Err(failure) => failure,
    };
    let error = match failure {
        SendFailure::NotSent(error) if connection.from_pool => error,
        SendFailure::Sent(error)
            if connection.from_pool && replay == Replay::Idempotent && closed_early(&error) =>
        {
            error
        }
        SendFailure::NotSent(error) | SendFailure::Sent(error) => {
            return Err(AttemptError::Http(error))
        }
    };
    tracing::debug!(%addr, %error, "idle recorder connection closed; reconnecting");
    *connection = pool.connect(addr, slot).await?;
    match send(connection, request().map_err(AttemptError::Request)?).await {
        Ok(response) => Ok(response),
        Err(SendFailure::NotSent(error) | SendFailure::Sent(error)) => {
            Err(AttemptError::Http(error))
        }
    }
}

/// `HEAD path` on `connection` (replayed once on a fresh connection if a pooled one had closed).
/// A HEAD answer has no body, so the connection is free again afterwards.
pub(super) async fn head(
    pool: &ConnectionPool,
    addr: SocketAddr,
    slot: &ConnectionSlot,
    connection: &mut Connection,
    host: &HeaderValue,
    path: &'static str,
) -> Result<Response<Incoming>, AttemptError> {
    let probe = || {
        Request::builder()
            .method(Method::HEAD)
            .uri(path)
            .header(HOST, host.clone())
            .body(EventBody::new(Bytes::new()))
    };
    exchange(pool, addr, slot, connection, Replay::Idempotent, probe).await
}

async fn send(
    connection: &mut Connection,
    request: Request<EventBody>,
) -> Result<Response<Incoming>, SendFailure> {
    // An HTTP/1.1 connection takes the next request only once the last answer has been read; it
    // fails here, before anything is written, when the connection has closed.
    connection
        .sender
        .ready()
        .await
        .map_err(SendFailure::NotSent)?;
    // hyper hands the request back in the error only when it was never written (the connection
    // closed while the request waited in its queue).
    connection
        .sender
        .try_send_request(request)
        .await
        .map_err(|mut error| match error.take_message() {
            Some(_unsent) => SendFailure::NotSent(error.into_error()),
            None => SendFailure::Sent(error.into_error()),
        })
}

/// Whether the connection ended before the recorder answered.
fn closed_early(error: &hyper::Error) -> bool {
    error.is_closed() || error.is_canceled() || error.is_incomplete_message()
}
