//! The read API: recordings and events as JSON, casts as files.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{Bytes, BytesMut};
use castfmt::protocol::CAST_CONTENT_TYPE;
use castfmt::PORT_FORWARD_CAPTURE_CONTENT_TYPE;
use http::{header, StatusCode};
use serde::Deserialize;
use tokio::io::AsyncReadExt as _;

use super::routes::error_response;
use super::App;
use crate::error::StoreError;
use crate::events::{parse_instant, EventFilter};
use crate::recording_meta::RecordingKind;

/// Events returned when the query gives no `limit`.
pub(crate) const DEFAULT_EVENT_LIMIT: usize = 1000;
/// Most events one query returns.
pub(crate) const MAX_EVENT_LIMIT: usize = 100_000;

/// `GET /api/recordings`
pub(crate) async fn list_recordings(State(app): State<Arc<App>>) -> Response {
    match app.store.list().await {
        Ok(list) => Json(list).into_response(),
        Err(error) => store_error(error),
    }
}

/// `GET /api/recordings/{id}/meta`
pub(crate) async fn recording_meta(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Response {
    match app.store.get(&id).await {
        Ok(meta) => Json(meta).into_response(),
        Err(error) => store_error(error),
    }
}

/// `GET /api/recordings/{id}`: the cast (or port-forward capture) as stored so far, streamed.
pub(crate) async fn recording_cast(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Response {
    let (kind, file) = match app.store.open_recording(&id).await {
        Ok(opened) => opened,
        Err(error) => return store_error(error),
    };
    let content_type = match kind {
        RecordingKind::PortForwardCapture => PORT_FORWARD_CAPTURE_CONTENT_TYPE,
        _ => CAST_CONTENT_TYPE,
    };
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok::<Bytes, std::io::Error>(buf.freeze()), Some(file))),
            Err(error) => Some((Err(error), None)),
        }
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// Query of `GET /api/events`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventQuery {
    user: Option<String>,
    verb: Option<String>,
    namespace: Option<String>,
    since: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    id: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/events`: a JSON array of the matching events, each as stored.
pub(crate) async fn list_events(
    State(app): State<Arc<App>>,
    Query(query): Query<EventQuery>,
) -> Response {
    let since = match query
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_instant)
        .transpose()
    {
        Ok(since) => since,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
    let filter = EventFilter {
        user: non_empty(query.user),
        verb: non_empty(query.verb),
        namespace: non_empty(query.namespace),
        since,
        event_type: non_empty(query.event_type),
        id: non_empty(query.id),
        limit: Some(
            query
                .limit
                .unwrap_or(DEFAULT_EVENT_LIMIT)
                .min(MAX_EVENT_LIMIT),
        ),
    };
    match app.store.events(&filter).await {
        Ok(events) => Json(events).into_response(),
        Err(error) => store_error(error),
    }
}

fn store_error(error: StoreError) -> Response {
    let status = match &error {
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::InvalidId(_) => StatusCode::BAD_REQUEST,
        _ => {
            tracing::error!(%error, "read API");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error_response(status, error.to_string())
}
