//! Port-forward audit events (kube-auth-proxy's extension, type `kubernetes-port-forward`): a
//! `kubectl port-forward` session described to the recorders as it happens, in the shape of the
//! API events (`id`, `timestamp`, `kubernetes`, `source`, `destination`) with a `portforward`
//! section.
//!
//! One session sends, under one `id`: a `start` event before anything goes upstream; a
//! `connection` event as each TCP connection through the forward ends (its port, bytes each way,
//! how long it lasted, the error the server wrote on it if any); and an `end` event (totals, and
//! why the proxy ended the session if it did). The request itself names no ports: each connection
//! names its own.

use requestinfo::RequestInfo;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::go_json::{self, GoRequestInfo};
use super::{check_type, EventDestination, EventSource};

/// The `type` of a port-forward audit event.
pub const PORT_FORWARD_EVENT_TYPE: &str = "kubernetes-port-forward";

/// One event of a port-forward session.
#[derive(Debug, Clone, PartialEq)]
pub struct PortForwardEvent {
    /// The session's id: every event of one session has it.
    pub id: String,
    /// When the event happened, in seconds since the Unix epoch.
    pub timestamp: i64,
    /// The request (`pods/portforward`: namespace and pod name), as the apiserver reads it.
    pub kubernetes: RequestInfo,
    /// The caller.
    pub source: EventSource,
    /// The proxy.
    pub destination: EventDestination,
    /// What happened (`portforward`).
    pub port_forward: PortForwardRecord,
}

/// The `portforward` section of a [`PortForwardEvent`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortForwardRecord {
    /// `start`, `connection` or `end`.
    pub phase: PortForwardPhase,
    /// How the session reached the API server: `websocket` (SPDY tunnelled in WebSocket,
    /// kubectl's default) or `spdy`.
    pub transport: String,
    /// The connection that ended (`connection` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<PortForwardConnection>,
    /// Totals of the session (`end` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<PortForwardTotals>,
    /// Why the proxy ended the session, or why it could not follow it (`end` events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which event of a session a [`PortForwardEvent`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PortForwardPhase {
    /// The session is about to start (sent before anything goes upstream).
    #[default]
    Start,
    /// One TCP connection through the forward ended.
    Connection,
    /// The session ended.
    End,
}

/// One TCP connection through a forward.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortForwardConnection {
    /// The client's `requestID` for the connection's stream pair.
    pub request_id: String,
    /// The pod's port.
    pub port: u16,
    /// Bytes the client sent to the pod.
    pub bytes_from_client: u64,
    /// Bytes the pod sent to the client.
    pub bytes_to_client: u64,
    /// Milliseconds from the connection's streams opening to its end.
    pub duration_ms: f64,
    /// What the server wrote on the connection's error stream, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Totals of a port-forward session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortForwardTotals {
    /// TCP connections through the forward.
    pub connections: u64,
    /// Bytes clients sent to the pod, over all connections.
    pub bytes_from_client: u64,
    /// Bytes the pod sent to clients, over all connections.
    pub bytes_to_client: u64,
    /// Milliseconds from the start event to the end of the session.
    pub duration_ms: f64,
}

/// The JSON of a [`PortForwardEvent`], borrowed: `type` first.
#[derive(Serialize)]
struct PortForwardEventOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    timestamp: i64,
    kubernetes: GoRequestInfo<'a>,
    source: &'a EventSource,
    destination: &'a EventDestination,
    portforward: &'a PortForwardRecord,
}

impl Serialize for PortForwardEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PortForwardEventOut {
            kind: PORT_FORWARD_EVENT_TYPE,
            id: &self.id,
            timestamp: self.timestamp,
            kubernetes: GoRequestInfo(&self.kubernetes),
            source: &self.source,
            destination: &self.destination,
            portforward: &self.port_forward,
        }
        .serialize(serializer)
    }
}

/// The JSON of a [`PortForwardEvent`] being read.
#[derive(Deserialize)]
struct PortForwardEventIn {
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
    portforward: PortForwardRecord,
}

impl<'de> Deserialize<'de> for PortForwardEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let event = PortForwardEventIn::deserialize(deserializer)?;
        check_type(&event.kind, PORT_FORWARD_EVENT_TYPE)?;
        Ok(PortForwardEvent {
            id: event.id,
            timestamp: event.timestamp,
            kubernetes: event.kubernetes,
            source: event.source,
            destination: event.destination,
            port_forward: event.portforward,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(record: PortForwardRecord) -> PortForwardEvent {
        PortForwardEvent {
            id: "pf-1".into(),
            timestamp: 1_700_000_000,
            kubernetes: requestinfo::parse(
                "GET",
                "/api/v1/namespaces/default/pods/demo/portforward",
                "",
            ),
            source: EventSource::default(),
            destination: EventDestination::default(),
            port_forward: record,
        }
    }

    #[test]
    fn a_connection_event_names_its_port_and_bytes_each_way() {
        let connection = event(PortForwardRecord {
            phase: PortForwardPhase::Connection,
            transport: "websocket".into(),
            connection: Some(PortForwardConnection {
                request_id: "0".into(),
                port: 8080,
                bytes_from_client: 10,
                bytes_to_client: 20,
                duration_ms: 1.5,
                error: None,
            }),
            ..PortForwardRecord::default()
        });
        let json = serde_json::to_value(&connection).expect("json");
        assert_eq!(json["type"], PORT_FORWARD_EVENT_TYPE);
        assert_eq!(json["kubernetes"]["Subresource"], "portforward");
        assert_eq!(json["kubernetes"]["Name"], "demo");
        assert_eq!(
            json["portforward"],
            serde_json::json!({
                "phase": "connection",
                "transport": "websocket",
                "connection": {
                    "requestId": "0", "port": 8080, "bytesFromClient": 10,
                    "bytesToClient": 20, "durationMs": 1.5,
                },
            })
        );
        let text = serde_json::to_string(&connection).expect("json");
        assert!(text.starts_with(r#"{"type":"kubernetes-port-forward","id":"pf-1""#));
        let read: PortForwardEvent = serde_json::from_str(&text).expect("read back");
        assert_eq!(read, connection);
    }

    #[test]
    fn other_event_types_are_refused() {
        let text = serde_json::to_string(&event(PortForwardRecord::default()))
            .expect("json")
            .replace(PORT_FORWARD_EVENT_TYPE, "kubernetes-api-request");
        assert!(serde_json::from_str::<PortForwardEvent>(&text).is_err());
    }
}
