//! The client-facing listener: TLS, HTTP/1.1 with upgrades, limits (in all and per client
//! address) and graceful shutdown. Who the caller is gets decided per request (`identity_cache`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tlsedge::accept::BoundedListener;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::caller_limit::CallerLimit;
use crate::identity::ConnectionContext;

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

/// Serves client connections until `shutdown` becomes true (or its sender is dropped), then
/// drains.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    app: Arc<App>,
    limits: ConnectionLimits,
    shutdown: watch::Receiver<bool>,
) {
    let mut listener = BoundedListener::new(listener, limits.max_connections, shutdown.clone());
    let per_caller = CallerLimit::new(limits.max_connections_per_caller);
    while let Some(accepted) = listener.next().await {
        let (stream, peer, slot) = (accepted.stream, accepted.peer, accepted.slot);
        let Some(caller_slot) = per_caller.try_acquire(peer.ip()) else {
            app.metrics.connection_over_caller_limit();
            tracing::debug!(%peer, "connection closed: this address has --max-connections-per-caller open");
            drop(stream);
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, acceptor, router, app, limits, shutdown).await;
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

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
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
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            app.metrics.tls_handshake_failed();
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let context = Arc::new(ConnectionContext { peer });
    // The router serves every request of the connection, each carrying who the connection is.
    let service = TowerToHyperService::new(
        tower::ServiceBuilder::new()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(context.clone());
                request
            })
            .service(router),
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.changed() => {
            // Finish the request in flight, then close; idle connections close at once.
            connection.as_mut().graceful_shutdown();
            connection.as_mut().await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}
