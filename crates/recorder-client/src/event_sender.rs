//! Sending API events to a recorder: `HEAD /v2/event` then `POST /v2/event` over HTTP/1.1
//! (protocols section 5), as Tailscale's Kubernetes API server proxy does for grants with
//! `enableEvents`.
//!
//! Addresses are tried in order, and the first that stores the event ends the send. A recorder
//! answering 404 to the probe does not support events: it is noted and skipped, as Tailscale's
//! proxy does (`k8s-operator/api-proxy/proxy.go`, `recordRequestAsEvent`, warns and continues
//! with the next address). Any other failure also moves on to the next address. When no address
//! stores the event, the send is [`EventDelivery::Unsupported`] if every address lacks event
//! support (the proxy warns and lets the request go on), and otherwise an [`EventSendError`]
//! that lists every address, those without event support included.
//!
//! The proxy pays for this on every API request of an events-enabled caller, so the sender keeps
//! what it can: the probe's answer per address for [`EventConfig::probe_cache`], and idle
//! keep-alive connections per address. An event is serialised once and the same bytes go to
//! every address tried. A `POST` is sent again on a new connection only when it never went out
//! (see `exchange`), so that a recorder cannot store one event twice; an event can still reach
//! two recorders when one stores it and fails to answer, as with Tailscale's proxy.
//!
//! Connections per address are bounded by [`EventConfig::max_connections`]: a burst of events
//! waits for a connection rather than opening more than a recorder accepts.
//!
//! **Batches** (our extension; `docs/protocols.md` section 5): before the first event to an
//! address the sender asks `HEAD /v2/events`. A recorder that answers 200 (kube-recorder) takes
//! many events in one `POST /v2/events` and stores them with one write and one sync: the events
//! of concurrent requests then wait in a queue while the address's batches are out
//! ([`EventConfig::max_batches_in_flight`]) and leave together (see `batcher`). Each send still
//! waits for its own event's answer, so an event is stored (durable) before `send` returns
//! `Stored`. A recorder that answers anything else speaks only Tailscale's protocol and gets one
//! `POST /v2/event` per event, as above; that answer is cached like the event probe's.

mod answer_body;
mod attempt;
mod batch_post;
mod batcher;
mod connection_pool;
mod exchange;
mod probe_cache;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{timeout_at, Instant};

use crate::dial::{Dialer, TcpDialer};
use crate::error::AttemptError;
use attempt::{Answer, UNSUPPORTED_REASON};
use batch_post::BatchLimits;
use batcher::{BatchSettings, Batchers};
use connection_pool::ConnectionPool;
use probe_cache::ProbeCache;

/// The size of a request event without a body (a `GET`), give or take: what the buffer an
/// event is serialised into starts with.
const TYPICAL_EVENT_BYTES: usize = 1024;

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
    /// Connections open to one recorder address at once, idle ones included; an event waits for
    /// one when all are in use, and the wait counts against
    /// [`request_timeout`](Self::request_timeout). Default 64; 0 is taken as 1.
    pub max_connections: usize,
    /// Send events in batches (`POST /v2/events`) to recorders that offer them. Default true;
    /// false sends every event alone (`POST /v2/event`), as Tailscale's proxy does.
    pub batches: bool,
    /// Events in one batch at most (lowered to what the recorder announces). Default 256; 0 is
    /// taken as 1.
    pub max_batch_events: usize,
    /// Bytes of one batch's body at most (lowered to what the recorder announces); an event
    /// larger than this goes alone. Default 1 MiB.
    pub max_batch_bytes: usize,
    /// Batches out to one recorder address at once; events that arrive while they are all out
    /// wait and leave together in the next. Default 1: the recorder syncs one batch at a time
    /// anyway, and measured on kube-recorder one batch out gave batches about twice as large as
    /// two, halving the recorder's CPU per event for little more latency (the sync dominates
    /// the round trip). 0 is taken as 1.
    pub max_batches_in_flight: usize,
    /// Events waiting for a batch to one address at most; a send waits for room, within
    /// [`request_timeout`](Self::request_timeout). Default 4096.
    pub max_queued_events: usize,
}

impl Default for EventConfig {
    fn default() -> Self {
        EventConfig {
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            probe_cache: Duration::from_secs(30),
            max_idle_connections: 16,
            max_connections: 64,
            batches: true,
            max_batch_events: 256,
            max_batch_bytes: 1024 * 1024,
            max_batches_in_flight: 1,
            max_queued_events: 4096,
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
    /// Every recorder answered 404 to the `HEAD /v2/event` probe (now or within
    /// [`EventConfig::probe_cache`]): none supports events, and the event was not sent
    /// (Tailscale's proxy warns and goes on).
    Unsupported {
        /// The first recorder tried; all of them lack event support.
        recorder: SocketAddr,
    },
}

/// No recorder took the event, and at least one failed (rather than lacking event support). Its
/// text lists every address with the reason, in order, fit for an error message shown to a
/// `kubectl` user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSendError {
    /// Each address, in order, with why it did not take the event; an address without event
    /// support has the reason "does not support API events (404 to HEAD /v2/event)". Empty when
    /// there were no addresses.
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
    /// Answers to `HEAD /v2/event`: whether the recorder supports events.
    probes: ProbeCache<bool>,
    /// Answers to `HEAD /v2/events`: whether the recorder takes batches, and how large.
    batch_probes: ProbeCache<Option<BatchLimits>>,
    /// Shared with the tasks that finish reading answer bodies before keeping a connection.
    pool: Arc<ConnectionPool>,
    batchers: Batchers,
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
        let pool = Arc::new(ConnectionPool::new(
            dialer,
            config.dial_timeout,
            config.max_idle_connections,
            config.max_connections,
        ));
        let probes = ProbeCache::new(config.probe_cache);
        let batch_probes = ProbeCache::new(config.probe_cache);
        let batchers = Batchers::new(
            Arc::clone(&pool),
            BatchSettings {
                max_in_flight: config.max_batches_in_flight,
                max_queued: config.max_queued_events,
                request_timeout: config.request_timeout,
            },
        );
        EventSender {
            inner: Arc::new(Inner {
                config,
                probes,
                batch_probes,
                pool,
                batchers,
            }),
        }
    }

    /// Sends one event, serialised as JSON once, to the first recorder in `addrs` that stores it
    /// ([`EventDelivery::Stored`]). Recorders that answer 404 to the probe are skipped; when no
    /// address stores the event, the send is [`EventDelivery::Unsupported`] if every address
    /// lacks event support, and otherwise an [`EventSendError`] listing every address.
    ///
    /// An event that cannot be serialised (only possible for types whose `Serialize` fails) is
    /// reported as failing on every address, with the reason.
    pub async fn send<E: serde::Serialize + ?Sized>(
        &self,
        addrs: &[SocketAddr],
        event: &E,
    ) -> Result<EventDelivery, EventSendError> {
        // Room for a typical event at once, rather than growing the buffer a few times per
        // event: every API request of an events-enabled caller comes here.
        let mut json = Vec::with_capacity(TYPICAL_EVENT_BYTES);
        match serde_json::to_writer(&mut json, event) {
            Ok(()) => self.send_json(addrs, Bytes::from(json)).await,
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
        // Every address that did not store the event, in order, with the reason.
        let mut attempts = Vec::new();
        let mut first_unsupported = None;
        let mut any_failed = false;
        for &addr in addrs {
            let now = Instant::now();
            if now >= deadline {
                let error = AttemptError::NotTried(config.total_timeout);
                attempts.push((addr, error.to_string()));
                any_failed = true;
                continue;
            }
            let attempt_deadline = deadline.min(now + config.request_timeout);
            let result = timeout_at(attempt_deadline, self.inner.offer(addr, &json))
                .await
                .unwrap_or_else(|_| {
                    Err(if attempt_deadline < deadline {
                        AttemptError::NoAnswer(config.request_timeout)
                    } else {
                        AttemptError::Timeout(config.total_timeout)
                    })
                });
            match result {
                Ok(Answer::Stored) => {
                    tracing::trace!(%addr, "API event stored");
                    return Ok(EventDelivery::Stored { recorder: addr });
                }
                Ok(Answer::Unsupported) => {
                    tracing::debug!(%addr, "recorder does not support API events; trying the next");
                    first_unsupported.get_or_insert(addr);
                    attempts.push((addr, UNSUPPORTED_REASON.to_owned()));
                }
                Err(error) => {
                    // Whatever the recorder said before, ask again next time: it may have been
                    // replaced by one that answers differently.
                    self.inner.probes.forget(addr);
                    self.inner.batch_probes.forget(addr);
                    let reason = error.reason();
                    tracing::debug!(%addr, %reason, "API event attempt failed");
                    attempts.push((addr, reason));
                    any_failed = true;
                }
            }
        }
        match first_unsupported {
            Some(recorder) if !any_failed => Ok(EventDelivery::Unsupported { recorder }),
            _ => Err(EventSendError { attempts }),
        }
    }
}

impl Inner {
    /// Offers the event to the recorder at `addr`: in a batch if it takes batches (asked once
    /// per [`EventConfig::probe_cache`]), else alone.
    async fn offer(&self, addr: SocketAddr, json: &Bytes) -> Result<Answer, AttemptError> {
        if self.config.batches && self.probes.get(addr) != Some(false) {
            let limits = match self.batch_probes.get(addr) {
                Some(limits) => limits,
                None => {
                    let own = BatchLimits {
                        max_events: self.config.max_batch_events.max(1),
                        max_bytes: self.config.max_batch_bytes,
                    };
                    let limits = batch_post::probe_batches(&self.pool, addr, own).await?;
                    self.batch_probes.set(addr, limits);
                    if limits.is_some() {
                        // A recorder that takes batches takes events.
                        self.probes.set(addr, true);
                    }
                    limits
                }
            };
            if let Some(limits) = limits {
                self.batchers.submit(addr, limits, json.clone()).await?;
                return Ok(Answer::Stored);
            }
        }
        attempt::attempt(&self.probes, &self.pool, addr, json).await
    }
}
