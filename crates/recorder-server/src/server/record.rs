//! `POST /v2/record` and `POST /record`: recording uploads.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use castfmt::protocol::ACK_CONTENT_TYPE;
use castfmt::{Protocol, PORT_FORWARD_CAPTURE_CONTENT_TYPE};
use http::{header, HeaderMap, StatusCode};
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::ack_stream::ack_body;
use super::routes::error_response;
use super::upload::{self, Progress};
use super::App;
use crate::recording_meta::RecordingKind;
use crate::store::RecordingWriter;

/// What an upload is: a port-forward capture when it says so in its `Content-Type`, else a cast
/// (Tailscale's client sends none).
fn upload_kind(headers: &HeaderMap) -> RecordingKind {
    let capture = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case(PORT_FORWARD_CAPTURE_CONTENT_TYPE)
        });
    if capture {
        RecordingKind::PortForwardCapture
    } else {
        RecordingKind::Cast
    }
}

/// v2: answer 200 at once and stream acks while the body streams in.
pub(crate) async fn record_v2(State(app): State<Arc<App>>, request: Request) -> Response {
    let (permit, writer) = match begin(&app, Protocol::V2, upload_kind(request.headers())).await {
        Ok(started) => started,
        Err(response) => return response,
    };
    let (progress, watcher) = watch::channel(Progress::default());
    tokio::spawn(upload::run(
        app.clone(),
        request.into_body(),
        writer,
        progress,
        permit,
    ));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, ACK_CONTENT_TYPE)],
        ack_body(watcher, app.ack_interval),
    )
        .into_response()
}

/// v1: the body is read only from here on, so hyper sends `100 Continue` only after the upload
/// has a slot and a file, and a client refused with 503 never sends its body. 200 when the body
/// has ended and is stored.
pub(crate) async fn record_v1(State(app): State<Arc<App>>, request: Request) -> Response {
    let (permit, writer) = match begin(&app, Protocol::V1, upload_kind(request.headers())).await {
        Ok(started) => started,
        Err(response) => return response,
    };
    let (progress, _) = watch::channel(Progress::default());
    // In its own task, so the recording is stored even if this connection is dropped.
    let task = tokio::spawn(upload::run(
        app.clone(),
        request.into_body(),
        writer,
        progress,
        permit,
    ));
    match task.await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(reason)) => error_response(StatusCode::INTERNAL_SERVER_ERROR, reason),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn begin(
    app: &Arc<App>,
    protocol: Protocol,
    kind: RecordingKind,
) -> Result<(OwnedSemaphorePermit, RecordingWriter), Response> {
    let permit = app.uploads.clone().try_acquire_owned().map_err(|_| {
        tracing::warn!("recording refused: too many uploads at once");
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many recordings in progress".into(),
        )
    })?;
    let writer = app
        .store
        .create_recording_of(kind, protocol)
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot start a recording");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot store the recording: {error}"),
            )
        })?;
    tracing::info!(id = writer.id(), ?protocol, ?kind, "recording started");
    Ok((permit, writer))
}
