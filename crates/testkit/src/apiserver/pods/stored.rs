//! What the store hands out: stored objects with their JSON, watch events, list pages.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

/// `(namespace, name)`, ordered as etcd orders keys.
pub(crate) type PodKey = (String, String);

/// An object and its JSON encoding.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) object: Value,
    pub(crate) json: Bytes,
    pub(crate) resource_version: u64,
}

impl Stored {
    pub(crate) fn new(object: Value, resource_version: u64) -> Arc<Self> {
        // Serialising a serde_json::Value cannot fail (all keys are strings).
        let json = Bytes::from(serde_json::to_vec(&object).unwrap_or_default());
        Arc::new(Stored {
            object,
            json,
            resource_version,
        })
    }

    fn meta_str(&self, key: &str) -> &str {
        self.object
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub(crate) fn name(&self) -> &str {
        self.meta_str("name")
    }

    pub(crate) fn namespace(&self) -> &str {
        self.meta_str("namespace")
    }

    pub(crate) fn labels(&self) -> Option<&Map<String, Value>> {
        self.object
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
    }
}

/// Watch event types (`watch.EventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change to a pod; the pod carries the resourceVersion of the change.
#[derive(Debug)]
pub(crate) struct PodEvent {
    pub(crate) kind: EventType,
    pub(crate) pod: Arc<Stored>,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) resource_version: u64,
    pub(crate) items: Vec<Arc<Stored>>,
    /// The last key returned, when more items follow.
    pub(crate) next: Option<PodKey>,
    pub(crate) remaining: usize,
}

/// Where a watch starts: its backlog, then live events.
#[derive(Debug)]
pub(crate) struct WatchStart {
    pub(crate) backlog: Vec<Arc<PodEvent>>,
    pub(crate) live: broadcast::Receiver<Arc<PodEvent>>,
}
