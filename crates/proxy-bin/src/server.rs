//! The client-facing listener: the PROXY protocol header when behind a forwarder, TLS (with the
//! client certificate the handshake verified, under `--identity client-cert`), HTTP/1.1 with
//! upgrades, limits (in all and per client address) and graceful shutdown. Who the caller is gets
//! decided per request (`identity`).
//!
//! Under `--proxy-protocol` the caller's address is the one the forwarder's header names: a
//! connection from outside `--proxy-protocol-from` is closed at once (its header could claim any
//! caller); a trusted one must send a valid header within `--header-timeout`, else it is closed.
//! The header's source address then stands for the caller everywhere: the per-caller connection
//! limit (taken once the header is read, so a slow header holds only its global slot, and that
//! for at most the header timeout), whois, logs. A v2 `LOCAL` header is the forwarder's own
//! connection (a health check): the spec says to use the real endpoints, so the caller is the
//! forwarder's address, which whois normally does not know (401). A header that names no TCP
//! client (v1 `UNKNOWN`, v2 `PROXY` over UDP, Unix or an unspecified family) is closed: the spec
//! lets a receiver refuse it, and using the forwarder's address for someone else's connection
//! would give that someone the forwarder's identity.

use std::future::Future as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::State;
use axum::Extension;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tlsedge::accept::{read_proxy_header, BoundedListener};
use tlsedge::proxy_protocol::ProxyHeader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::caller_limit::CallerLimit;
use crate::identity::{ClientCertificate, ConnectionContext};
use crate::metrics::ProxyHeaderRefusal;
use crate::upstream::lane::UpstreamLane;
use crate::workers::ConnectionWorkers;

/// `--proxy-protocol`: every connection starts with a PROXY protocol header, accepted only from
/// these forwarders.
#[derive(Debug, Clone)]
pub(crate) struct ProxyProtocol {
    trusted: Arc<[IpNet]>,
}

impl ProxyProtocol {
    /// Headers accepted from connections whose address is in one of `trusted`.
    pub(crate) fn new(trusted: Vec<IpNet>) -> ProxyProtocol {
        ProxyProtocol {
            trusted: trusted.into(),
        }
    }

    /// Whether a connection from `ip` may send a header (IPv4 peers of a dual-stack listener,
    /// `::ffff:a.b.c.d`, are checked as IPv4 too).
    fn trusts(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.trusted
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }
}

/// Limits applied to client connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Connections served at once; the accept loop waits for a free slot beyond this.
    pub(crate) max_connections: usize,
    /// Connections served at once from one client address; further ones are closed at once.
    pub(crate) max_connections_per_caller: usize,
    /// Time for the TLS handshake and for each request head.
    pub(crate) header_timeout: Duration,
    /// Time in-flight requests get after shutdown is asked for.
    pub(crate) shutdown_grace: Duration,
}

/// What serves each accepted connection: its TLS and the threads it runs on.
pub(crate) struct ConnectionService {
    /// The TLS handshake.
    pub(crate) acceptor: TlsAcceptor,
    /// The worker threads connections run on.
    pub(crate) workers: Arc<ConnectionWorkers>,
}

/// Serves client connections until `shutdown` becomes true (or its sender is dropped), then
/// drains. With `proxy_protocol`, each connection first gives its caller's address in a PROXY
/// protocol header.
pub(crate) async fn serve(
    listener: TcpListener,
    service: ConnectionService,
    app: Arc<App>,
    limits: ConnectionLimits,
    proxy_protocol: Option<ProxyProtocol>,
    shutdown: watch::Receiver<bool>,
) {
    let ConnectionService { acceptor, workers } = service;
    let mut listener = BoundedListener::new(listener, limits.max_connections, shutdown.clone());
    let per_caller = Arc::new(CallerLimit::new(limits.max_connections_per_caller));
    while let Some(accepted) = listener.next().await {
        let (stream, peer, slot) = (accepted.stream, accepted.peer, accepted.slot);
        let behind_forwarder = proxy_protocol.is_some();
        if let Some(proxy_protocol) = &proxy_protocol {
            if !proxy_protocol.trusts(peer.ip()) {
                app.metrics
                    .proxy_header_refused(ProxyHeaderRefusal::UntrustedSource);
                tracing::debug!(%peer, "connection closed: not from --proxy-protocol-from");
                continue;
            }
        }
        let acceptor = acceptor.clone();
        let app = app.clone();
        let per_caller = per_caller.clone();
        let shutdown = shutdown.clone();
        // The connection moves to its worker's runtime: registered with that runtime's I/O
        // driver, not the accept loop's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%peer, %error, "connection closed: cannot hand it to a worker");
                continue;
            }
        };
        workers.spawn(async move {
            let mut stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%peer, %error, "connection closed: a worker cannot take it");
                    return;
                }
            };
            let caller = if behind_forwarder {
                match caller_from_header(&mut stream, peer, limits.header_timeout).await {
                    Ok(caller) => caller,
                    Err(why) => {
                        app.metrics.proxy_header_refused(why);
                        return;
                    }
                }
            } else {
                peer
            };
            let Some(caller_slot) = per_caller.try_acquire(caller.ip()) else {
                app.metrics.connection_over_caller_limit();
                tracing::debug!(peer = %caller, "connection closed: this address has --max-connections-per-caller open");
                return;
            };
            serve_connection(stream, caller, acceptor, app, limits, shutdown).await;
            drop(caller_slot);
            drop(slot);
        });
    }
    let draining = listener.close();
    tracing::info!("shutting down: waiting for in-flight requests");
    if draining.wait(limits.shutdown_grace).await {
        tracing::info!("all connections finished");
    } else {
        tracing::warn!(
            grace = ?limits.shutdown_grace,
            "shutdown grace period over; cutting remaining connections"
        );
    }
}

/// The caller's address from the forwarder's PROXY protocol header on the connection from
/// `forwarder`, read within `timeout` (logged at debug); or why the connection is to be closed.
async fn caller_from_header(
    stream: &mut TcpStream,
    forwarder: SocketAddr,
    timeout: Duration,
) -> Result<SocketAddr, ProxyHeaderRefusal> {
    match tokio::time::timeout(timeout, read_proxy_header(stream)).await {
        Ok(Ok(ProxyHeader::Proxied {
            version, source, ..
        })) => {
            let caller = SocketAddr::new(source.ip().to_canonical(), source.port());
            tracing::debug!(%forwarder, peer = %caller, %version, "PROXY protocol header read");
            Ok(caller)
        }
        Ok(Ok(ProxyHeader::Local)) => {
            tracing::debug!(%forwarder, "PROXY protocol LOCAL: the forwarder's own connection");
            Ok(forwarder)
        }
        Ok(Ok(header)) => {
            tracing::debug!(%forwarder, ?header, "connection closed: its PROXY protocol header names no TCP client");
            Err(ProxyHeaderRefusal::UnknownClient)
        }
        Ok(Err(error)) => {
            tracing::debug!(%forwarder, %error, "connection closed: no valid PROXY protocol header");
            Err(ProxyHeaderRefusal::Invalid)
        }
        Err(_) => {
            tracing::debug!(%forwarder, ?timeout, "connection closed: no PROXY protocol header within --header-timeout");
            Err(ProxyHeaderRefusal::Timeout)
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let _active = app.metrics.connection_opened();
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            app.metrics.tls_handshake_failed();
            let refused_certificate = error
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|inner| matches!(inner, rustls::Error::InvalidCertificate(_)));
            if refused_certificate {
                // Worth an operator's attention (a caller with an expired or foreign
                // certificate), unlike the scanners and aborted connections below.
                tracing::info!(%peer, %error, "TLS handshake refused: the client certificate failed verification");
            } else {
                tracing::debug!(%peer, %error, "TLS handshake failed");
            }
            return;
        }
        Err(_) => {
            app.metrics.tls_handshake_failed();
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let client_cert = ClientCertificate::from_handshake(tls.get_ref().1.peer_certificates());
    if let Some(certificate) = &client_cert {
        match certificate.principal() {
            Ok(principal) => {
                tracing::debug!(%peer, user = principal.user, groups = ?principal.groups, "client certificate verified")
            }
            Err(why) => {
                tracing::debug!(%peer, why, "client certificate verified, but names no user")
            }
        }
    }
    let context = Arc::new(ConnectionContext { peer, client_cert });
    // This connection's own upstream connection, driven below in this task.
    let (lane, lane_driver) = UpstreamLane::new();
    let lane = app.upstream_lanes.then_some(lane);
    // Every request of the connection goes to `route` with who the connection is, its future
    // held in hyper's slot for the request in flight: no router, and no box per request.
    let requests_app = app.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // The lane goes as an argument, not in the request's extensions: inserting it there
        // allocated a map and a box for every request.
        let response = crate::proxy::route(
            State(requests_app.clone()),
            Extension(context.clone()),
            lane.clone(),
            request.map(axum::body::Body::new),
        );
        async move { Ok::<_, std::convert::Infallible>(response.await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::pin!(connection);
    let lane_driver = lane_driver.run();
    tokio::pin!(lane_driver);
    let served = async {
        tokio::select! {
            result = connection.as_mut() => result,
            _ = shutdown.changed() => {
                // Finish the request in flight, then close; idle connections close at once.
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        }
    };
    tokio::pin!(served);
    // The upstream connection's I/O runs in this task too; the driver never ends by itself. Each
    // turn polls the lane, the client connection, then the lane again, so that what one hands
    // the other moves on in the same turn: an answer the lane has just read completes the
    // request, which the client connection then writes out; a request the client connection has
    // just passed on goes upstream. (In any one order, one of the two directions would wait for
    // the task's next turn, behind every other connection of this worker.)
    let result = std::future::poll_fn(|cx| {
        if lane_driver.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(result) = served.as_mut().poll(cx) {
            return Poll::Ready(Some(result));
        }
        if lane_driver.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    let Some(result) = result else { return };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tlsedge::proxy_protocol::{v1_header, v2_header, v2_local_header};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A connection to a fresh listener: the client's end and the server's, with the client's
    /// address.
    async fn pair() -> (TcpStream, TcpStream, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        (client, server, peer)
    }

    #[tokio::test]
    async fn the_caller_is_the_headers_source_and_the_client_hello_stays_unread() {
        let caller: SocketAddr = "100.64.0.7:50123".parse().unwrap();
        let here: SocketAddr = "127.0.0.1:443".parse().unwrap();
        for header in [
            v1_header(caller, here),
            v2_header(caller, here, b"\x04\x00\x01x"),
        ] {
            let (mut client, mut server, forwarder) = pair().await;
            client.write_all(&header).await.unwrap();
            client.write_all(b"\x16\x03\x01").await.unwrap();
            let got = caller_from_header(&mut server, forwarder, Duration::from_secs(5)).await;
            assert_eq!(got, Ok(caller));
            let mut hello = [0u8; 3];
            server.read_exact(&mut hello).await.unwrap();
            assert_eq!(&hello, b"\x16\x03\x01");
        }
        // An IPv4 client in a TCP6 header counts as IPv4 (as tailscaled knows it).
        let mapped: SocketAddr = "[::ffff:100.64.0.7]:50123".parse().unwrap();
        let (mut client, mut server, forwarder) = pair().await;
        client
            .write_all(&v2_header(mapped, "[::1]:443".parse().unwrap(), b""))
            .await
            .unwrap();
        let got = caller_from_header(&mut server, forwarder, Duration::from_secs(5)).await;
        assert_eq!(got, Ok(caller));
    }

    #[tokio::test]
    async fn local_is_the_forwarder_unknown_and_garbage_are_refused() {
        let (mut client, mut server, forwarder) = pair().await;
        client.write_all(&v2_local_header()).await.unwrap();
        let got = caller_from_header(&mut server, forwarder, Duration::from_secs(5)).await;
        assert_eq!(got, Ok(forwarder));

        let (mut client, mut server, forwarder) = pair().await;
        client.write_all(b"PROXY UNKNOWN\r\n").await.unwrap();
        let got = caller_from_header(&mut server, forwarder, Duration::from_secs(5)).await;
        assert_eq!(got, Err(ProxyHeaderRefusal::UnknownClient));

        let (mut client, mut server, forwarder) = pair().await;
        client
            .write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03xxxxx")
            .await
            .unwrap();
        let got = caller_from_header(&mut server, forwarder, Duration::from_secs(5)).await;
        assert_eq!(got, Err(ProxyHeaderRefusal::Invalid));

        let (client, mut server, forwarder) = pair().await;
        drop(client);
        let got = caller_from_header(&mut server, forwarder, Duration::from_secs(5)).await;
        assert_eq!(got, Err(ProxyHeaderRefusal::Invalid));
    }

    #[tokio::test]
    async fn a_header_that_does_not_come_in_time_is_refused() {
        let (mut client, mut server, forwarder) = pair().await;
        client.write_all(b"PROXY TCP4 100.64.0.7").await.unwrap();
        let got = caller_from_header(&mut server, forwarder, Duration::from_millis(200)).await;
        assert_eq!(got, Err(ProxyHeaderRefusal::Timeout));
    }

    #[test]
    fn trusted_sources() {
        let trusted = ProxyProtocol::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "fd7a:115c:a1e0::/48".parse().unwrap(),
        ]);
        for (ip, trusts) in [
            ("127.0.0.1", true),
            ("::ffff:127.0.0.1", true),
            ("fd7a:115c:a1e0::5", true),
            ("100.64.0.7", false),
            ("::1", false),
            ("::ffff:10.0.0.1", false),
        ] {
            assert_eq!(trusted.trusts(ip.parse().unwrap()), trusts, "{ip}");
        }
    }
}
