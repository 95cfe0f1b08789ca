//! Kubernetes API request events as a recorder stores them: Tailscale's `sessionrecording.Event`
//! (`sessionrecording/event.go`, type `kubernetes-api-request`), field for field, and
//! kube-auth-proxy's response event (type `kubernetes-api-response`) that records a request's outcome under
//! the same `id`.
//!
//! The JSON is what Go's `encoding/json` writes for Tailscale's structs, so `tsrecorder` and
//! anything reading its store see the same shapes from this crate as from Tailscale's proxy:
//! `"type"` first, `request.body` as standard base64 (Go's `[]byte`), a nil slice as `null`
//! (`kubernetes.Parts`), `request.queryParameters` always an object (`{}` when empty: Tailscale
//! fills it from `req.URL.Query()`, which returns a non-nil map), and the `omitempty` fields of
//! `Source` left out when empty. Two fields are kube-auth-proxy's extensions, left out unless set:
//! `request.bodyTruncated` and `request.bodySize`; a third, the readable `workload` section
//! ([`Workload`]), is written after `destination` by [`ApiRequestEvent::with_workload`].

mod go_json;
mod port_forward;

pub use port_forward::{
    PortForwardConnection, PortForwardEvent, PortForwardPhase, PortForwardRecord,
    PortForwardTotals, PORT_FORWARD_EVENT_TYPE,
};

use std::collections::BTreeMap;

use bytes::Bytes;
use requestinfo::RequestInfo;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use go_json::GoRequestInfo;

use crate::workload::Workload;

/// The `type` of an API request event (Tailscale's `KubernetesAPIEventType`).
pub const API_REQUEST_EVENT_TYPE: &str = "kubernetes-api-request";

/// The `type` of an API response event (kube-auth-proxy's extension): the outcome of the request
/// event with the same `id`.
pub const API_RESPONSE_EVENT_TYPE: &str = "kubernetes-api-response";

/// One Kubernetes API request, described to a recorder before the request goes upstream:
/// Tailscale's `sessionrecording.Event`.
///
/// Serialises as `{"type":"kubernetes-api-request","id","timestamp","userAgent","request",
/// "kubernetes","source","destination"}`; deserialising checks the `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequestEvent {
    /// The event's id (`id`); a response event for the same request carries it too.
    pub id: String,
    /// When the request arrived, in seconds since the Unix epoch (`timestamp`).
    pub timestamp: i64,
    /// The request's `User-Agent` (`userAgent`), empty when it had none.
    pub user_agent: String,
    /// The HTTP request (`request`).
    pub request: EventRequest,
    /// What the apiserver would make of the request (`kubernetes`, Go field names).
    pub kubernetes: RequestInfo,
    /// The caller (`source`).
    pub source: EventSource,
    /// The proxy that received the request (`destination`).
    pub destination: EventDestination,
}

/// The HTTP request of an [`ApiRequestEvent`] (Tailscale's `sessionrecording.Request`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRequest {
    /// The HTTP method, e.g. `GET`.
    pub method: String,
    /// The request target: path and query, e.g. `/api/v1/pods?limit=500`.
    pub path: String,
    /// The request body (or its start, see [`body_truncated`](Self::body_truncated)): standard
    /// base64 in JSON, as Go writes a `[]byte`; `None` is `null`.
    #[serde(default, with = "go_json::base64_bytes")]
    pub body: Option<Bytes>,
    /// The decoded query parameters, each key with all its values (Go's `url.Values`); `{}`
    /// when there are none, as Tailscale writes the non-nil map of `req.URL.Query()`. `null`
    /// (a nil map) reads as empty.
    #[serde(default, deserialize_with = "go_json::null_when_empty::deserialize")]
    pub query_parameters: BTreeMap<String, Vec<String>>,
    /// Whether `body` holds only the start of a longer body. Left out when false (an extension:
    /// Tailscale's events have no such field).
    #[serde(default, skip_serializing_if = "is_false")]
    pub body_truncated: bool,
    /// The whole body's size when `body` was cut and the size was known from `Content-Length`.
    /// Left out when `None` (an extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_size: Option<u64>,
}

/// Who sent the request (Tailscale's `sessionrecording.Source`): a user's node, with the user, or
/// a tagged node, with its tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSource {
    /// The node's MagicDNS name without the trailing dot, e.g. `laptop.tail-scale.ts.net`.
    pub node: String,
    /// The node's stable ID.
    #[serde(rename = "nodeID")]
    pub node_id: String,
    /// The node's tags; left out when empty (a user's node).
    #[serde(
        rename = "nodeTags",
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "go_json::null_when_empty"
    )]
    pub node_tags: Vec<String>,
    /// The numeric ID of the user owning the node; left out when 0 (a tagged node).
    #[serde(rename = "nodeUserID", default, skip_serializing_if = "is_zero")]
    pub node_user_id: u64,
    /// The login name of the user owning the node; left out when empty (a tagged node).
    #[serde(rename = "nodeUser", default, skip_serializing_if = "String::is_empty")]
    pub node_user: String,
}

impl From<&capmodel::CallerDescription> for EventSource {
    /// The caller as the identity source described it: the user's login and id for a user's
    /// node, the tags for a tagged node.
    fn from(who: &capmodel::CallerDescription) -> EventSource {
        EventSource {
            node: who.node.clone(),
            node_id: who.node_id.clone(),
            node_tags: who.tags.clone(),
            node_user_id: who
                .user_id
                .and_then(|id| u64::try_from(id).ok())
                .unwrap_or(0),
            node_user: who.user.clone().unwrap_or_default(),
        }
    }
}

/// The node that received the request: the proxy (Tailscale's `sessionrecording.Destination`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDestination {
    /// The node's MagicDNS name without the trailing dot.
    pub node: String,
    /// The node's stable ID.
    #[serde(rename = "nodeID")]
    pub node_id: String,
}

/// The outcome of a request, sent once its response has ended, linked to the request's
/// [`ApiRequestEvent`] by the same `id`. kube-auth-proxy's extension: Tailscale sends request
/// events only.
///
/// Serialises as `{"type":"kubernetes-api-response","id","timestamp","kubernetes","source",
/// "destination","response"}`; deserialising checks the `type`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponseEvent {
    /// The id of the request event this answers.
    pub id: String,
    /// When the response ended, in seconds since the Unix epoch.
    pub timestamp: i64,
    /// The request's [`RequestInfo`], as in the request event (so that filters on verb and
    /// namespace find both).
    pub kubernetes: RequestInfo,
    /// The caller, as in the request event.
    pub source: EventSource,
    /// The proxy, as in the request event.
    pub destination: EventDestination,
    /// What the caller got.
    pub response: EventResponse,
}

/// What a caller got for a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Milliseconds from receiving the request to the end of the response body.
    pub duration_ms: f64,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// Why the response ended early (e.g. the upstream body stream broke); left out when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The JSON of an [`ApiRequestEvent`], borrowed: `type` first, in Tailscale's field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestEventOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    timestamp: i64,
    user_agent: &'a str,
    request: &'a EventRequest,
    kubernetes: GoRequestInfo<'a>,
    source: &'a EventSource,
    destination: &'a EventDestination,
    #[serde(skip_serializing_if = "Option::is_none")]
    workload: Option<&'a Workload>,
}

impl Serialize for ApiRequestEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_workload(None).serialize(serializer)
    }
}

/// An [`ApiRequestEvent`] with kube-auth-proxy's readable `workload` section (what a request that
/// starts containers asks to run), as [`ApiRequestEvent::with_workload`] makes it: serialises as
/// the event with `"workload"` after `"destination"`, and exactly as the event alone when there
/// is no section. A reader finds the section in the event's `workload` key ([`Workload`]
/// deserialises from it); [`ApiRequestEvent`]'s own reader ignores it.
#[derive(Debug, Clone, Copy)]
pub struct RequestEventWithWorkload<'a> {
    event: &'a ApiRequestEvent,
    workload: Option<&'a Workload>,
}

impl ApiRequestEvent {
    /// This event with a `workload` section (none when `workload` is `None`), for sending.
    pub fn with_workload<'a>(
        &'a self,
        workload: Option<&'a Workload>,
    ) -> RequestEventWithWorkload<'a> {
        RequestEventWithWorkload {
            event: self,
            workload,
        }
    }
}

impl Serialize for RequestEventWithWorkload<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.event;
        RequestEventOut {
            kind: API_REQUEST_EVENT_TYPE,
            id: &event.id,
            timestamp: event.timestamp,
            user_agent: &event.user_agent,
            request: &event.request,
            kubernetes: GoRequestInfo(&event.kubernetes),
            source: &event.source,
            destination: &event.destination,
            workload: self.workload,
        }
        .serialize(serializer)
    }
}

/// The JSON of an [`ApiRequestEvent`] being read. Fields other than `type` and `id` may be missing,
/// as Go's decoder allows.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestEventIn {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default)]
    timestamp: i64,
    #[serde(default)]
    user_agent: String,
    #[serde(default)]
    request: EventRequest,
    #[serde(default, deserialize_with = "go_json::request_info")]
    kubernetes: RequestInfo,
    #[serde(default)]
    source: EventSource,
    #[serde(default)]
    destination: EventDestination,
}

impl<'de> Deserialize<'de> for ApiRequestEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let event = RequestEventIn::deserialize(deserializer)?;
        check_type(&event.kind, API_REQUEST_EVENT_TYPE)?;
        Ok(ApiRequestEvent {
            id: event.id,
            timestamp: event.timestamp,
            user_agent: event.user_agent,
            request: event.request,
            kubernetes: event.kubernetes,
            source: event.source,
            destination: event.destination,
        })
    }
}

/// The JSON of an [`ApiResponseEvent`], borrowed: `type` first.
#[derive(Serialize)]
struct ResponseEventOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    timestamp: i64,
    kubernetes: GoRequestInfo<'a>,
    source: &'a EventSource,
    destination: &'a EventDestination,
    response: &'a EventResponse,
}

impl Serialize for ApiResponseEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ResponseEventOut {
            kind: API_RESPONSE_EVENT_TYPE,
            id: &self.id,
            timestamp: self.timestamp,
            kubernetes: GoRequestInfo(&self.kubernetes),
            source: &self.source,
            destination: &self.destination,
            response: &self.response,
        }
        .serialize(serializer)
    }
}

/// The JSON of an [`ApiResponseEvent`] being read.
#[derive(Deserialize)]
struct ResponseEventIn {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default)]
    timestamp: i64,
    #[serde(default, deserialize_with = "go_json::request_info")]
    kubernetes: RequestInfo,
    #[serde(default)]
    source: EventSource,
    #[serde(default)]
    destination: EventDestination,
    response: EventResponse,
}

impl<'de> Deserialize<'de> for ApiResponseEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let event = ResponseEventIn::deserialize(deserializer)?;
        check_type(&event.kind, API_RESPONSE_EVENT_TYPE)?;
        Ok(ApiResponseEvent {
            id: event.id,
            timestamp: event.timestamp,
            kubernetes: event.kubernetes,
            source: event.source,
            destination: event.destination,
            response: event.response,
        })
    }
}

fn check_type<E: serde::de::Error>(found: &str, expected: &str) -> Result<(), E> {
    if found == expected {
        Ok(())
    } else {
        Err(E::custom(format_args!(
            "event type {found:?}, expected {expected:?}"
        )))
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}
