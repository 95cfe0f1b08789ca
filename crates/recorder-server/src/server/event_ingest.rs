//! `POST /v2/event`: one API event per request (Tailscale's protocol). Batches of events,
//! our extension, are in `event_batch`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tokio::sync::SemaphorePermit;

use super::routes::error_response;
use super::App;
use crate::events::push_event_line;

/// Stores the event and answers 200 once it is durable (see [`crate::events`] for the fsync
/// policy). The `Content-Type` is not checked: Tailscale's client sends `application/json`, and
/// the body is checked to be a JSON object whatever it says.
pub(crate) async fn post_event(State(app): State<Arc<App>>, request: Request) -> Response {
    let (_slot, body) = match read_event_body(&app, request, "event").await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let mut line = Vec::with_capacity(body.len() + 1);
    if let Err(error) = push_event_line(&body, &mut line) {
        return error_response(StatusCode::BAD_REQUEST, error.to_string());
    }
    match app.events.append_lines(line, 1).await {
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

/// Reads an event request's body (`what`: "event" or "event batch", for the errors) within
/// `--max-event-bytes`, holding one of the slots that bound the memory of bodies being read; the
/// slot is returned with the body, to be held until the events are stored. Waiting for a slot is
/// short.
pub(super) async fn read_event_body<'a>(
    app: &'a App,
    request: Request,
    what: &str,
) -> Result<(SemaphorePermit<'a>, Bytes), Response> {
    let Ok(slot) = app.event_slots.acquire().await else {
        return Err(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down".into(),
        ));
    };
    match Limited::new(request.into_body(), app.max_event_bytes)
        .collect()
        .await
    {
        Ok(collected) => Ok((slot, collected.to_bytes())),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} larger than {} bytes", app.max_event_bytes),
        )),
        Err(error) => Err(error_response(
            StatusCode::BAD_REQUEST,
            format!("reading the {what}: {error}"),
        )),
    }
}
