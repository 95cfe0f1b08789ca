//! The log of requests that reached the stand-in, so tests can assert what a proxy sent upstream.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::identity::UserInfo;

/// How many requests the log keeps; older ones are dropped first.
pub(crate) const LOG_CAPACITY: usize = 10_000;

/// One request as received, before the stand-in strips anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The raw `Authorization` header, if any.
    #[serde(default)]
    pub authorization: Option<String>,
    /// The raw `Impersonate-User` header, if any.
    #[serde(default)]
    pub impersonate_user: Option<String>,
    /// Every `Impersonate-Group` header, in order.
    #[serde(default)]
    pub impersonate_groups: Vec<String>,
    /// The raw `Impersonate-Uid` header, if any.
    #[serde(default)]
    pub impersonate_uid: Option<String>,
    /// `Impersonate-Extra-*` headers: the lower-cased name after the prefix to its values.
    #[serde(default)]
    pub impersonate_extra: BTreeMap<String, Vec<String>>,
    /// The `User-Agent` header, if any.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Every header name received, lowercase, each once, so tests
    /// can check that nothing unexpected reached the server.
    #[serde(default)]
    pub header_names: Vec<String>,
    /// Every `Sec-WebSocket-Protocol` line, as received.
    #[serde(default)]
    pub websocket_protocols: Vec<String>,
    /// Whether the request came over TLS with a verified client certificate.
    #[serde(default)]
    pub client_certificate: bool,
    /// Who the request authenticated as (absent when authentication failed).
    #[serde(default)]
    pub authenticated_user: Option<UserInfo>,
    /// Who the request acted as after impersonation (absent when refused).
    #[serde(default)]
    pub effective_user: Option<UserInfo>,
    /// The HTTP status the stand-in answered (the status line; a watch's events come later).
    pub status: u16,
    /// The client's address and port: requests with the same one came on the same connection.
    #[serde(default)]
    pub peer: Option<String>,
}

/// A bounded, thread-safe request log.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl RequestLog {
    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(request);
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
