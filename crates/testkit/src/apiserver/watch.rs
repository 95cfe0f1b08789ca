//! Pod watches: a `200` whose chunked body is one JSON watch event per line
//! (`{"type":"ADDED","object":{...}}`), each written as soon as it happens.
//!
//! As the apiserver does: no (or `0`) resourceVersion starts with a synthetic `ADDED` per
//! existing pod; a resourceVersion resumes after it; one older than the history gets a single
//! `ERROR` event carrying a `410 Expired` Status (the watch cache's `newErrWatcher`), as does a
//! watcher that falls too far behind. With `as=Table`, each event's object is a one-row Table,
//! with column definitions only in the first event. The stream lasts until the client goes
//! away or `timeoutSeconds` passes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue};
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::list_options::{IncludeObject, ListOptions};
use super::negotiation::{Output, TableVersion};
use super::pods::store::{PodEvent, Store, Stored};
use super::pods::StoreError;
use super::status::Status;
use super::tables::{table_prefix, Printer, TABLE_SUFFIX};

/// How events are written.
#[derive(Debug)]
enum Encoding {
    Object,
    Table {
        version: TableVersion,
        include: IncludeObject,
        first: bool,
    },
}

impl Encoding {
    fn event(&mut self, kind: &str, pod: &Stored) -> Bytes {
        let mut out = Vec::with_capacity(pod.json.len() + 64);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        match self {
            Encoding::Object => out.extend_from_slice(&pod.json),
            Encoding::Table {
                version,
                include,
                first,
            } => {
                let metadata = json!({ "resourceVersion": pod.resource_version.to_string() });
                out.extend_from_slice(&table_prefix(Printer::Pods, *version, &metadata, *first));
                Printer::Pods.encode_row(pod, *include, *version, SystemTime::now(), &mut out);
                out.extend_from_slice(TABLE_SUFFIX);
                *first = false;
            }
        }
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }
}

fn error_event(status: &Status) -> Bytes {
    let mut line = json!({ "type": "ERROR", "object": status.to_json() }).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Which pods a watch reports.
#[derive(Debug)]
struct Filter {
    namespace: Option<String>,
    options: ListOptions,
}

impl Filter {
    fn matches(&self, event: &PodEvent) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| event.pod.namespace() == ns)
            && self.options.matches(&event.pod)
    }
}

#[derive(Debug)]
struct WatchStream {
    backlog: VecDeque<Arc<PodEvent>>,
    /// `None` for a watch that could not start: it sends `pending_error` and ends.
    live: Option<broadcast::Receiver<Arc<PodEvent>>>,
    filter: Filter,
    encoding: Encoding,
    deadline: Option<Instant>,
    done: bool,
    /// Sent first, then the stream ends (a watch that could not start).
    pending_error: Option<Bytes>,
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        // Hyper drops the body when the client goes away (or the connection is closed).
        tracing::debug!(namespace = ?self.filter.namespace, "watch ended");
    }
}

impl WatchStream {
    async fn next_line(&mut self) -> Option<Bytes> {
        if let Some(error) = self.pending_error.take() {
            self.done = true;
            return Some(error);
        }
        while !self.done {
            let event = match self.backlog.pop_front() {
                Some(event) => event,
                None => {
                    let live = self.live.as_mut()?;
                    let received = match self.deadline {
                        Some(deadline) => tokio::select! {
                            r = live.recv() => r,
                            () = tokio::time::sleep_until(deadline) => return None,
                        },
                        None => live.recv().await,
                    };
                    match received {
                        Ok(event) => event,
                        Err(RecvError::Lagged(_)) => {
                            self.done = true;
                            let status = Status::expired(
                                "The resourceVersion for the provided watch is too old.",
                            );
                            return Some(error_event(&status));
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            };
            if self.filter.matches(&event) {
                return Some(self.encoding.event(event.kind.as_str(), &event.pod));
            }
        }
        None
    }
}

/// Answers a pod watch (`400` for a resourceVersion that is not a number).
pub(crate) fn serve_pod_watch(
    store: &Store,
    namespace: Option<String>,
    options: ListOptions,
    output: Output,
) -> Result<Response, Status> {
    let since = match options.resource_version.as_deref() {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| Status::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let encoding = match output {
        Output::Object => Encoding::Object,
        Output::Table(version) => Encoding::Table {
            version,
            include: options.include_object,
            first: true,
        },
    };
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let (backlog, live, pending_error) = match store.watch_pods(since) {
        Ok(start) => (start.backlog.into(), Some(start.live), None),
        Err(e @ StoreError::Expired(_)) => {
            (VecDeque::new(), None, Some(error_event(&e.to_status())))
        }
        Err(e) => return Err(e.to_status()),
    };
    let stream = WatchStream {
        backlog,
        live,
        filter: Filter { namespace, options },
        encoding,
        deadline,
        done: false,
        pending_error,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        s.next_line()
            .await
            .map(|line| (Ok::<_, Infallible>(line), s))
    });
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
