//! Every read is itself recorded: an event of type [`VIEW_EVENT_TYPE`] in the recorder's own
//! event log, written (and synced) before the answer is sent.

use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use serde_json::{json, Value};

use super::auth::Viewer;
use super::App;
use crate::civil_time::{rfc3339, unix_now};

/// The `type` of the events that record reads.
pub const VIEW_EVENT_TYPE: &str = "kube-recorder-view";

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// What was read.
pub(crate) struct View<'a> {
    /// `list-recordings`, `recording-meta`, `download` or `list-events`.
    pub(crate) action: &'static str,
    /// The recording asked for.
    pub(crate) recording: Option<&'a str>,
    /// The query string, for lists.
    pub(crate) query: Option<&'a str>,
    /// How it was answered.
    pub(crate) status: StatusCode,
    /// Entries or events returned, for lists.
    pub(crate) results: Option<usize>,
}

/// The event of one read: `type`, `id`, `timestamp`, `action`, `viewer {name, via, addr}`,
/// `source` (as API events name callers, so `events --user NAME` finds a viewer's reads), and
/// what was read.
pub(crate) fn view_event(viewer: &Viewer, view: &View<'_>) -> Value {
    let now = unix_now();
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let nanos = (now * 1e9) as u128;
    let mut source = json!({ "node": viewer.node.clone().unwrap_or_else(|| viewer.name.clone()) });
    if viewer.node.is_some() {
        if viewer.tags.is_empty() {
            source["nodeUser"] = json!(viewer.name);
        } else {
            source["nodeTags"] = json!(viewer.tags);
        }
    }
    let mut event = json!({
        "type": VIEW_EVENT_TYPE,
        "id": format!("view-{nanos:x}-{sequence}"),
        "timestamp": rfc3339(now),
        "action": view.action,
        "viewer": {
            "name": viewer.name,
            "via": viewer.via.as_str(),
            "addr": viewer.peer.to_string(),
        },
        "source": source,
        "status": view.status.as_u16(),
    });
    if let Some(recording) = view.recording {
        event["recording"] = json!(recording);
    }
    if let Some(query) = view.query {
        event["query"] = json!(query);
    }
    if let Some(results) = view.results {
        event["results"] = json!(results);
    }
    event
}

/// Stores the event of a read; a read that cannot be recorded is not answered.
pub(crate) async fn record(app: &App, viewer: &Viewer, view: View<'_>) -> Result<(), String> {
    let event = view_event(viewer, &view);
    tracing::info!(
        viewer = %viewer.name,
        via = viewer.via.as_str(),
        peer = %viewer.peer,
        action = view.action,
        recording = view.recording.unwrap_or("-"),
        status = view.status.as_u16(),
        "read"
    );
    app.events
        .append(event.to_string().into_bytes())
        .await
        .map_err(|error| {
            tracing::error!(%error, "view event not stored");
            format!("the read could not be recorded: {error}")
        })
}
