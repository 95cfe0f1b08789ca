//! A client connection's own upstream connection, driven in the client connection's task.
//!
//! The default route forwards one request at a time per client connection (the proxy serves
//! HTTP/1.1), so each client connection gets one kept-alive HTTP/1.1 connection upstream of its
//! own, opened at its first forwarded request. Its I/O runs in the same task as the client
//! connection ([`LaneDriver`], polled beside the client connection in `server.rs`): a request goes
//! out, its answer comes back and its body streams to the client without handing anything to
//! another task or thread, as an event-loop proxy does. A pooled client instead passes every
//! request to a connection task and the answer back, several wake-ups per request, often across
//! threads. Upgrades (exec, attach, port-forward) keep using the pooled client.
//!
//! The headers sent are exactly the pooled client's: the caller's, cleaned
//! ([`super::UpstreamHeaders`]), with the proxy's credential added last; plus `Host`, which the
//! connection-level client does not write itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use url::Url;

/// Time to open a TCP connection (per address), and then to finish the TLS handshake, upstream
/// (as the pooled client's connect timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keep-alive on upstream connections (as the pooled client's): a watch across a silently
/// dead upstream fails instead of hanging.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

type ConnectionTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where and how to open an upstream connection: the upstream's address, TLS (with its name)
/// when it is https, and the `Host` header its requests carry.
#[derive(Clone)]
pub(crate) struct LaneConnector {
    /// `http://HOST:PORT` of the upstream: what the TCP connector resolves and connects to.
    address: http::Uri,
    /// TCP: connect timeout per address (happy eyeballs between them), keep-alive, no Nagle,
    /// as the pooled client's.
    tcp: HttpConnector,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// `Host` for requests: the URL's authority.
    authority: http::HeaderValue,
    /// Upstream connections lanes may hold at once (`--max-upstream-connections`); a lane
    /// holds one permit for as long as it lives once it has a connection.
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for LaneConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneConnector")
            .field("address", &self.address)
            .field("tls", &self.tls.is_some())
            .field("free", &self.permits.available_permits())
            .finish()
    }
}

impl LaneConnector {
    /// A connector for the upstream at `base`, with `tls` for an https one, opening at most
    /// `max_connections` connections for lanes at once.
    pub(crate) fn new(
        base: &Url,
        tls: Option<Arc<rustls::ClientConfig>>,
        max_connections: usize,
    ) -> anyhow::Result<Self> {
        let host = base
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("upstream {base} has no host"))?;
        let port = base
            .port_or_known_default()
            .ok_or_else(|| anyhow::anyhow!("upstream {base} has no port"))?;
        let authority = match base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let tls = match tls {
            Some(config) => {
                // IP literals come bracketed in URLs; the TLS name is the bare address.
                let name = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let name = ServerName::try_from(name)
                    .map_err(|e| anyhow::anyhow!("upstream host {host:?}: {e}"))?;
                Some((tokio_rustls::TlsConnector::from(config), name))
            }
            None => None,
        };
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(TCP_KEEPALIVE));
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Ok(Self {
            address: format!("http://{host}:{port}").parse()?,
            tcp,
            tls,
            authority: http::HeaderValue::from_str(&authority)?,
            permits: Arc::new(Semaphore::new(max_connections)),
        })
    }

    /// The `Host` header value for requests upstream.
    pub(crate) fn authority(&self) -> &http::HeaderValue {
        &self.authority
    }

    /// Opens a connection: its request sender, and its I/O to drive.
    async fn connect(&self) -> std::io::Result<(SendRequest<Body>, ConnectionTask)> {
        use tower::Service as _;
        let mut tcp = self.tcp.clone();
        let stream = tcp
            .call(self.address.clone())
            .await
            .map_err(std::io::Error::other)?
            .into_inner();
        match &self.tls {
            Some((connector, name)) => {
                let tls =
                    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), stream))
                        .await
                        .map_err(|_| {
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!("no TLS handshake within {CONNECT_TIMEOUT:?}"),
                            )
                        })??;
                handshake(TokioIo::new(tls)).await
            }
            None => handshake(TokioIo::new(stream)).await,
        }
    }
}

async fn handshake<T>(io: TokioIo<T>) -> std::io::Result<(SendRequest<Body>, ConnectionTask)>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await
        .map_err(std::io::Error::other)?;
    let task: ConnectionTask = Box::pin(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upstream connection ended with an error");
        }
    });
    Ok((sender, task))
}

/// One client connection's upstream connection (see the module docs). Made with its
/// [`LaneDriver`] by [`UpstreamLane::new`].
#[derive(Debug)]
pub(crate) struct UpstreamLane {
    sender: Mutex<Option<SendRequest<Body>>>,
    tasks: mpsc::UnboundedSender<ConnectionTask>,
    /// The lane's share of `--max-upstream-connections`, taken by [`UpstreamLane::reserve`].
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

/// Drives the I/O of a lane's upstream connections; poll it beside the client connection, in
/// the same task. It never ends by itself.
pub(crate) struct LaneDriver {
    tasks: mpsc::UnboundedReceiver<ConnectionTask>,
    running: FuturesUnordered<ConnectionTask>,
}

impl std::fmt::Debug for LaneDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneDriver")
            .field("running", &self.running.len())
            .finish()
    }
}

impl UpstreamLane {
    /// A lane and the driver of its connections.
    pub(crate) fn new() -> (Arc<UpstreamLane>, LaneDriver) {
        let (tasks, receiver) = mpsc::unbounded_channel();
        let lane = Arc::new(UpstreamLane {
            sender: Mutex::new(None),
            tasks,
            permit: Mutex::new(None),
        });
        let driver = LaneDriver {
            tasks: receiver,
            running: FuturesUnordered::new(),
        };
        (lane, driver)
    }

    /// Whether the lane may carry a request: it holds one of `connector`'s permits already, or
    /// takes one now. When every permit is taken (`--max-upstream-connections` lanes hold an
    /// upstream connection), the caller uses the pooled client instead.
    pub(crate) fn reserve(&self, connector: &LaneConnector) -> bool {
        let mut permit = self.permit.lock().unwrap_or_else(PoisonError::into_inner);
        if permit.is_none() {
            *permit = connector.permits.clone().try_acquire_owned().ok();
        }
        permit.is_some()
    }

    /// Sends `request` on the lane's connection (opened through `connector` when there is none
    /// or it closed) and waits for the answer's head. A request the connection could not take
    /// (closed by the server while idle) is sent again on a new connection, once.
    pub(crate) async fn send(
        &self,
        connector: &LaneConnector,
        request: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, LaneError> {
        if self
            .permit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            return Err(LaneError::Connect(std::io::Error::other(
                "the lane holds no upstream connection slot (reserve first)",
            )));
        }
        let mut request = request;
        let mut retried = false;
        loop {
            // Opening is boxed: a TCP connect and TLS handshake make a large future, and inline
            // it would make every request's future as large, though a lane opens a connection
            // once.
            let mut sender = match self.idle_sender() {
                Some(sender) => sender,
                None => Box::pin(self.open(connector)).await?,
            };
            if sender.ready().await.is_err() {
                // Closed while idle: a new connection.
                sender = Box::pin(self.open(connector)).await?;
                sender.ready().await.map_err(LaneError::Exchange)?;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.put_back(sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    // Never written: safe to send again on a new connection.
                    Some(unsent) if !retried => {
                        tracing::debug!(error = %error.error(), "upstream connection closed before the request was sent; reconnecting");
                        retried = true;
                        request = unsent;
                    }
                    _ => return Err(LaneError::Exchange(error.into_error())),
                },
            }
        }
    }

    fn idle_sender(&self) -> Option<SendRequest<Body>> {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|sender| !sender.is_closed())
    }

    fn put_back(&self, sender: SendRequest<Body>) {
        *self.sender.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
    }

    async fn open(&self, connector: &LaneConnector) -> Result<SendRequest<Body>, LaneError> {
        let (sender, task) = connector.connect().await.map_err(LaneError::Connect)?;
        // The driver runs in this very task; it polls the connection from the next poll on.
        self.tasks.send(task).map_err(|_| {
            LaneError::Connect(std::io::Error::other("the client connection ended"))
        })?;
        Ok(sender)
    }
}

impl LaneDriver {
    /// Drives the lane's connections; pending forever once there is nothing to drive.
    pub(crate) async fn run(mut self) {
        loop {
            tokio::select! {
                task = self.tasks.recv() => match task {
                    Some(task) => self.running.push(task),
                    None => break,
                },
                Some(()) = self.running.next(), if !self.running.is_empty() => {}
            }
        }
        while self.running.next().await.is_some() {}
        std::future::pending::<()>().await;
    }
}

/// Why a lane could not carry a request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LaneError {
    /// Opening the connection failed.
    #[error("connecting")]
    Connect(#[source] std::io::Error),
    /// Sending the request or reading the answer's head failed.
    #[error("exchanging the request")]
    Exchange(#[source] hyper::Error),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt as _;
    use hyper::service::service_fn;

    use super::*;

    /// A plain HTTP server answering every request with its own connection's number; keeps
    /// connections alive unless `close` is set. Returns its URL and the connections it accepted.
    async fn server(close: bool) -> (Url, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let number = counter.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let host = request
                                .headers()
                                .get(http::header::HOST)
                                .map(|h| h.to_str().unwrap_or_default().to_owned())
                                .unwrap_or_default();
                            async move {
                                Ok::<_, Infallible>(http::Response::new(format!("{number} {host}")))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(!close)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (url, accepted)
    }

    /// Sends `count` GETs one after the other on one lane; their bodies.
    async fn exchange(url: &Url, count: usize) -> Vec<String> {
        let connector = LaneConnector::new(url, None, 4).unwrap();
        let (lane, driver) = UpstreamLane::new();
        assert!(lane.reserve(&connector));
        let requests = async {
            let mut bodies = Vec::new();
            for _ in 0..count {
                let mut request = http::Request::new(Body::empty());
                *request.uri_mut() = "/version".parse().unwrap();
                request
                    .headers_mut()
                    .insert(http::header::HOST, connector.authority().clone());
                let response = lane.send(&connector, request).await.unwrap();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                bodies.push(String::from_utf8(body.to_vec()).unwrap());
            }
            bodies
        };
        // The driver runs in this task, beside the requests, as in server.rs.
        tokio::select! {
            bodies = requests => bodies,
            () = driver.run() => unreachable!("the driver never ends"),
        }
    }

    #[tokio::test]
    async fn requests_of_one_lane_share_one_kept_alive_connection() {
        let (url, accepted) = server(false).await;
        let bodies = exchange(&url, 3).await;
        let host = url.authority().to_owned();
        assert_eq!(bodies, vec![format!("1 {host}"); 3]);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        let (url, accepted) = server(true).await;
        let bodies = exchange(&url, 3).await;
        let host = url.authority().to_owned();
        assert_eq!(
            bodies,
            vec![
                format!("1 {host}"),
                format!("2 {host}"),
                format!("3 {host}")
            ]
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let connector = LaneConnector::new(&url, None, 4).unwrap();
        let (lane, _driver) = UpstreamLane::new();
        assert!(lane.reserve(&connector));
        let error = lane
            .send(&connector, http::Request::new(Body::empty()))
            .await
            .expect_err("nothing listens");
        assert!(matches!(error, LaneError::Connect(_)), "{error}");
    }
}

#[cfg(test)]
mod limit_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lanes_beyond_the_limit_are_refused_a_slot_until_one_is_dropped() {
        let url = Url::parse("http://127.0.0.1:1").unwrap();
        let connector = LaneConnector::new(&url, None, 2).unwrap();
        let lanes: Vec<_> = (0..3).map(|_| UpstreamLane::new().0).collect();
        assert!(lanes[0].reserve(&connector));
        assert!(lanes[0].reserve(&connector), "a lane keeps its slot");
        assert!(lanes[1].reserve(&connector));
        assert!(
            !lanes[2].reserve(&connector),
            "the third lane uses the pool"
        );
        drop(lanes.into_iter().next());
        let late = UpstreamLane::new().0;
        assert!(
            late.reserve(&connector),
            "a dropped lane's slot is free again"
        );
    }
}
