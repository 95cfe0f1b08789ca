//! One recorder address: the probe (unless its answer is cached), then the `POST`.

use std::error::Error as _;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;

use super::connection_pool::{Connection, ConnectionPool, EventBody};
use super::probe_cache::ProbeCache;

/// The events endpoint (protocols section 5).
const EVENT_PATH: &str = "/v2/event";

/// How much of a refusal's body goes into the error: enough for the recorder's one-line reason.
const ANSWER_EXCERPT: usize = 200;

/// The most of a 200 answer's body read so that its connection can carry the next event; a
/// recorder answers with an empty body.
const MAX_OK_BODY: usize = 64 * 1024;

/// What a recorder made of the event.
#[derive(Debug)]
pub(super) enum Answer {
    Stored,
    Unsupported,
}

/// Why one recorder address did not take the event.
#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
    #[error("dial failed: {0}")]
    Dial(#[source] io::Error),
    #[error("dial timed out after {0:?}")]
    DialTimeout(Duration),
    #[error("invalid request: {0}")]
    Request(#[source] http::Error),
    #[error("HTTP error: {0}")]
    Http(#[source] hyper::Error),
    #[error("HEAD {EVENT_PATH} answered {0}")]
    ProbeStatus(StatusCode),
    #[error("POST {EVENT_PATH} answered {status}{}", excerpt(.answer))]
    PostStatus { status: StatusCode, answer: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("gave up: all recorders must answer within {0:?}")]
    TotalTimeout(Duration),
    #[error("not tried: all recorders must answer within {0:?}")]
    NotTried(Duration),
}

impl AttemptError {
    /// The error with its causes, for people: hyper's own text is often only its kind
    /// ("error trying to connect"), the reason is in its source.
    pub(super) fn reason(&self) -> String {
        let mut reason = self.to_string();
        let mut source = self.source().and_then(|e| e.source());
        while let Some(error) = source {
            reason.push_str(": ");
            reason.push_str(&error.to_string());
            source = error.source();
        }
        reason
    }
}

fn excerpt(answer: &str) -> String {
    if answer.is_empty() {
        String::new()
    } else {
        format!(": {answer}")
    }
}

/// Offers the event (`json`) to the recorder at `addr`.
pub(super) async fn attempt(
    probes: &ProbeCache,
    pool: &ConnectionPool,
    addr: SocketAddr,
    json: &Bytes,
) -> Result<Answer, AttemptError> {
    let supported = probes.get(addr);
    if supported == Some(false) {
        return Ok(Answer::Unsupported);
    }
    let host = HeaderValue::try_from(addr.to_string())
        .map_err(|e| AttemptError::Request(http::Error::from(e)))?;
    let mut connection = pool.checkout(addr).await?;
    if supported.is_none() {
        let probe = || {
            Request::builder()
                .method(Method::HEAD)
                .uri(EVENT_PATH)
                .header(HOST, host.clone())
                .body(Full::new(Bytes::new()))
        };
        let response = exchange(pool, addr, &mut connection, probe).await?;
        // A HEAD answer has no body: the connection is free again.
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
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(json.clone()))
    };
    let response = exchange(pool, addr, &mut connection, post).await?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(AttemptError::PostStatus {
            status,
            answer: answer_excerpt(response.into_body()).await,
        });
    }
    // The event is stored once the recorder says 200; reading the body to its end only decides
    // whether the connection can be kept.
    if Limited::new(response.into_body(), MAX_OK_BODY)
        .collect()
        .await
        .is_ok()
    {
        pool.checkin(addr, connection);
    }
    Ok(Answer::Stored)
}

/// Sends a request on `connection`. When a connection that served requests before turns out to
/// be closed before the request got an answer, the request is sent once more on a new
/// connection: the recorder most likely closed it as idle while the request went out, and did
/// not act on it (Go's `net/http` retries such requests on a fresh connection too).
async fn exchange(
    pool: &ConnectionPool,
    addr: SocketAddr,
    connection: &mut Connection,
    request: impl Fn() -> Result<Request<EventBody>, http::Error>,
) -> Result<Response<Incoming>, AttemptError> {
    match send(connection, request().map_err(AttemptError::Request)?).await {
        Ok(response) => Ok(response),
        Err(error) if connection.reused && closed_early(&error) => {
            tracing::debug!(%addr, %error, "idle recorder connection closed; reconnecting");
            *connection = pool.connect(addr).await?;
            send(connection, request().map_err(AttemptError::Request)?)
                .await
                .map_err(AttemptError::Http)
        }
        Err(error) => Err(AttemptError::Http(error)),
    }
}

async fn send(
    connection: &mut Connection,
    request: Request<EventBody>,
) -> Result<Response<Incoming>, hyper::Error> {
    // An HTTP/1.1 connection takes the next request only once the last answer has been read.
    connection.sender.ready().await?;
    let response = connection.sender.send_request(request).await?;
    connection.reused = true;
    Ok(response)
}

/// Whether the connection ended before the recorder answered: closed while idle, or the request
/// never went out.
fn closed_early(error: &hyper::Error) -> bool {
    error.is_closed() || error.is_canceled() || error.is_incomplete_message()
}

/// The start of a refusal's body (kube-recorder sends `{"error": "..."}`), as text.
async fn answer_excerpt(mut body: Incoming) -> String {
    let mut read = BytesMut::new();
    while read.len() < ANSWER_EXCERPT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "reading the recorder's refusal");
                break;
            }
            None => break,
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
