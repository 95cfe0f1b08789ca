//! Keep-alive HTTP/1.1 connections to recorders: a bounded number in use per address, and a few
//! idle ones kept per address, so that an event usually costs one request on an open connection
//! rather than a dial and a handshake, and a burst of events cannot open more connections than a
//! recorder accepts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, Instant};

use crate::dial::Dialer;
use crate::error::AttemptError;

/// The body of every event request: empty for the probe, the event's JSON for the `POST`.
pub(super) type EventBody = Full<Bytes>;

/// How long an idle connection is kept unused. Recorders close idle connections themselves
/// (kube-recorder after 30 s), but one that does not would otherwise keep them open for as long
/// as the proxy runs, also when the address is no longer used; Go's `http.DefaultTransport`
/// keeps idle connections for 90 s (`IdleConnTimeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// An HTTP/1.1 connection to a recorder.
pub(super) struct Connection {
    pub(super) sender: SendRequest<EventBody>,
    /// Whether the connection was taken from the idle pool: the recorder may have closed it as
    /// idle just as a request went out on it.
    pub(super) from_pool: bool,
}

/// The right to use one connection to an address, held for a request's whole life (its answer's
/// body included). While held, the connection in use counts against
/// [`EventConfig::max_connections`](super::EventConfig::max_connections).
pub(super) struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
}

/// One recorder address: its idle connections and the slots for connections in use.
struct Address {
    idle: Vec<IdleConnection>,
    slots: Arc<Semaphore>,
}

impl Address {
    fn new(max_connections: usize) -> Self {
        Address {
            idle: Vec::new(),
            slots: Arc::new(Semaphore::new(max_connections)),
        }
    }
}

struct IdleConnection {
    sender: SendRequest<EventBody>,
    since: Instant,
}

/// Dials recorders and keeps idle connections to them.
pub(super) struct ConnectionPool {
    dialer: Arc<dyn Dialer>,
    dial_timeout: Duration,
    max_idle: usize,
    max_connections: usize,
    addresses: Mutex<HashMap<SocketAddr, Address>>,
}

impl ConnectionPool {
    /// `max_connections` is taken as at least 1: with none an event could never be sent.
    pub(super) fn new(
        dialer: Arc<dyn Dialer>,
        dial_timeout: Duration,
        max_idle: usize,
        max_connections: usize,
    ) -> Self {
        ConnectionPool {
            dialer,
            dial_timeout,
            max_idle,
            max_connections: max_connections.clamp(1, Semaphore::MAX_PERMITS),
            addresses: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a free slot for a connection to `addr`.
    pub(super) async fn slot(&self, addr: SocketAddr) -> ConnectionSlot {
        let slots = {
            let mut addresses = self
                .addresses
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            prune(&mut addresses, Instant::now());
            let address = addresses
                .entry(addr)
                .or_insert_with(|| Address::new(self.max_connections));
            Arc::clone(&address.slots)
        };
        let permit = slots
            .acquire_owned()
            .await
            .expect("the pool never closes its semaphores");
        ConnectionSlot { _permit: permit }
    }

    /// An idle connection to `addr` that is still open, or a new one; only with a slot.
    pub(super) async fn checkout(
        &self,
        addr: SocketAddr,
        slot: &ConnectionSlot,
    ) -> Result<Connection, AttemptError> {
        while let Some(mut sender) = self.take_idle(addr) {
            // Recorders close connections that stay idle (kube-recorder after 30 s without a
            // request head); those are seen closed here and dropped.
            if !sender.is_closed() && sender.ready().await.is_ok() {
                return Ok(Connection {
                    sender,
                    from_pool: true,
                });
            }
        }
        self.connect(addr, slot).await
    }

    /// A new connection to `addr`; only with a slot.
    pub(super) async fn connect(
        &self,
        addr: SocketAddr,
        _slot: &ConnectionSlot,
    ) -> Result<Connection, AttemptError> {
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
            from_pool: false,
        })
    }

    /// Keeps `connection` for later events, unless it is closed or enough are idle already.
    /// Called before the connection's slot is released, so that the next holder of the slot finds
    /// the connection rather than dialling another.
    pub(super) fn checkin(&self, addr: SocketAddr, connection: Connection) {
        if connection.sender.is_closed() {
            return;
        }
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The caller's slot keeps the entry from being pruned; `or_insert_with` is only a guard.
        let address = addresses
            .entry(addr)
            .or_insert_with(|| Address::new(self.max_connections));
        if address.idle.len() < self.max_idle {
            address.idle.push(IdleConnection {
                sender: connection.sender,
                since: Instant::now(),
            });
        }
    }

    /// The most recently used idle connection: the likeliest to be still open.
    fn take_idle(&self, addr: SocketAddr) -> Option<SendRequest<EventBody>> {
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let idle = addresses.get_mut(&addr)?.idle.pop()?;
        Some(idle.sender)
    }
}

/// Drops idle connections that are closed or unused for too long, and the entries of addresses
/// with no idle connection that no request holds or waits for a slot of, so that the map does
/// not grow with a rotating set of recorder addresses. A sweep of every entry: the proxy has a
/// handful of recorder addresses, with at most `max_idle` connections each.
fn prune(addresses: &mut HashMap<SocketAddr, Address>, now: Instant) {
    addresses.retain(|_, address| {
        address.idle.retain(|idle| {
            !idle.sender.is_closed() && now.duration_since(idle.since) < IDLE_TIMEOUT
        });
        // Every waiter and every slot holds a reference to the semaphore, and references are
        // only taken under the lock held here: the map's own is the last one when none is out.
        // Dropping an entry with slots out would let a second semaphore lift the bound.
        !address.idle.is_empty() || Arc::strong_count(&address.slots) > 1
    });
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::dial::DialFuture;

    /// Refuses every dial: the pool's bookkeeping is what is tested.
    struct Refused;

    impl Dialer for Refused {
        fn dial(&self, _addr: SocketAddr) -> DialFuture {
            Box::pin(async { Err(io::Error::from(io::ErrorKind::ConnectionRefused)) })
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([100, 64, 0, 1], port))
    }

    fn addresses(pool: &ConnectionPool) -> Vec<SocketAddr> {
        let mut addrs: Vec<_> = pool
            .addresses
            .lock()
            .expect("addresses")
            .keys()
            .copied()
            .collect();
        addrs.sort_unstable();
        addrs
    }

    #[tokio::test]
    async fn entries_of_addresses_no_longer_in_use_are_dropped() {
        let pool = ConnectionPool::new(Arc::new(Refused), Duration::from_secs(1), 16, 2);
        let held = pool.slot(addr(1)).await;
        for port in 2..50 {
            let slot = pool.slot(addr(port)).await;
            assert!(pool.checkout(addr(port), &slot).await.is_err());
        }
        // The held slot keeps its address; the last one is swept by the next slot taken.
        assert_eq!(addresses(&pool), [addr(1), addr(49)]);
        drop(held);
        let _slot = pool.slot(addr(60)).await;
        assert_eq!(addresses(&pool), [addr(60)]);
    }

    #[tokio::test]
    async fn a_slot_waited_for_keeps_its_address() {
        let pool = Arc::new(ConnectionPool::new(
            Arc::new(Refused),
            Duration::from_secs(1),
            16,
            1,
        ));
        let held = pool.slot(addr(1)).await;
        let waiter = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move {
                let _slot = pool.slot(addr(1)).await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // A sweep while the first slot is out and another waits leaves the entry, and with it
        // the bound.
        let _other = pool.slot(addr(2)).await;
        assert_eq!(addresses(&pool), [addr(1), addr(2)]);
        drop(held);
        waiter.await.expect("the waiter gets the slot");
    }
}
