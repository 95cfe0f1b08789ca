//! The recorder protocols: which address, which protocol, and starting the upload.
//!
//! Follows Tailscale's `ConnectToRecorder` (`sessionrecording/connect.go`): addresses are tried in
//! order, each dial bounded by [`RecorderConfig::dial_timeout`] and all of them together by
//! [`RecorderConfig::connect_timeout`]; on each address a `HEAD /v2/record` over h2c decides
//! between v2 (200 over HTTP/2) and v1. The probe exists because an HTTP/2 `POST` to an HTTP/1-only
//! server hangs until the body ends instead of failing. Unlike Tailscale, a failed dial is not
//! retried with v1 (a refused connection is refused for both); any other probe failure is.

mod monitor;
mod v1;
mod v2;

use std::net::SocketAddr;

use bytes::Bytes;
use castfmt::Protocol;
use http_body_util::channel::{Channel, Sender};
use http_body_util::{Either, Empty};
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at, Instant};

use crate::config::RecorderConfig;
use crate::dial::{Dialer, RecorderIo};
use crate::error::{AttemptError, AttemptFailure, ConnectError, UploadError};

/// The error an upload's body ends with when the client aborts it, so that the recorder sees an
/// incomplete upload (HTTP/2 `RST_STREAM`, or an HTTP/1.1 chunked body cut short) rather than a
/// complete one.
#[derive(Debug, thiserror::Error)]
#[error("recording upload aborted: {0}")]
pub(crate) struct UploadAborted(pub(crate) String);

/// The body type of every request the client sends.
pub(crate) type RequestBody = Either<Empty<Bytes>, Channel<Bytes, UploadAborted>>;

/// The writing end of an upload's streaming body.
pub(crate) type BodySender = Sender<Bytes, UploadAborted>;

/// Frames the upload body may queue before the writer waits for the connection.
pub(crate) const BODY_FRAMES: usize = 2;

/// A started upload.
pub(crate) struct Upload {
    pub(crate) addr: SocketAddr,
    pub(crate) protocol: Protocol,
    pub(crate) body: BodySender,
    /// Ends when the recorder's answer ends: `Ok` when it ended cleanly (acks then end of stream for
    /// v2, `200` for v1), `Err` with the reason otherwise.
    pub(crate) monitor: JoinHandle<Result<(), UploadError>>,
    /// The highest ack received (v2; stays 0 for v1, whose sender is gone at once).
    pub(crate) acked: tokio::sync::watch::Receiver<u64>,
}

fn new_body() -> (BodySender, RequestBody) {
    let (tx, body) = Channel::new(BODY_FRAMES);
    (tx, Either::Right(body))
}

/// Tries `addrs` in order and starts an upload on the first that works.
pub(crate) async fn connect(
    dialer: &dyn Dialer,
    addrs: &[SocketAddr],
    config: &RecorderConfig,
) -> Result<(Upload, Vec<AttemptFailure>), ConnectError> {
    connect_as(dialer, addrs, config, None).await
}

/// [`connect`], the upload sent with this `Content-Type` (a port-forward capture's; an asciicast
/// upload has none, as Tailscale's client sends it).
pub(crate) async fn connect_as(
    dialer: &dyn Dialer,
    addrs: &[SocketAddr],
    config: &RecorderConfig,
    content_type: Option<&'static str>,
) -> Result<(Upload, Vec<AttemptFailure>), ConnectError> {
    if addrs.is_empty() {
        return Err(ConnectError::NoAddresses);
    }
    let deadline = Instant::now() + config.connect_timeout;
    let mut failures = Vec::new();
    for &addr in addrs {
        if Instant::now() >= deadline {
            failures.push(AttemptFailure {
                addr,
                error: AttemptError::NotTried(config.connect_timeout),
            });
            continue;
        }
        let result = timeout_at(deadline, attempt(dialer, addr, config, content_type))
            .await
            .unwrap_or(Err(AttemptError::Timeout(config.connect_timeout)));
        match result {
            Ok(upload) => {
                tracing::debug!(%addr, protocol = ?upload.protocol, "session recording upload started");
                return Ok((upload, failures));
            }
            Err(error) => {
                tracing::debug!(%addr, %error, "session recorder attempt failed");
                failures.push(AttemptFailure { addr, error });
            }
        }
    }
    Err(ConnectError::AllFailed(failures))
}

async fn attempt(
    dialer: &dyn Dialer,
    addr: SocketAddr,
    config: &RecorderConfig,
    content_type: Option<&'static str>,
) -> Result<Upload, AttemptError> {
    let io = dial(dialer, addr, config).await?;
    match v2::probe(io, addr, config.probe_timeout).await {
        Ok(sender) => v2::start(sender, addr, config, content_type).await,
        Err(reason) => {
            tracing::debug!(%addr, %reason, "recorder does not speak v2; trying v1");
            let io = dial(dialer, addr, config).await?;
            v1::start(io, addr, config, content_type).await
        }
    }
}

async fn dial(
    dialer: &dyn Dialer,
    addr: SocketAddr,
    config: &RecorderConfig,
) -> Result<Box<dyn RecorderIo>, AttemptError> {
    match timeout(config.dial_timeout, dialer.dial(addr)).await {
        Err(_) => Err(AttemptError::DialTimeout(config.dial_timeout)),
        Ok(Err(e)) => Err(AttemptError::Dial(e)),
        Ok(Ok(io)) => Ok(io),
    }
}

fn uri(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}
