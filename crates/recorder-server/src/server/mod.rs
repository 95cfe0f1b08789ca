//! The recorder server: Tailscale's recorder endpoints (the ingest surface) and a read API (the
//! read surface), on one port or on two ([`ServerOptions::read_listen`]). Writers and viewers
//! are checked as [`AccessOptions`] says; every read is recorded as an event of type
//! [`VIEW_EVENT_TYPE`].
//!
//! | Request | Protocol | Answer |
//! |---|---|---|
//! | `HEAD /v2/record` | h2c (clients check for HTTP/2) | 200 |
//! | `POST /v2/record` | h2c | 200 at once, then NDJSON `{"ack":N}` lines (N = bytes received so far) after data arrives (at most every 50 ms or 1 MiB while it keeps coming, and when it pauses) and at least every [`ServerOptions::ack_interval`] while idle; `{"error":"..."}` and end on failure |
//! | `POST /record` | HTTP/1.1, `Expect: 100-continue` | 100 when the body is first read, 200 when it has ended and is stored |
//! | `HEAD /v2/event` | either | 200 (404 without [`ServerOptions::events`]) |
//! | `POST /v2/event` | either | 200 once the event is durable; 400 not a JSON object; 413 too large (404 without [`ServerOptions::events`]) |
//! | `HEAD /v2/events` | either | 200 with `kap-max-batch-events` and `kap-max-batch-bytes` (our batch extension; 404 without [`ServerOptions::events`]) |
//! | `POST /v2/events` | either | NDJSON, one event per line: 200 once the good lines are durable, `{"stored":N,"rejected":[{"index":I,"error":".."}]}`; 413 over [`ServerOptions::max_event_bytes`] or 1024 events, 500 not stored: nothing of the batch is stored (404 without [`ServerOptions::events`]) |
//! | `GET /api/recordings` | either | the index entries the viewer may see, newest first |
//! | `GET /api/recordings/{id}` | either | the cast, `application/x-asciicast` (404 when the viewer may not see it) |
//! | `GET /api/recordings/{id}/meta` | either | one index entry (likewise) |
//! | `GET /api/events?user=&verb=&namespace=&since=&type=&id=&limit=` | either | matching events the viewer may see, oldest first |
//! | `GET /api/recordings?q=&user=&namespace=&pod=&container=&command=&since=&until=&outcome=&exit=&limit=` | either | the same, filtered; `q` searches the recorded output (case-insensitive) and adds each match's `match` excerpt |
//! | `GET /api/recordings/{id}/live` | either | Server-Sent Events: the cast so far, then each event as it is written, `event: done` at its end |
//! | `GET /api/recordings/watch` | either | Server-Sent Events: `changed` whenever an index entry is written |
//! | `GET /api/recordings/{id}/verify` | either | the recording's seal, checked now: `{"status": "verified"|"recording"|"failed"|"unsealed", "problems": [...]}` |
//! | `GET /api/whoami` | either | `{"name", "via"}` of the viewer |
//! | `GET /`, `/ui/`, `/ui/recordings/{id}`, `/ui/assets/{file}` | either | the web UI (pages hold no data; open to all), see `docs/web-ui.md` |
//! | `POST /ui/login`, `POST /ui/logout` | either | JSON `{"token"}` → 204 and a session cookie; logout ends it |
//! | `GET /healthz` | either | 200, on both listeners, unauthenticated |
//!
//! The upload routes answer 403 (JSON) to callers that are not writers; the read routes answer
//! 401 to callers that are not viewers (a web UI session cookie counts as its token). Every
//! answer of the read surface carries a strict Content-Security-Policy and the other headers of
//! `ui::headers`. A listener answers 404 (JSON) to the other surface's
//! paths.
//!
//! The protocol is told apart per connection from its first bytes (the HTTP/2 preface), as
//! Tailscale's clients speak HTTP/2 with prior knowledge (protocols section 5).

mod ack_stream;
mod audit;
mod auth;
mod event_batch;
mod event_ingest;
mod idle;
mod listener;
mod read_api;
mod record;
mod routes;
mod ui;
mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub use audit::VIEW_EVENT_TYPE;
pub use auth::{AccessOptions, CidrError, IpCidr, RECORDER_CAPABILITY};

use crate::error::ServerError;
use crate::events::appender::EventAppender;
use crate::store::Store;

/// Settings of a [`RecorderServer`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Address to listen on; port 0 picks a free port (see [`RecorderServer::addr`]). The ingest
    /// surface; also the read surface unless [`read_listen`](Self::read_listen) is given.
    pub listen: SocketAddr,
    /// Address of a separate listener for the read surface (the read API); `listen` then serves
    /// only uploads. Default none.
    pub read_listen: Option<SocketAddr>,
    /// Who may write and who may read (default: writers from loopback, no viewers).
    pub access: AccessOptions,
    /// The recording directory; created if missing.
    pub dir: PathBuf,
    /// Recordings streaming in at once; more are refused with 503 (a client then tries its next
    /// recorder). Default 1024.
    pub max_uploads: usize,
    /// Connections served at once; beyond this the server stops accepting until one ends.
    /// Default 4096.
    pub max_connections: usize,
    /// Largest event body; larger ones get 413. Default 16 MiB.
    pub max_event_bytes: usize,
    /// Event bodies buffered at once; further event requests wait. Default 32.
    pub max_concurrent_events: usize,
    /// Largest recording; the upload is cut (and marked incomplete) beyond it. Default none.
    pub max_recording_bytes: Option<u64>,
    /// Longest time between two acks of a `/v2/record` upload. Default 1 s.
    pub ack_interval: Duration,
    /// Serve protocol v2 (`/v2/record`). When false the recorder answers 404 there, like recorders
    /// that predate v2, so clients fall back to v1 (`/record`). Default true.
    pub v2: bool,
    /// Serve API events (`/v2/event`). When false the recorder answers 404 there, to the probe
    /// (`HEAD`) and to `POST` alike, like a recorder without event support: Tailscale's proxy then
    /// warns and lets requests go on unrecorded. Default true.
    pub events: bool,
    /// Time a connection has to send its first bytes and, over HTTP/1.1, each request head.
    /// Default 30 s.
    pub header_read_timeout: Duration,
    /// On shutdown, time in-flight uploads get to end by themselves before they are cut and
    /// marked incomplete. Default 10 s.
    pub shutdown_grace: Duration,
    /// The Ed25519 key recordings are sealed with (PKCS#8 PEM), created with `<key>.pub` beside
    /// it when missing. Default `DIR/signing-key.pem` (see [`crate::seal`]).
    pub signing_key: Option<PathBuf>,
    /// Remove finished recordings that ended more than this many days ago, unless held (see
    /// [`Store::sweep_retention`]). Default none: keep everything.
    pub retain_days: Option<u32>,
    /// Time between two retention sweeps (the first runs at start). Default 1 h.
    pub retention_interval: Duration,
    /// Encrypt recordings at rest to these age X25519 keys (`serve --encrypt-to`; see
    /// [`crate::crypt`]). Default none: casts are stored as they arrive.
    pub encrypt_to: Option<crate::crypt::Recipients>,
    /// Where finished recordings the directory no longer holds are read from: the bucket of
    /// `serve --storage s3` (see [`Store::read_through`]). Default none: the directory alone.
    pub storage_backend: Option<Arc<dyn crate::store::RecordingStorage>>,
}

impl ServerOptions {
    /// Default settings for `listen` and `dir`.
    pub fn new(listen: SocketAddr, dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            read_listen: None,
            access: AccessOptions::default(),
            dir: dir.into(),
            max_uploads: 1024,
            max_connections: 4096,
            max_event_bytes: 16 * 1024 * 1024,
            max_concurrent_events: 32,
            max_recording_bytes: None,
            ack_interval: Duration::from_secs(1),
            v2: true,
            events: true,
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            signing_key: None,
            retain_days: None,
            retention_interval: Duration::from_secs(3600),
            encrypt_to: None,
            storage_backend: None,
        }
    }
}

/// What request handlers share.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) store: Store,
    pub(crate) access: auth::Access,
    pub(crate) events: EventAppender,
    pub(crate) uploads: Arc<Semaphore>,
    pub(crate) event_slots: Semaphore,
    /// Becomes true when in-flight uploads must end now.
    pub(crate) cut: watch::Receiver<bool>,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_recording_bytes: Option<u64>,
    pub(crate) ack_interval: Duration,
    /// The web UI's sessions and stream slots.
    pub(crate) ui: ui::UiState,
}

/// A running recorder. Stop it with [`RecorderServer::shutdown`]; dropping it starts the same
/// shutdown without waiting for it.
#[derive(Debug)]
pub struct RecorderServer {
    addr: SocketAddr,
    read_addr: SocketAddr,
    store: Store,
    shutdown: watch::Sender<bool>,
    serve: JoinHandle<()>,
    serve_read: Option<JoinHandle<()>>,
    token_watcher: Option<JoinHandle<()>>,
    event_writer: JoinHandle<()>,
    retention: Option<JoinHandle<()>>,
}

/// Sweeps `store` every `interval` (the first time at once) until `shutdown` turns true.
async fn retention_loop(
    store: Store,
    days: u32,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match store
            .sweep_retention(days, crate::civil_time::unix_now())
            .await
        {
            Ok(report) => tracing::info!(
                days,
                removed = report.removed.len(),
                held = report.held.len(),
                finished = report.finished.len(),
                "retention sweep"
            ),
            Err(error) => tracing::error!(%error, "retention sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok((listener, bound))
}

impl RecorderServer {
    /// Prepares the directory (creating it, and marking recordings an earlier run left unfinished
    /// as incomplete), binds the listener and starts serving.
    pub async fn start(options: ServerOptions) -> Result<Self, ServerError> {
        let mut store =
            Store::create_sealed_with(&options.dir, options.signing_key.as_deref()).await?;
        if let Some(recipients) = options.encrypt_to.clone() {
            store = store.encrypt_to(recipients);
        }
        if let Some(backend) = options.storage_backend.clone() {
            store = store.read_through(backend);
        }
        store.recover().await?;
        let (listener, addr) = bind(options.listen).await?;
        let read_listener = match options.read_listen {
            Some(read_listen) => Some(bind(read_listen).await?),
            None => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (access, token_watcher) = auth::Access::new(&options.access, shutdown_rx.clone())?;
        let (events, event_writer) = EventAppender::spawn(store.events_dir());
        let retention = options.retain_days.map(|days| {
            tracing::info!(
                days,
                "retention: removing recordings older than this, unless held"
            );
            tokio::spawn(retention_loop(
                store.clone(),
                days,
                options.retention_interval,
                shutdown_rx.clone(),
            ))
        });
        let (cut, cut_rx) = watch::channel(false);
        let max_uploads = options.max_uploads.min(Semaphore::MAX_PERMITS);
        let uploads = Arc::new(Semaphore::new(max_uploads));
        let app = Arc::new(App {
            store: store.clone(),
            access,
            events,
            uploads: uploads.clone(),
            event_slots: Semaphore::new(options.max_concurrent_events.max(1)),
            cut: cut_rx,
            max_event_bytes: options.max_event_bytes,
            max_recording_bytes: options.max_recording_bytes,
            ack_interval: options.ack_interval,
            ui: ui::UiState::new(shutdown_rx.clone()),
        });
        let limits = listener::Limits {
            max_connections: options.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            header_read_timeout: options.header_read_timeout,
            shutdown_grace: options.shutdown_grace,
        };
        let (router, read_addr, serve_read) = match read_listener {
            Some((read_listener, read_addr)) => {
                // The read listener runs no uploads: its shutdown has none to wait for or cut.
                let no_uploads = listener::Uploads {
                    slots: Arc::new(Semaphore::new(0)),
                    max: 0,
                    cut: watch::channel(false).0,
                };
                let serve_read = tokio::spawn(listener::serve(
                    read_listener,
                    routes::read_router(app.clone()),
                    limits,
                    no_uploads,
                    shutdown_rx.clone(),
                ));
                tracing::info!(addr = %read_addr, "read listener");
                (
                    routes::ingest_router(app, options.v2, options.events),
                    read_addr,
                    Some(serve_read),
                )
            }
            None => (
                routes::shared_router(app, options.v2, options.events),
                addr,
                None,
            ),
        };
        let serve = tokio::spawn(listener::serve(
            listener,
            router,
            limits,
            listener::Uploads {
                slots: uploads,
                max: max_uploads,
                cut,
            },
            shutdown_rx,
        ));
        tracing::info!(%addr, dir = %store.dir().display(), "recorder listening");
        Ok(Self {
            addr,
            read_addr,
            store,
            shutdown,
            serve,
            serve_read,
            token_watcher,
            event_writer,
            retention,
        })
    }

    /// The address the server listens on: the ingest surface (and the read surface, unless it
    /// has a listener of its own).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the read surface: [`addr`](Self::addr) unless
    /// [`ServerOptions::read_listen`] was given.
    pub fn read_addr(&self) -> SocketAddr {
        self.read_addr
    }

    /// The recording directory the server writes.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops accepting, lets in-flight requests finish for [`ServerOptions::shutdown_grace`],
    /// then cuts the uploads still running (each is stored, fsynced and marked incomplete, and a
    /// `/v2/record` client gets an `{"error"}` line), and waits for the event log to be synced.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        if let Err(error) = self.serve.await {
            tracing::error!(%error, "server task failed");
        }
        if let Some(serve_read) = self.serve_read {
            if let Err(error) = serve_read.await {
                tracing::error!(%error, "read listener task failed");
            }
        }
        if let Some(watcher) = self.token_watcher {
            let _ = watcher.await;
        }
        if let Some(retention) = self.retention {
            let _ = retention.await;
        }
        if let Err(error) = self.event_writer.await {
            tracing::error!(%error, "event writer failed");
        }
        tracing::info!("recorder stopped");
    }
}
