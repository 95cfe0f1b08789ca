//! `POST /v2/events` (our extension, `docs/protocols.md` section 5): many API events in one
//! request, one JSON object per line (NDJSON), stored with one write and one sync and answered
//! once they are durable, with which were stored. `HEAD /v2/events` tells clients that the
//! endpoint exists and how large a batch may be.
//!
//! Each line is checked as one `POST /v2/event` body is; a line that fails is rejected alone
//! (its index and reason in the answer) and the others are stored. The whole batch is refused,
//! with nothing stored, when its body is larger than [`ServerOptions::max_event_bytes`] (413),
//! it holds more than [`EVENT_BATCH_MAX_EVENTS`] events (413), or storing fails (500).
//!
//! [`ServerOptions::max_event_bytes`]: super::ServerOptions::max_event_bytes

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use castfmt::protocol::{
    EventBatchAnswer, RejectedEvent, EVENT_BATCH_MAX_BYTES_HEADER, EVENT_BATCH_MAX_EVENTS,
    EVENT_BATCH_MAX_EVENTS_HEADER, JSON_CONTENT_TYPE,
};
use http::{header, HeaderValue, StatusCode};

use super::event_ingest::read_event_body;
use super::routes::error_response;
use super::App;
use crate::events::{is_json_whitespace, push_event_line};

/// A rejected line's reason is cut to this many bytes in the answer, so that a batch of bad
/// lines cannot make a large answer.
const MAX_REASON_BYTES: usize = 200;

/// `HEAD /v2/events`: 200, with the largest batch this recorder takes.
pub(crate) async fn probe_events(State(app): State<Arc<App>>) -> Response {
    (
        StatusCode::OK,
        [
            (
                header::HeaderName::from_static(EVENT_BATCH_MAX_EVENTS_HEADER),
                HeaderValue::from(EVENT_BATCH_MAX_EVENTS),
            ),
            (
                header::HeaderName::from_static(EVENT_BATCH_MAX_BYTES_HEADER),
                HeaderValue::from(app.max_event_bytes),
            ),
        ],
    )
        .into_response()
}

/// Stores the batch's good lines together and answers 200 once they are durable (see
/// [`crate::events`] for the fsync policy), with `{"stored":N,"rejected":[...]}`.
pub(crate) async fn post_events(State(app): State<Arc<App>>, request: Request) -> Response {
    // A batch body is bounded like one event's and takes one of the same slots, so the memory
    // held by bodies being read is bounded as before.
    let (_slot, body) = match read_event_body(&app, request, "event batch").await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let mut lines = Vec::with_capacity(body.len());
    let mut answer = EventBatchAnswer::default();
    let mut index = 0;
    for line in body.split(|&b| b == b'\n') {
        // Blank lines (the one after the last newline among them) are not events.
        if line.iter().all(|&b| is_json_whitespace(char::from(b))) {
            continue;
        }
        if index == EVENT_BATCH_MAX_EVENTS {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("more than {EVENT_BATCH_MAX_EVENTS} events in one batch"),
            );
        }
        match push_event_line(line, &mut lines) {
            Ok(()) => answer.stored += 1,
            Err(error) => answer.rejected.push(RejectedEvent {
                index,
                error: cut(error.to_string()),
            }),
        }
        index += 1;
    }
    if answer.stored > 0 {
        if let Err(error) = app.events.append_lines(lines, answer.stored).await {
            tracing::error!(%error, events = answer.stored, "event batch not stored");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("events not stored: {error}"),
            );
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, JSON_CONTENT_TYPE)],
        answer.encode(),
    )
        .into_response()
}

/// `reason` cut to [`MAX_REASON_BYTES`] at a character boundary.
fn cut(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}
