//! The read API: recordings and events as JSON, casts as files.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use bytes::{Bytes, BytesMut};
use castfmt::protocol::CAST_CONTENT_TYPE;
use castfmt::PORT_FORWARD_CAPTURE_CONTENT_TYPE;
use http::{header, StatusCode, Uri};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::AsyncReadExt as _;

use super::audit::{self, View};
use super::auth::Viewer;
use super::routes::error_response;
use super::ui::search::{self, RecordingFilter};
use super::App;
use crate::error::StoreError;
use crate::events::{parse_instant, EventFilter};
use crate::recording_meta::{RecordingKind, RecordingMeta};

/// Events returned when the query gives no `limit`.
pub(crate) const DEFAULT_EVENT_LIMIT: usize = 1000;
/// Most events one query returns.
pub(crate) const MAX_EVENT_LIMIT: usize = 100_000;

/// `GET /api/recordings`: the entries the viewer may see, filtered as the query says (see
/// [`RecordingFilter`]; `q` searches the recorded output of those entries only).
pub(crate) async fn list_recordings(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    uri: Uri,
) -> Response {
    let filter = match RecordingFilter::from_uri(&uri) {
        Ok(filter) => filter,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, message),
    };
    let list = match app.store.list().await {
        Ok(list) => list,
        Err(error) => return store_error(error),
    };
    let visible: Vec<RecordingMeta> = list
        .into_iter()
        .filter(|meta| viewer.may_see_recording(meta) && filter.matches_meta(meta))
        .collect();
    let listed = match search::search_output(&app, &filter, visible).await {
        Ok(listed) => listed,
        Err(response) => return response,
    };
    let view = View {
        action: "list-recordings",
        recording: None,
        query: uri.query(),
        status: StatusCode::OK,
        results: Some(listed.len()),
    };
    if let Err(message) = audit::record(&app, &viewer, view).await {
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, message);
    }
    Json(listed).into_response()
}

/// The index entry of `id` when the viewer may see it. A recording the viewer may not see is
/// answered as one that does not exist, so its existence is not told either. Either way the read
/// is recorded.
pub(crate) async fn visible_meta(
    app: &App,
    viewer: &Viewer,
    id: &str,
    action: &'static str,
) -> Result<RecordingMeta, Response> {
    let (result, status) = match app.store.get(id).await {
        Ok(meta) if viewer.may_see_recording(&meta) => (Ok(meta), StatusCode::OK),
        Ok(_) => {
            tracing::warn!(viewer = %viewer.name, %id, "recording outside the viewer's namespaces and users");
            let error = StoreError::NotFound(id.to_owned());
            (Err(store_error(error)), StatusCode::NOT_FOUND)
        }
        Err(error) => {
            let response = store_error(error);
            let status = response.status();
            (Err(response), status)
        }
    };
    let view = View {
        action,
        recording: Some(id),
        query: None,
        status,
        results: None,
    };
    audit::record(app, viewer, view)
        .await
        .map_err(|message| error_response(StatusCode::INTERNAL_SERVER_ERROR, message))?;
    result
}

/// `GET /api/recordings/{id}/meta`
pub(crate) async fn recording_meta(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    match visible_meta(&app, &viewer, &id, "recording-meta").await {
        Ok(meta) => Json(meta).into_response(),
        Err(response) => response,
    }
}

/// `GET /api/recordings/{id}`: the cast (or port-forward capture) as stored so far, streamed.
pub(crate) async fn recording_cast(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let encrypted = match visible_meta(&app, &viewer, &id, "download").await {
        Ok(meta) => meta.encrypted,
        Err(response) => return response,
    };
    let opened = if encrypted {
        app.store.open_encrypted(&id).await
    } else {
        app.store.open_recording(&id).await
    };
    let (kind, file) = match opened {
        Ok(opened) => opened,
        Err(error) => return store_error(error),
    };
    // An encrypted recording is served as the age file it is, a download for `play --identity`
    // or `age -d`, never as a cast a player would try to read.
    let disposition = encrypted.then(|| {
        let suffix = match kind {
            RecordingKind::PortForwardCapture => "pfcap",
            _ => "cast",
        };
        format!("attachment; filename=\"{id}.{suffix}.age\"")
    });
    let content_type = match kind {
        _ if encrypted => crate::crypt::AGE_CONTENT_TYPE,
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
    let mut response = (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(chunks),
    )
        .into_response();
    if let Some(value) = disposition.and_then(|d| http::HeaderValue::from_str(&d).ok()) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
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

/// `GET /api/events`: a JSON array of the matching events the viewer may see, each as stored.
pub(crate) async fn list_events(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw_query): RawQuery,
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
        limit: None,
    };
    let limit = query
        .limit
        .unwrap_or(DEFAULT_EVENT_LIMIT)
        .min(MAX_EVENT_LIMIT);
    // A query reads the whole event log: as many at once as searches may run.
    let Ok(_slot) = app.ui.scan_slots.acquire().await else {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_owned());
    };
    let events = match visible_events(&app, &viewer, filter, limit).await {
        Ok(events) => events,
        Err(error) => return store_error(error),
    };
    let view = View {
        action: "list-events",
        recording: None,
        query: Some(raw_query.as_deref().unwrap_or("")),
        status: StatusCode::OK,
        results: Some(events.len()),
    };
    if let Err(message) = audit::record(&app, &viewer, view).await {
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, message);
    }
    Json(events).into_response()
}

/// The last `limit` events matching `filter` that the viewer may see, in one pass over the
/// event log: events the viewer may not see are passed over as they are read, so the query
/// holds at most `limit` events whatever the log holds.
async fn visible_events(
    app: &App,
    viewer: &Viewer,
    mut filter: EventFilter,
    limit: usize,
) -> Result<Vec<Box<RawValue>>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    filter.limit = Some(limit);
    if viewer.sees_all() {
        return app.store.events(&filter).await;
    }
    if let Some(namespace) = viewer.only_namespace() {
        match &filter.namespace {
            Some(asked) if asked != namespace => return Ok(Vec::new()),
            _ => filter.namespace = Some(namespace.to_owned()),
        }
    }
    let viewer = viewer.clone();
    app.store
        .events_where(&filter, move |event| viewer.may_see_event(event))
        .await
}

pub(crate) fn store_error(error: StoreError) -> Response {
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
