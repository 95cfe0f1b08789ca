//! API request events (`enableEvents`): for a caller whose grant asks for them, every request is
//! described to a recorder before it goes upstream (Tailscale's `sessionrecording.Event`, type
//! `kubernetes-api-request`), and, when `--api-response-events` is on, its outcome follows as a
//! second event with the same `id` once the response has ended.
//!
//! Failure semantics follow the grant: a recorder that answers 404 to the event probe does not
//! support events (warned about, the request goes on); any other failure refuses the request with
//! 502 before anything reaches upstream when the grant fails closed, and is logged and counted when
//! it fails open.
//!
//! The request event of a request that starts containers (creating a pod, adding an ephemeral
//! container: `kubectl run`, `kubectl debug`) also carries a readable `workload` section (image,
//! command, target container, privileges, host namespaces), read from the recorded JSON body by
//! `castfmt::Workload::from_request`; a body it cannot read just gets no section.

mod body_capture;
mod event_id;
mod observed_body;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use http::StatusCode;
use recorder_client::{
    ApiRequestEvent, ApiResponseEvent, EventConfig, EventDelivery, EventDestination, EventRequest,
    EventResponse, EventSender, EventSource,
};
use requestinfo::RequestInfo;

pub(crate) use observed_body::ObservedBody;

use crate::identity::Caller;
use crate::metrics::{Metrics, Refusal};
use crate::status::KubeStatus;

/// How often at most the proxy warns that a recorder does not support events.
const UNSUPPORTED_WARNING_INTERVAL_SECS: u64 = 60;

/// Request-body bytes that all events being recorded at once may hold; beyond it, bodies are cut
/// earlier in their events (the requests are forwarded whole regardless).
const BODY_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// How long the proxy waits for a request body to arrive for its event before sending the event
/// with what has arrived.
const BODY_READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// What the proxy sends API events with.
#[derive(Debug)]
pub(crate) struct ApiEvents {
    sender: EventSender,
    /// Request bodies longer than this are cut in the event (and marked so).
    body_limit: usize,
    /// Whether a response event follows each request event.
    response_events: bool,
    /// This proxy's node, as the events' `destination`.
    destination: EventDestination,
    /// Where event ids come from.
    ids: event_id::EventIds,
    /// Bounds the request bodies held for events at once.
    budget: body_capture::BodyBudget,
    /// Unix seconds of the last "recorder does not support events" warning.
    last_unsupported_warning: AtomicU64,
}

/// What an event says of a request besides its body.
#[derive(Debug, Clone, Copy)]
struct RequestHead<'a> {
    method: &'a http::Method,
    uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
}

/// The part of a request body an event records.
#[derive(Debug, Default)]
struct RecordedBody {
    bytes: bytes::Bytes,
    truncated: bool,
    /// The whole body's size when it was cut and the client declared it (`Content-Length`).
    size: Option<u64>,
}

/// What every audit event of one session carries, and how it is sent.
#[derive(Clone)]
pub(crate) struct AuditContext {
    /// The session's event id.
    pub(crate) id: String,
    /// The caller.
    pub(crate) source: EventSource,
    /// This proxy.
    pub(crate) destination: EventDestination,
    /// Sends events to the caller's recorders.
    pub(crate) sender: EventSender,
}

/// Seconds since the Unix epoch, as events' `timestamp`.
pub(crate) fn event_timestamp() -> i64 {
    unix_seconds()
}

/// What a response event carries over from its request event.
#[derive(Debug)]
pub(crate) struct RequestEventLink {
    id: String,
    kubernetes: RequestInfo,
    started: Instant,
}

impl ApiEvents {
    /// Events with `body_limit` bytes of request body at most, response events when asked, and
    /// `destination` naming this proxy.
    pub(crate) fn new(
        body_limit: usize,
        response_events: bool,
        destination: EventDestination,
    ) -> ApiEvents {
        ApiEvents {
            sender: EventSender::new(EventConfig::default()),
            body_limit,
            response_events,
            destination,
            ids: event_id::EventIds::new(),
            budget: body_capture::BodyBudget::new(BODY_BUDGET_BYTES),
            last_unsupported_warning: AtomicU64::new(0),
        }
    }

    /// Records the request event of a caller whose grant enables events, before the request goes
    /// upstream. Returns the body to forward (what the client sent, byte for byte) and, when
    /// response events are on, what the response event needs. A caller without events gets its
    /// body back untouched.
    pub(crate) async fn before_upstream(
        &self,
        metrics: &Metrics,
        caller: &Caller,
        parts: &http::request::Parts,
        body: Body,
    ) -> Result<(Body, Option<RequestEventLink>), KubeStatus> {
        let policy = &caller.policy.recording;
        if !policy.events {
            return Ok((body, None));
        }
        if policy.recorders.is_empty() {
            return self
                .without_recorders(metrics, caller)
                .map(|()| (body, None));
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + BODY_READ_DEADLINE;
        let captured = body_capture::capture(body, self.body_limit, &self.budget, deadline)
            .await
            .map_err(|error| {
                KubeStatus::bad_request(format!("reading the request body: {error}"))
            })?;
        let body_size = captured
            .truncated
            .then(|| {
                parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .flatten();
        let recorded = RecordedBody {
            bytes: captured.recorded,
            truncated: captured.truncated,
            size: body_size,
        };
        // Boxed: recording is a large future, and only requests with events enabled reach it.
        let link = Box::pin(self.record(
            metrics,
            caller,
            RequestHead {
                method: &parts.method,
                uri: &parts.uri,
                headers: &parts.headers,
            },
            recorded,
            started,
        ))
        .await?;
        Ok((captured.forward, link))
    }

    /// Records the request event of an exec/attach upgrade (which has no body), before the session
    /// goes upstream. `Ok` also when the caller's grant does not enable events.
    pub(crate) async fn before_upgrade(
        &self,
        metrics: &Metrics,
        caller: &Caller,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Result<(), KubeStatus> {
        let policy = &caller.policy.recording;
        if !policy.events {
            return Ok(());
        }
        if policy.recorders.is_empty() {
            return self.without_recorders(metrics, caller);
        }
        self.record(
            metrics,
            caller,
            RequestHead {
                method,
                uri,
                headers,
            },
            RecordedBody::default(),
            Instant::now(),
        )
        .await
        .map(|_| ())
    }

    /// A grant that enables events but names no recorder: refused when it fails closed.
    fn without_recorders(&self, metrics: &Metrics, caller: &Caller) -> Result<(), KubeStatus> {
        if caller.policy.recording.fail_open {
            metrics.api_event_attempted();
            metrics.api_event_failed();
            Ok(())
        } else {
            metrics.request_refused(Refusal::Policy);
            Err(KubeStatus::forbidden(
                "the caller's grant requires API request events (enableEvents, enforceRecorder) but names no recorder",
            ))
        }
    }

    /// Builds the request event and sends it to the caller's recorders, applying the grant's
    /// failure mode.
    async fn record(
        &self,
        metrics: &Metrics,
        caller: &Caller,
        head: RequestHead<'_>,
        body: RecordedBody,
        started: Instant,
    ) -> Result<Option<RequestEventLink>, KubeStatus> {
        let RequestHead {
            method,
            uri,
            headers,
        } = head;
        let policy = &caller.policy.recording;
        let path = uri.path();
        let query = uri.query().unwrap_or_default();
        let id = self.ids.next();
        let kubernetes = requestinfo::parse(method.as_str(), path, query);
        let workload = castfmt::Workload::from_request(
            &kubernetes,
            headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            &body.bytes,
            body.truncated,
        );
        let event = ApiRequestEvent {
            id: id.clone(),
            timestamp: unix_seconds(),
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            request: EventRequest {
                method: method.to_string(),
                path: uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or(path)
                    .to_owned(),
                body: Some(body.bytes),
                query_parameters: requestinfo::query_values(query),
                body_truncated: body.truncated,
                body_size: body.size,
            },
            kubernetes,
            source: event_source(caller),
            destination: self.destination.clone(),
        };
        metrics.api_event_attempted();
        let sent = self
            .sender
            .send(&policy.recorders, &event.with_workload(workload.as_ref()))
            .await;
        match sent {
            Ok(EventDelivery::Stored { .. }) => {
                // Only a stored request event gets a response event: one never points at an
                // event the recorder does not have.
                return Ok(self.response_events.then_some(RequestEventLink {
                    id,
                    kubernetes: event.kubernetes,
                    started,
                }));
            }
            Ok(EventDelivery::Unsupported { recorder }) => {
                metrics.api_event_unsupported();
                self.warn_unsupported(recorder);
            }
            Err(error) => {
                metrics.api_event_failed();
                if policy.fail_open {
                    tracing::warn!(
                        caller = caller.display_name(),
                        %error,
                        "API request event not recorded (the grant allows it)"
                    );
                } else {
                    tracing::warn!(
                        caller = caller.display_name(),
                        %error,
                        "refusing request: its API request event could not be recorded"
                    );
                    metrics.request_refused(Refusal::EventRecording);
                    return Err(KubeStatus::bad_gateway(format!(
                        "the caller's grant requires API requests to be recorded, and recording this one failed: {error}"
                    )));
                }
            }
        }
        Ok(None)
    }

    /// What a session's audit events (port-forward) share with the API events: a fresh id, the
    /// caller as `source`, this proxy as `destination`, and the sender to the recorders.
    pub(crate) fn audit_context(&self, caller: &Caller) -> AuditContext {
        AuditContext {
            id: self.ids.next(),
            source: event_source(caller),
            destination: self.destination.clone(),
            sender: self.sender.clone(),
        }
    }

    fn warn_unsupported(&self, recorder: std::net::SocketAddr) {
        let now = unix_seconds().max(0).unsigned_abs();
        let last = self.last_unsupported_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= UNSUPPORTED_WARNING_INTERVAL_SECS
            && self
                .last_unsupported_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                %recorder,
                "the recorder does not support API request events (404 to HEAD /v2/event); requests go on without them"
            );
        }
    }
}

/// Wraps a response body so that, when it ends, the response event linked to `link` is sent (in
/// the background: the client's response never waits for it).
pub(crate) fn observe_response<B: http_body::Body>(
    events: Arc<ApiEvents>,
    metrics: Arc<Metrics>,
    caller: Arc<Caller>,
    link: RequestEventLink,
    status: StatusCode,
    body: B,
) -> ObservedBody<B> {
    ObservedBody::new(
        body,
        Box::new(move |bytes, error| {
            send_response_event(events, metrics, caller, link, status, bytes, error);
        }),
    )
}

/// Sends the response event of a request in the background: `status` and `bytes` as the client
/// got them, and `error` when the response did not complete (or the proxy answered itself).
pub(crate) fn send_response_event(
    events: Arc<ApiEvents>,
    metrics: Arc<Metrics>,
    caller: Arc<Caller>,
    link: RequestEventLink,
    status: StatusCode,
    bytes: u64,
    error: Option<String>,
) {
    let event = ApiResponseEvent {
        id: link.id,
        timestamp: unix_seconds(),
        kubernetes: link.kubernetes,
        source: event_source(&caller),
        destination: events.destination.clone(),
        response: EventResponse {
            status: status.as_u16(),
            duration_ms: link.started.elapsed().as_secs_f64() * 1000.0,
            bytes,
            error,
        },
    };
    // A body dropped while the runtime shuts down has no runtime to send from.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        metrics.api_response_event_failed();
        return;
    };
    runtime.spawn(async move {
        let recorders = &caller.policy.recording.recorders;
        match events.sender.send(recorders, &event).await {
            Ok(EventDelivery::Stored { .. }) => metrics.api_response_event_sent(),
            Ok(EventDelivery::Unsupported { .. }) => {}
            Err(error) => {
                metrics.api_response_event_failed();
                tracing::warn!(%error, id = event.id, "API response event not recorded");
            }
        }
    });
}

/// The caller as an event `source`: node, node ID, and the user or the node's tags.
fn event_source(caller: &Caller) -> EventSource {
    EventSource::from(&caller.description)
}

fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use capmodel::{CallerPolicy, WhoIs};

    use super::*;

    fn caller(fixture: &str) -> Caller {
        let path = format!(
            "{}/../../testdata/whois/{fixture}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).expect("fixture");
        let whois = WhoIs::from_json(&bytes).expect("whois");
        let policy = CallerPolicy::from_whois(&whois).expect("policy");
        Caller::new(&whois, policy)
    }

    #[test]
    fn a_user_caller_is_named_by_login_and_user_id() {
        let source = event_source(&caller("user-node"));
        assert_eq!(source.node_user, "alice@example.com");
        assert!(source.node_user_id > 0);
        assert!(source.node_tags.is_empty());
        assert!(!source.node.ends_with('.') && !source.node.is_empty());
        assert!(!source.node_id.is_empty());
    }

    #[test]
    fn a_tagged_caller_is_named_by_its_tags_only() {
        let caller = caller("tagged-node");
        let source = event_source(&caller);
        assert_eq!(source.node_tags, ["tag:ci", "tag:deployer"]);
        assert_eq!((source.node_user.as_str(), source.node_user_id), ("", 0));
    }
}
