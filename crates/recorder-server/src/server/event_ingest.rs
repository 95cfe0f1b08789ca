//! `POST /v2/event`: one API event per request (Tailscale's protocol). Batches of events,
//! our extension, are in `event_batch`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::routes::error_response;
use super::App;
use crate::events::push_event_line;

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
