//! Keep-alive HTTP/1.1 connections to recorders, a few idle ones kept per address, so that an
//! event usually costs one request on an open connection rather than a dial and a handshake.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::timeout;

use super::attempt::AttemptError;
use crate::dial::Dialer;

/// The body of every event request: empty for the probe, the event's JSON for the `POST`.
pub(super) type EventBody = Full<Bytes>;

/// An HTTP/1.1 connection to a recorder.
pub(super) struct Connection {
    pub(super) sender: SendRequest<EventBody>,
    /// Whether the connection has carried a request before, so that the recorder may have
    /// closed it as idle just as a new request went out.
    pub(super) reused: bool,
}

/// Dials recorders and keeps idle connections to them.
pub(super) struct ConnectionPool {
    dialer: Arc<dyn Dialer>,
    dial_timeout: Duration,
    max_idle: usize,
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<EventBody>>>>,
}

impl ConnectionPool {
    pub(super) fn new(dialer: Arc<dyn Dialer>, dial_timeout: Duration, max_idle: usize) -> Self {
        ConnectionPool {
            dialer,
            dial_timeout,
            max_idle,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// An idle connection to `addr` that is still open, or a new one.
    pub(super) async fn checkout(&self, addr: SocketAddr) -> Result<Connection, AttemptError> {
        while let Some(mut sender) = self.take_idle(addr) {
            // Recorders close connections that stay idle (kube-recorder after 30 s without a
            // request head); those are seen closed here and dropped.
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Ok(Connection {
                    sender,
                    reused: true,
                });
            }
        }
        self.connect(addr).await
    }

    /// A new connection to `addr`.
    pub(super) async fn connect(&self, addr: SocketAddr) -> Result<Connection, AttemptError> {
        let io = match timeout(self.dial_timeout, self.dialer.dial(addr)).await {
            Err(_) => return Err(AttemptError::DialTimeout(self.dial_timeout)),
            Ok(Err(error)) => return Err(AttemptError::Dial(error)),
            Ok(Ok(io)) => io,
        };
        let (sender, connection) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(AttemptError::Http)?;
        tokio::spawn(async move {
            // Ends when the recorder closes the connection or every handle to it is dropped.
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "recorder event connection ended");
            }
        });
        Ok(Connection {
            sender,
            reused: false,
        })
    }

    /// Keeps `connection` for later events, unless it is closed or enough are idle already.
    pub(super) fn checkin(&self, addr: SocketAddr, connection: Connection) {
        if connection.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let senders = idle.entry(addr).or_default();
        if senders.len() < self.max_idle {
            senders.push(connection.sender);
        }
    }

    /// The most recently used idle connection: the likeliest to be still open.
    fn take_idle(&self, addr: SocketAddr) -> Option<SendRequest<EventBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.get_mut(&addr).and_then(Vec::pop)
    }
}
