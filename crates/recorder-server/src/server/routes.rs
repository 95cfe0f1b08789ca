//! The routes of the recorder (see the table in [`super`]): the ingest surface (uploads, behind
//! [`auth::require_writer`]) and the read surface (behind [`auth::require_viewer`]), on one
//! listener or two.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use castfmt::protocol::{
    error_json, EVENTS_PATH, EVENT_PATH, JSON_CONTENT_TYPE, V1_RECORD_PATH, V2_RECORD_PATH,
};
use http::{header, StatusCode};

use super::{auth, event_batch, event_ingest, read_api, record, ui, App};

/// The upload routes: recordings and port-forward captures (`/record`, `/v2/record`) and API
/// events (`/v2/event`, and batches of them at `/v2/events`), for writers only. Without `v2`,
/// `/v2/record` is not served (404), as by recorders before v2; without `events`, neither event
/// path is served (404), as by recorders without event support.
fn ingest(app: &Arc<App>, v2: bool, events: bool) -> Router<Arc<App>> {
    let mut router = Router::new();
    if v2 {
        router = router.route(V2_RECORD_PATH, post(record::record_v2).head(ok));
    }
    if events {
        router = router
            .route(EVENT_PATH, post(event_ingest::post_event).head(ok))
            .route(
                EVENTS_PATH,
                post(event_batch::post_events).head(event_batch::probe_events),
            );
    }
    router
        .route(V1_RECORD_PATH, post(record::record_v1))
        .route_layer(from_fn_with_state(app.clone(), auth::require_writer))
}

/// The read API, for viewers only, and the web UI (its pages hold no data and are open; its
/// data routes are the viewers'), every answer with the UI's security headers.
fn read(app: &Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/api/recordings", get(read_api::list_recordings))
        .route("/api/recordings/{id}", get(read_api::recording_cast))
        .route("/api/recordings/{id}/meta", get(read_api::recording_meta))
        .route("/api/events", get(read_api::list_events))
        .merge(ui::viewer_routes())
        .route_layer(from_fn_with_state(app.clone(), auth::require_viewer))
        .merge(ui::public_routes())
        .layer(axum::middleware::map_response(ui::headers::secure))
}

/// `/healthz` (open), JSON answers for unknown paths and methods, the state.
fn finish(router: Router<Arc<App>>, app: Arc<App>, surface: &'static str) -> Router {
    router
        .route("/healthz", get(ok))
        .fallback(move |request: Request| not_found(request, surface))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// Both surfaces on one listener.
pub(crate) fn shared_router(app: Arc<App>, v2: bool, events: bool) -> Router {
    let both = ingest(&app, v2, events).merge(read(&app));
    finish(both, app, "recorder")
}

/// The ingest listener's routes.
pub(crate) fn ingest_router(app: Arc<App>, v2: bool, events: bool) -> Router {
    let routes = ingest(&app, v2, events);
    finish(routes, app, "ingest listener")
}

/// The read listener's routes.
pub(crate) fn read_router(app: Arc<App>) -> Router {
    let routes = read(&app);
    finish(routes, app, "read listener")
}

async fn ok() -> StatusCode {
    StatusCode::OK
}

async fn not_found(request: Request, surface: &'static str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint {} {} on the {surface}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// An error answer: `{"error": "..."}` with `status`.
pub(crate) fn error_response(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
        error_json(&message),
    )
        .into_response()
}
