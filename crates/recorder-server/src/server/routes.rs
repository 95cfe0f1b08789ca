//! The routes of the recorder (see the table in [`super`]).

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use castfmt::protocol::{
    error_json, EVENT_PATH, JSON_CONTENT_TYPE, V1_RECORD_PATH, V2_RECORD_PATH,
};
use http::{header, StatusCode};

use super::{event_ingest, read_api, record, App};

/// All routes; without `v2`, `/v2/record` is not served (404), as by recorders before v2; without
/// `events`, `/v2/event` is not served (404), as by recorders without event support.
pub(crate) fn router(app: Arc<App>, v2: bool, events: bool) -> Router {
    let mut router = Router::new();
    if v2 {
        router = router.route(V2_RECORD_PATH, post(record::record_v2).head(ok));
    }
    if events {
        router = router.route(EVENT_PATH, post(event_ingest::post_event).head(ok));
    }
    router
        .route(V1_RECORD_PATH, post(record::record_v1))
        .route("/api/recordings", get(read_api::list_recordings))
        .route("/api/recordings/{id}", get(read_api::recording_cast))
        .route("/api/recordings/{id}/meta", get(read_api::recording_meta))
        .route("/api/events", get(read_api::list_events))
        .route("/healthz", get(ok))
        .with_state(app)
}

async fn ok() -> StatusCode {
    StatusCode::OK
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
