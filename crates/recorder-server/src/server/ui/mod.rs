//! The web UI on the read surface: pages and assets embedded in the binary, a login that turns a
//! viewer token into a session cookie, search over recorded output, live views and seal status.
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /` | redirect to `/ui/` |
//! | `GET /ui/` | the list of recordings and events (HTML; its data comes from the read API) |
//! | `GET /ui/recordings/{id}` | one recording: player, metadata, seal status; follows it while it is recorded (a shareable URL) |
//! | `GET /ui/assets/{file}` | the pages' scripts and styles and the vendored asciinema-player, with an `ETag` |
//! | `POST /ui/login` | `{"token": "..."}` (JSON only) → 204 and an `HttpOnly`, `SameSite=Strict` session cookie; 401 for an unknown token |
//! | `POST /ui/logout` | ends the session, 204 |
//! | `GET /api/whoami` | the viewer's name and how it was identified (viewers only) |
//! | `GET /api/recordings/{id}/live` | Server-Sent Events: the cast so far, then each event as it is written, `event: done` at the end (viewers only) |
//! | `GET /api/recordings/watch` | Server-Sent Events: `changed` whenever the index changes, so a list shows new sessions at once (viewers only) |
//! | `GET /api/recordings/{id}/verify` | the recording's seal, checked now (viewers only) |
//!
//! Pages carry no data: everything shown comes from the JSON endpoints, which check the viewer
//! like the rest of the read API; an unauthorised browser gets the login form or a "not allowed"
//! message. Every read-surface answer carries the headers of [`headers`].

pub(crate) mod assets;
pub(crate) mod headers;
pub(crate) mod live;
pub(crate) mod search;
pub(crate) mod session;
pub(crate) mod verify;

use std::sync::Arc;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{watch, Semaphore};

use super::App;

/// Live streams (followed recordings and list watchers) served at once; more get 503.
pub(crate) const MAX_LIVE_STREAMS: usize = 256;
/// Output searches and seal checks running at once (each reads files on the blocking pool);
/// more wait their turn.
pub(crate) const MAX_SCANS: usize = 2;

/// What the UI's handlers share.
#[derive(Debug)]
pub(crate) struct UiState {
    /// Browser sessions of token viewers.
    pub(crate) sessions: session::Sessions,
    /// Failed logins by address.
    pub(crate) login_failures: session::LoginFailures,
    /// Slots of live streams.
    pub(crate) live_slots: Arc<Semaphore>,
    /// Slots of file scans (search, verify).
    pub(crate) scan_slots: Semaphore,
    /// Becomes true when the server stops: live streams end then, rather than holding the
    /// shutdown for its whole grace period.
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl UiState {
    pub(crate) fn new(shutdown: watch::Receiver<bool>) -> Self {
        Self {
            shutdown,
            sessions: session::Sessions::new(session::SESSION_TTL, session::MAX_SESSIONS),
            login_failures: session::LoginFailures::default(),
            live_slots: Arc::new(Semaphore::new(MAX_LIVE_STREAMS)),
            scan_slots: Semaphore::new(MAX_SCANS),
        }
    }
}

/// The routes open to anyone who reaches the read listener: pages and assets (which hold no
/// data), login and logout.
pub(crate) fn public_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(assets::list_page))
        .route("/ui/recordings/{id}", get(assets::recording_page))
        .route("/ui/assets/{file}", get(assets::asset))
        .route("/ui/login", post(session::login))
        .route("/ui/logout", post(session::logout))
}

/// The UI's data routes, to be put behind the viewer check with the rest of the read API.
pub(crate) fn viewer_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/whoami", get(session::whoami))
        .route("/api/recordings/watch", get(live::watch_list))
        .route("/api/recordings/{id}/live", get(live::follow))
        .route("/api/recordings/{id}/verify", get(verify::recording_seal))
}
