//! Sending API events to a recorder: `HEAD /v2/event` then `POST /v2/event` over HTTP/1.1
//! (protocols section 5), as Tailscale's Kubernetes API server proxy does for grants with
//! `enableEvents`.
//!
//! Addresses are tried in order. A recorder answering 404 to the probe does not support events:
//! that ends the send at once with [`EventDelivery::Unsupported`], without trying further
//! addresses, because Tailscale's proxy warns and lets the request go on then. Any other failure
//! moves on to the next address.
//!
//! The proxy pays for this on every API request of an events-enabled caller, so the sender keeps
//! what it can: the probe's answer per address for [`EventConfig::probe_cache`], and idle
//! keep-alive connections per address. An event is serialised once and the same bytes go to
//! every address tried.

mod attempt;
mod connection_pool;
mod probe_cache;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{timeout_at, Instant};

use crate::dial::{Dialer, TcpDialer};
use attempt::{Answer, AttemptError};
use connection_pool::ConnectionPool;
use probe_cache::ProbeCache;

/// Limits and caching of an [`EventSender`], set once when the proxy starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventConfig {
    /// Limit on one dial (one TCP connect). Default 5 s, as for recordings.
    pub dial_timeout: Duration,
    /// Limit on one recorder: dial, probe and `POST` together. Default 10 s.
    pub request_timeout: Duration,
    /// Limit on trying all addresses of one send. Default 30 s.
    pub total_timeout: Duration,
    /// How long a recorder's answer to the probe (supported or unsupported) is reused before it
    /// is asked again. Failures are never cached. Default 30 s.
    pub probe_cache: Duration,
    /// Idle keep-alive connections kept per recorder address. Default 16.
    pub max_idle_connections: usize,
}

impl Default for EventConfig {
    fn default() -> Self {
        EventConfig {
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            probe_cache: Duration::from_secs(30),
            max_idle_connections: 16,
        }
    }
}

/// Where an event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventDelivery {
    /// A recorder answered 200 to the `POST`: the event is stored.
    Stored {
        /// The recorder that stored it.
        recorder: SocketAddr,
    },
    /// A recorder answered 404 to the `HEAD /v2/event` probe: it does not support events, and
    /// the event was not sent (Tailscale's proxy warns and goes on).
    Unsupported {
        /// The recorder that does not support events.
        recorder: SocketAddr,
    },
}

/// No recorder took the event. Its text lists every address tried with the reason, in order,
/// fit for an error message shown to a `kubectl` user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSendError {
    /// Each address tried, in order, with why it failed. Empty when there were no addresses.
    pub attempts: Vec<(SocketAddr, String)>,
}

impl fmt::Display for EventSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.attempts.is_empty() {
            return f.write_str("API event not sent: no recorder addresses");
        }
        f.write_str("API event not sent to any recorder: ")?;
        for (i, (addr, reason)) in self.attempts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{addr}: {reason}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EventSendError {}

/// Sends API events to recorders. Cheap to clone; clones share the probe cache and the idle
/// connections. Needs a Tokio runtime (connections are driven by spawned tasks).
#[derive(Clone)]
pub struct EventSender {
    inner: Arc<Inner>,
}

struct Inner {
    config: EventConfig,
    probes: ProbeCache,
    pool: ConnectionPool,
}

impl fmt::Debug for EventSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSender")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl EventSender {
    /// A sender that dials recorders over TCP ([`TcpDialer`]).
    pub fn new(config: EventConfig) -> EventSender {
        EventSender::with_dialer(config, Arc::new(TcpDialer))
    }

    /// A sender that reaches recorders through `dialer` (e.g. over the tailnet).
    pub fn with_dialer(config: EventConfig, dialer: Arc<dyn Dialer>) -> EventSender {
        let pool = ConnectionPool::new(dialer, config.dial_timeout, config.max_idle_connections);
        let probes = ProbeCache::new(config.probe_cache);
        EventSender {
            inner: Arc::new(Inner {
                config,
                probes,
                pool,
            }),
        }
    }

    /// Sends one event, serialised as JSON once, to the first recorder in `addrs` that takes it.
    ///
    /// An event that cannot be serialised (only possible for types whose `Serialize` fails) is
    /// reported as failing on every address, with the reason.
    pub async fn send<E: serde::Serialize + ?Sized>(
        &self,
        addrs: &[SocketAddr],
        event: &E,
    ) -> Result<EventDelivery, EventSendError> {
        match serde_json::to_vec(event) {
            Ok(json) => self.send_json(addrs, Bytes::from(json)).await,
            Err(error) if addrs.is_empty() => {
                tracing::debug!(%error, "API event not serialisable");
                Err(EventSendError {
                    attempts: Vec::new(),
                })
            }
            Err(error) => Err(EventSendError {
                attempts: addrs
                    .iter()
                    .map(|&addr| {
                        (
                            addr,
                            format!("the event is not serialisable as JSON: {error}"),
                        )
                    })
                    .collect(),
            }),
        }
    }

    /// Sends one event already serialised as a JSON object, like [`send`](Self::send).
    pub async fn send_json(
        &self,
        addrs: &[SocketAddr],
        json: Bytes,
    ) -> Result<EventDelivery, EventSendError> {
        let config = &self.inner.config;
        let deadline = Instant::now() + config.total_timeout;
        let mut attempts = Vec::new();
        for &addr in addrs {
            let now = Instant::now();
            if now >= deadline {
                let error = AttemptError::NotTried(config.total_timeout);
                attempts.push((addr, error.to_string()));
                continue;
            }
            let attempt_deadline = deadline.min(now + config.request_timeout);
            let result = timeout_at(
                attempt_deadline,
                attempt::attempt(&self.inner.probes, &self.inner.pool, addr, &json),
            )
            .await
            .unwrap_or_else(|_| {
                Err(if attempt_deadline < deadline {
                    AttemptError::Timeout(config.request_timeout)
                } else {
                    AttemptError::TotalTimeout(config.total_timeout)
                })
            });
            match result {
                Ok(Answer::Stored) => {
                    tracing::trace!(%addr, "API event stored");
                    return Ok(EventDelivery::Stored { recorder: addr });
                }
                Ok(Answer::Unsupported) => {
                    return Ok(EventDelivery::Unsupported { recorder: addr });
                }
                Err(error) => {
                    // Whatever the recorder said before, ask again next time: it may have been
                    // replaced by one that answers differently.
                    self.inner.probes.forget(addr);
                    let reason = error.reason();
                    tracing::debug!(%addr, %reason, "API event attempt failed");
                    attempts.push((addr, reason));
                }
            }
        }
        Err(EventSendError { attempts })
    }
}
