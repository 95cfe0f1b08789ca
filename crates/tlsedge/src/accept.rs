//! A bounded accept loop: at most N connections at once, no new ones after shutdown, and a wait
//! for the open ones afterwards.
//!
//! The loop owns three things: the [`TcpListener`], one connection slot per connection allowed at
//! once (a [`Semaphore`]) and the shutdown signal (a [`watch::Receiver<bool>`]). [`BoundedListener::next`]
//! first waits for a free slot, then for a connection, and hands both out together
//! ([`Accepted`]); the slot goes back when the caller drops it, normally when the connection
//! ends. Shutdown, asked for by sending `true` or by dropping the sender, ends the loop at either
//! wait. [`BoundedListener::close`] then closes the socket and [`Draining::wait`] waits for the
//! slots still out, for at most a grace period.
//!
//! What a server does with a connection (TLS, HTTP, per-client limits, tasks) stays with the
//! server.
//!
//! Behind an L4 forwarder that speaks the PROXY protocol, [`read_proxy_header`] reads the
//! forwarder's header from a connection before TLS, and not one byte more.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::proxy_protocol::{self, ParseError, Parsed, ProxyHeader, MAX_HEADER_LEN};

/// A [`TcpListener`] that hands out at most `max_connections` connections at once and stops on
/// shutdown.
///
/// ```no_run
/// # async fn example() -> std::io::Result<()> {
/// use std::time::Duration;
/// use tlsedge::accept::BoundedListener;
///
/// let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let mut listener = BoundedListener::new(socket, 100, stopped);
/// # drop(stop);
/// while let Some(accepted) = listener.next().await {
///     tokio::spawn(async move {
///         // ... serve accepted.stream ...
///         drop(accepted.slot);
///     });
/// }
/// let all_finished = listener.close().wait(Duration::from_secs(10)).await;
/// # let _ = all_finished;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct BoundedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max_connections: usize,
    shutdown: watch::Receiver<bool>,
}

/// One accepted connection and the slot it holds.
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted {
    /// The connection.
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// The connection's slot: drop it when the connection ends (dropping it earlier lets one more
    /// connection in).
    pub slot: ConnectionSlot,
}

/// A connection's place among the `max_connections` a [`BoundedListener`] allows at once;
/// returned when dropped.
#[derive(Debug)]
#[must_use = "the slot is returned as soon as it is dropped"]
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
}

impl BoundedListener {
    /// Accepts from `listener`, at most `max_connections` at once (clamped to at least 1 and at
    /// most [`Semaphore::MAX_PERMITS`]), until `shutdown` is `true` or its sender is dropped.
    pub fn new(
        listener: TcpListener,
        max_connections: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            shutdown,
        }
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The number of connections allowed at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Connections handed out whose slot has not been returned yet.
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.slots.available_permits()
    }

    /// The next connection, once a slot is free; `None` once shutdown is asked for (`true` sent,
    /// or the sender dropped), then on every later call.
    ///
    /// An accept error (EMFILE, ECONNABORTED, ...) is logged at warn, its slot returned, and
    /// accepting goes on. Shutdown wins over a connection waiting at the same moment.
    /// Cancel safe: a call dropped before it completes accepts nothing.
    pub async fn next(&mut self) -> Option<Accepted> {
        loop {
            let permit = tokio::select! {
                biased;
                () = stopped(&mut self.shutdown) => return None,
                permit = self.slots.clone().acquire_owned() => permit.ok()?,
            };
            let (stream, peer) = tokio::select! {
                biased;
                () = stopped(&mut self.shutdown) => return None,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // EMFILE and the like: the slot goes back, and accepting goes on.
                        tracing::warn!(%error, "accept failed");
                        continue;
                    }
                },
            };
            return Some(Accepted {
                stream,
                peer,
                slot: ConnectionSlot { _permit: permit },
            });
        }
    }

    /// Stops listening: the socket is closed (new connections are refused by the system), while
    /// connections already handed out keep their slots. Wait for them with [`Draining::wait`].
    pub fn close(self) -> Draining {
        Draining {
            slots: self.slots,
            max_connections: self.max_connections,
        }
    }
}

/// The slots of a closed [`BoundedListener`], for waiting until its connections have ended.
#[derive(Debug)]
pub struct Draining {
    slots: Arc<Semaphore>,
    max_connections: usize,
}

impl Draining {
    /// Connections whose slot has not been returned yet.
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.slots.available_permits()
    }

    /// Waits until every slot is back, for at most `grace`: true when all connections ended in
    /// time, false when the grace period ran out first.
    pub async fn wait(self, grace: Duration) -> bool {
        tokio::time::timeout(grace, self.all_returned())
            .await
            .is_ok()
    }

    async fn all_returned(&self) {
        // `acquire_many` takes a u32; MAX_PERMITS is larger on 64-bit targets.
        let mut held = Vec::new();
        let mut missing = self.max_connections;
        while missing > 0 {
            let chunk = u32::try_from(missing).unwrap_or(u32::MAX);
            match self.slots.acquire_many(chunk).await {
                Ok(permits) => held.push(permits),
                // Never closed; nothing to wait for if it were.
                Err(_) => return,
            }
            missing = missing.saturating_sub(usize::try_from(chunk).unwrap_or(missing));
        }
    }
}

/// Resolves once `true` is sent, or at once when the sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Why [`read_proxy_header`] found no header.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The bytes are not a header (none was sent, or a malformed one).
    #[error(transparent)]
    Invalid(#[from] ParseError),
    /// The connection ended before a whole header arrived.
    #[error("the connection ended after {read} bytes, before a whole PROXY protocol header")]
    Closed {
        /// Bytes of the header read before the end.
        read: usize,
    },
    /// Reading failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a PROXY protocol header (v1 or v2, see [`proxy_protocol`]) from the start of `reader`,
/// and never a byte past it: what follows (a TLS ClientHello) is left in `reader` untouched. At
/// most [`MAX_HEADER_LEN`] bytes are read, each read asks only for bytes that certainly belong to
/// the header, and a malformed header is refused as soon as its bytes show it.
///
/// It has no deadline of its own: a server wraps it in one (`tokio::time::timeout`), so that a
/// client that sends nothing cannot hold its connection slot.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tlsedge::accept::ProxyHeaderError> {
/// use tlsedge::accept::read_proxy_header;
/// use tlsedge::proxy_protocol::ProxyHeader;
///
/// let mut connection: &[u8] = b"PROXY TCP4 100.64.0.7 10.0.0.1 50123 443\r\n\x16\x03\x01";
/// let header = read_proxy_header(&mut connection).await?;
/// assert!(matches!(header, ProxyHeader::Proxied { source, .. } if source.port() == 50123));
/// assert_eq!(connection, b"\x16\x03\x01");
/// # Ok(())
/// # }
/// ```
pub async fn read_proxy_header<R>(reader: &mut R) -> Result<ProxyHeader, ProxyHeaderError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut buffer = [0u8; MAX_HEADER_LEN];
    let mut filled = 0;
    loop {
        let needed = match proxy_protocol::parse(&buffer[..filled])? {
            Parsed::Complete { header, .. } => return Ok(header),
            Parsed::Incomplete { needed } => needed,
        };
        // The parser never asks past MAX_HEADER_LEN; the bound is kept here all the same.
        let end = filled.saturating_add(needed).min(buffer.len());
        if end <= filled {
            return Err(ParseError::V2TooLong(filled).into());
        }
        match reader.read(&mut buffer[filled..end]).await? {
            0 => return Err(ProxyHeaderError::Closed { read: filled }),
            n => filled += n,
        }
    }
}
