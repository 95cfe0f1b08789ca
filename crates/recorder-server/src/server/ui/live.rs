//! Live views, as Server-Sent Events (which a browser's `EventSource` reads, with the session
//! cookie, and asciinema-player's `eventsource` driver plays):
//!
//! - `GET /api/recordings/{id}/live`: `{"cols","rows"}` from the cast's header, then every output
//!   event `[time, "o", text]` stored so far and each one written after, until the recording
//!   ends (`event: done`). The stream follows the cast file as it grows, woken by the writer
//!   (see `store::recording_writer::write_notifications`) rather than polling; kube-recorder's
//!   writer hands bytes to the file at every pause of the upload (and every 256 KiB), so a
//!   viewer sees output about as soon as the proxy sends it.
//! - `GET /api/recordings/watch`: `changed` whenever an index entry is written (a session
//!   starts, its header arrives, it ends), so a list page shows new sessions at once.
//!
//! View only: nothing is ever read from the browser. Each stream holds one of
//! [`super::MAX_LIVE_STREAMS`] slots and ends when the server stops.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use castfmt::{CastEvent, Outcome};
use http::{header, HeaderMap, StatusCode};
use tokio::io::AsyncReadExt as _;
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::search::MAX_LINE;
use crate::line_splitter::{Line, LineSplitter};
use crate::recording_meta::{RecordingKind, RecordingMeta};
use crate::server::auth::{viewer_of, Peer, Viewer};
use crate::server::read_api::{store_error, visible_meta};
use crate::server::routes::error_response;
use crate::server::App;
use crate::store::write_notifications;

/// A comment line sent after this long without anything else, so proxies and browsers keep an
/// idle stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Shortest time between two `changed` messages of a list watch.
const WATCH_COALESCE: Duration = Duration::from_millis(200);

const DONE: &[u8] = b"event: done\ndata: {}\n\n";
const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

fn event_stream(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            // Reverse proxies (nginx) must not hold the stream back.
            (http::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

fn no_slot() -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "{} live views are open already; try again later",
            super::MAX_LIVE_STREAMS
        ),
    )
}

/// Resolves once the server stops (or its handle is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One `data:` message (the JSON has no line breaks: serde_json escapes them).
fn data_message(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

/// The player's reset message from a cast header line (its size; 80x24 when it has none), and
/// whether the session has no terminal: kube-auth-proxy writes width and height 0 then.
fn header_message(line: &[u8]) -> (Bytes, bool) {
    let header: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
    let size = |key: &str| {
        header
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .filter(|n| (1..=10_000).contains(n))
    };
    let (cols, rows) = (size("width"), size("height"));
    let no_terminal = cols.is_none() || rows.is_none();
    let json = serde_json::json!({ "cols": cols.unwrap_or(80), "rows": rows.unwrap_or(24) });
    (data_message(&json.to_string()), no_terminal)
}

/// An output event as the player's message; other events (input, markers, resizes) are not
/// shown by the live view. Without a terminal nothing turned line feeds into CR LF, so this
/// does, or each line would start where the last one ended.
fn event_message(line: &[u8], no_terminal: bool) -> Option<Bytes> {
    let event = CastEvent::parse(line).ok()?;
    if event.code != "o" {
        return None;
    }
    let text = if no_terminal {
        event.data.replace("\r\n", "\n").replace('\n', "\r\n")
    } else {
        event.data
    };
    Some(data_message(
        &serde_json::json!([event.time, "o", text]).to_string(),
    ))
}

/// The state of one followed recording.
struct Follow {
    app: Arc<App>,
    id: String,
    file: crate::store::RecordingReader,
    buf: Vec<u8>,
    splitter: LineSplitter,
    header_seen: bool,
    /// The header said the session has no terminal.
    no_terminal: bool,
    queue: VecDeque<Bytes>,
    written: watch::Receiver<(u64, u64)>,
    shutdown: watch::Receiver<bool>,
    /// The index generation (see `write_notifications`) when this recording's entry was last
    /// read.
    index_seen: Option<u64>,
    /// The index says the recording ended: read to the end of the file, then say `done`.
    ending: bool,
    done: bool,
    /// Who follows, checked again at every wake-up ([`Credentials::still_see`]).
    credentials: Credentials,
    /// The entry as it was when the view opened (its namespace and caller decide who sees it).
    meta: RecordingMeta,
    _slot: OwnedSemaphorePermit,
}

/// A live answer's credentials, kept to ask again whether they still name a viewer: a viewer who
/// logged out, whose token left the file or whose grant was revoked gets nothing more.
#[derive(Clone)]
struct Credentials {
    peer: std::net::SocketAddr,
    headers: HeaderMap,
}

impl Credentials {
    /// The peer as the listener recorded it (as the viewer check reads it).
    fn new(peer: Option<Extension<Peer>>, headers: HeaderMap) -> Self {
        let peer = peer.map_or(std::net::SocketAddr::from(([0, 0, 0, 0], 0)), |p| (p.0).0);
        Self { peer, headers }
    }

    /// Whether the credentials still name a viewer who may see `meta` (any recording: `None`).
    async fn still_see(&self, app: &App, meta: Option<&RecordingMeta>) -> bool {
        match viewer_of(app, self.peer, &self.headers).await {
            Ok(viewer) => meta.is_none_or(|meta| viewer.may_see_recording(meta)),
            Err(_) => false,
        }
    }
}

impl Follow {
    fn take_lines(&mut self, read: Option<usize>) {
        let (queue, header_seen, no_terminal) = (
            &mut self.queue,
            &mut self.header_seen,
            &mut self.no_terminal,
        );
        let mut each = |line: Line<'_>| {
            let Line::Whole(bytes) = line else {
                return;
            };
            if !std::mem::replace(header_seen, true) {
                let (message, without_terminal) = header_message(bytes);
                *no_terminal = without_terminal;
                queue.push_back(message);
            } else if let Some(message) = event_message(bytes, *no_terminal) {
                queue.push_back(message);
            }
        };
        match read {
            Some(read) => self.splitter.push(&self.buf[..read], &mut each),
            None => self.splitter.finish(&mut each),
        }
    }

    /// The next bytes of the stream, `None` at its end.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(message) = self.queue.pop_front() {
                return Some(message);
            }
            if self.done {
                return None;
            }
            // Marked before the read: a write after it wakes the wait below.
            self.written.borrow_and_update();
            let read = match self.file.read(&mut self.buf).await {
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(id = %self.id, %error, "live view: cannot read the recording");
                    return None;
                }
            };
            if read > 0 {
                self.take_lines(Some(read));
                continue;
            }
            if self.ending {
                self.take_lines(None);
                self.queue.push_back(Bytes::from_static(DONE));
                self.done = true;
                continue;
            }
            // The index is read again only when some entry was written since it was last read:
            // wake-ups for bytes of other recordings cost a read of this file and no more.
            let index = self.written.borrow().1;
            if self.index_seen == Some(index) {
                self.wait().await?;
                continue;
            }
            self.index_seen = Some(index);
            match self.app.store.get(&self.id).await {
                // Its last bytes were in the file before the index said so.
                Ok(meta) if meta.outcome != Outcome::Recording => {
                    self.ending = true;
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::info!(id = %self.id, %error, "live view: the recording is gone");
                    self.ending = true;
                    continue;
                }
            }
            self.wait().await?;
        }
    }

    /// Waits for the next write anywhere (or queues a keep-alive); `None` when the server stops
    /// or the viewer may no longer see the recording (checked before anything new is read).
    async fn wait(&mut self) -> Option<()> {
        tokio::select! {
            _ = self.written.changed() => {}
            _ = tokio::time::sleep(KEEP_ALIVE) => {
                self.queue.push_back(Bytes::from_static(KEEP_ALIVE_COMMENT));
            }
            _ = stopped(&mut self.shutdown) => return None,
        }
        if !self
            .credentials
            .still_see(&self.app, Some(&self.meta))
            .await
        {
            tracing::info!(id = %self.id, "live view ended: the viewer may no longer see it");
            return None;
        }
        Some(())
    }
}

/// `GET /api/recordings/{id}/live`
pub(crate) async fn follow(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let meta = match visible_meta(&app, &viewer, &id, "live").await {
        Ok(meta) => meta,
        Err(response) => return response,
    };
    if meta.kind != RecordingKind::Cast {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("{id} is a port-forward capture, not a terminal session"),
        );
    }
    if meta.encrypted {
        return error_response(
            StatusCode::CONFLICT,
            format!(
                "{id} is encrypted at rest to an auditor's key: the recorder cannot show it; \
                 play it with `kube-recorder play --identity FILE`"
            ),
        );
    }
    let Ok(slot) = app.ui.live_slots.clone().try_acquire_owned() else {
        return no_slot();
    };
    let file = match app.store.open_recording(&id).await {
        Ok((_, file)) => file,
        Err(error) => return store_error(error),
    };
    let follow = Follow {
        written: write_notifications(),
        shutdown: app.ui.shutdown.clone(),
        app,
        id,
        file,
        buf: vec![0; 64 * 1024],
        splitter: LineSplitter::new(MAX_LINE),
        header_seen: false,
        no_terminal: false,
        queue: VecDeque::new(),
        index_seen: None,
        ending: false,
        done: false,
        credentials: Credentials::new(peer, headers),
        meta,
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let next = follow.next().await?;
        Some((Ok::<Bytes, Infallible>(next), follow))
    });
    event_stream(Body::from_stream(stream))
}

/// `GET /api/recordings/watch`
pub(crate) async fn watch_list(
    State(app): State<Arc<App>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    let credentials = Credentials::new(peer, headers);
    let Ok(slot) = app.ui.live_slots.clone().try_acquire_owned() else {
        return no_slot();
    };
    let mut written = write_notifications();
    let shutdown = app.ui.shutdown.clone();
    let last_index = written.borrow_and_update().1;
    let state = (written, last_index, slot, true);
    let stream =
        futures_util::stream::unfold(state, move |(mut written, mut last_index, slot, first)| {
            let mut shutdown = shutdown.clone();
            let (app, credentials) = (app.clone(), credentials.clone());
            async move {
                if first {
                    // Tells the page the stream is open (it lists again: nothing is missed).
                    let hello = Bytes::from_static(b"event: changed\ndata: {}\n\n");
                    return Some((
                        Ok::<Bytes, Infallible>(hello),
                        (written, last_index, slot, false),
                    ));
                }
                loop {
                    tokio::select! {
                        changed = written.changed() => {
                            if changed.is_err() || !credentials.still_see(&app, None).await {
                                return None;
                            }
                            if written.borrow_and_update().1 != last_index {
                                // Several entries written together make one message.
                                tokio::time::sleep(WATCH_COALESCE).await;
                                last_index = written.borrow_and_update().1;
                                let message = Bytes::from_static(b"event: changed\ndata: {}\n\n");
                                return Some((Ok(message), (written, last_index, slot, false)));
                            }
                        }
                        _ = tokio::time::sleep(KEEP_ALIVE) => {
                            if !credentials.still_see(&app, None).await {
                                return None;
                            }
                            let message = Bytes::from_static(KEEP_ALIVE_COMMENT);
                            return Some((Ok(message), (written, last_index, slot, false)));
                        }
                        _ = stopped(&mut shutdown) => return None,
                    }
                }
            }
        });
    event_stream(Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_without_terminal_gets_carriage_returns_for_display() {
        let (size, no_terminal) = header_message(br#"{"version":2,"width":0,"height":0}"#);
        assert!(no_terminal);
        assert_eq!(&size[..], b"data: {\"cols\":80,\"rows\":24}\n\n");
        let message = event_message(br#"[1.5,"o","a\nb\r\nc"]"#, true);
        assert_eq!(
            message.as_deref(),
            Some(&b"data: [1.5,\"o\",\"a\\r\\nb\\r\\nc\"]\n\n"[..])
        );
        let (_, no_terminal) = header_message(br#"{"version":2,"width":120,"height":40}"#);
        assert!(!no_terminal);
        let message = event_message(br#"[1.5,"o","a\nb"]"#, false);
        assert_eq!(
            message.as_deref(),
            Some(&b"data: [1.5,\"o\",\"a\\nb\"]\n\n"[..])
        );
        assert_eq!(event_message(br#"[1.5,"i","typed"]"#, false), None);
    }
}
