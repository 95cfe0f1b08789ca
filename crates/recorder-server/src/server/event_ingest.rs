//! `POST /v2/event`: one API event per request.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::audit::VIEW_EVENT_TYPE;
use super::routes::error_response;
use super::App;
use crate::events::event_line;

/// Stores the event and answers 200 once it is durable (see [`crate::events`] for the fsync
/// policy). The `Content-Type` is not checked: Tailscale's client sends `application/json`, and
/// the body is checked to be a JSON object whatever it says.
pub(crate) async fn post_event(State(app): State<Arc<App>>, request: Request) -> Response {
    // Bounds the memory held by bodies being read; waiting here is short.
    let Ok(_slot) = app.event_slots.acquire().await else {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    };
    let body = match Limited::new(request.into_body(), app.max_event_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("event larger than {} bytes", app.max_event_bytes),
            );
        }
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("reading the event: {error}"),
            );
        }
    };
    let line = match event_line(&body) {
        Ok(line) => line,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, error.to_string()),
    };
    if claims_view_type(&body) {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!(
                "event type {VIEW_EVENT_TYPE:?} is the recorder's own, for the reads it records"
            ),
        );
    }
    match app.events.append(line).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => {
            tracing::error!(%error, "event not stored");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("event not stored: {error}"),
            )
        }
    }
}

/// Whether an uploaded event says it is one of the recorder's view events (a writer must not
/// forge the record of reads).
fn claims_view_type(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|event| {
            event
                .get("type")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        })
        .is_some_and(|t| t == VIEW_EVENT_TYPE)
}
