//! Accepting connections, serving HTTP/1.1 and h2c on each, and shutting down in phases.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tlsedge::accept::BoundedListener;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use super::auth::Peer;
use super::idle::Activity;

/// Time cut uploads get to store their data and tell their clients, before connections are
/// dropped.
const CUT_GRACE: Duration = Duration::from_secs(2);
/// Longest wait for cut uploads to be stored.
const STORE_GRACE: Duration = Duration::from_secs(30);
/// HTTP/2 pings find clients that vanished without closing (a recording may be idle for hours).
const H2_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// The largest HTTP/2 frame a client may send (`SETTINGS_MAX_FRAME_SIZE`): room for a whole
/// body chunk of a recorder client (64 KiB and the line that crosses it) in one frame.
const H2_MAX_FRAME: u32 = 256 * 1024;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
}

/// What shutdown needs to end uploads.
#[derive(Debug)]
pub(crate) struct Uploads {
    /// One permit per running upload.
    pub(crate) slots: Arc<Semaphore>,
    /// All permits.
    pub(crate) max: usize,
    /// Set to cut running uploads.
    pub(crate) cut: watch::Sender<bool>,
}

/// Serves until `shutdown` becomes true (or its sender is dropped), then drains in phases:
/// graceful (no new requests; HTTP/2 GOAWAY; in-flight requests go on) for `shutdown_grace`,
/// then uploads are cut and stored, then remaining connections are dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    uploads: Uploads,
    shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(Duration::from_secs(20))
        // Uploads are long streams of data: large frames mean fewer frames to parse and fewer
        // wake-ups per byte stored. (Windows stay at hyper's 1 MiB: they bound what a stalled
        // store holds per connection.)
        .max_frame_size(H2_MAX_FRAME);
    let builder = Arc::new(builder);
    let mut listener = BoundedListener::new(listener, limits.max_connections, shutdown.clone());
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Some(accepted) = listener.next().await else {
            break;
        };
        let (stream, peer, slot) = (accepted.stream, accepted.peer, accepted.slot);
        let builder = builder.clone();
        let router = router.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(
                stream,
                peer,
                router,
                &builder,
                limits.header_read_timeout,
                shutdown,
            )
            .await;
            tracing::trace!(%peer, "connection closed");
            drop(slot);
        });
    }
    // Closes the socket. The JoinSet, not the listener's slots, tells when connections are done.
    drop(listener);
    drop(router);
    tracing::info!(connections = connections.len(), "shutting down");
    let all = u32::try_from(uploads.max).unwrap_or(u32::MAX);
    // Uploads run in tasks of their own: one whose connection has just closed is still storing.
    let settled = async {
        drain(&mut connections).await;
        let _ = uploads.slots.acquire_many(all).await;
    };
    if tokio::time::timeout(limits.shutdown_grace, settled)
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "grace period over; cutting in-flight uploads");
    }
    uploads.cut.send_replace(true);
    if tokio::time::timeout(CUT_GRACE, drain(&mut connections))
        .await
        .is_err()
    {
        connections.abort_all();
        drain(&mut connections).await;
    }
    if tokio::time::timeout(STORE_GRACE, uploads.slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::error!("uploads still storing after {STORE_GRACE:?}; giving up on them");
    }
}

async fn drain(connections: &mut JoinSet<()>) {
    while connections.join_next().await.is_some() {}
}

/// Resolves once shutdown is asked for, or the server handle is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    idle_limit: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let requests = Arc::clone(&activity);
    // The access checks need the caller's address; the idle limit needs to know when requests
    // are in flight, from the head until the answer's body is done.
    let service = TowerToHyperService::new(
        router
            .map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(Peer(peer));
                request
            })
            .map_future(move |answer| {
                let in_flight = requests.begin();
                async move {
                    let response: axum::response::Response = answer.await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| axum::body::Body::new(in_flight.watch(body))),
                    )
                }
            }),
    );
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            connection.as_mut().await
        }
        // A connection on which no request has moved for as long as a request head may take:
        // one that never finished its first request (or its HTTP/2 preface), an HTTP/2 one
        // whose client keeps it open without streams, or one whose client does not take its
        // answers. Its slot goes to another.
        () = activity.still_for(idle_limit) => {
            tracing::debug!(%peer, "closing a connection on which nothing moved for {idle_limit:?}");
            connection.as_mut().graceful_shutdown();
            loop {
                match tokio::time::timeout(CUT_GRACE, connection.as_mut()).await {
                    Ok(result) => break result,
                    // A request that began just as the limit passed is let finish; a
                    // connection still stalled is dropped.
                    Err(_) if activity.moving() > 0 => {}
                    Err(_) => return,
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}
