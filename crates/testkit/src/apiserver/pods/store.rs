//! The object store: pods and namespaces, one global resourceVersion counter (as etcd's revision),
//! and a bounded history of pod events feeding watches.
//!
//! Every change happens under one lock, and watch subscription takes the same lock, so a watch
//! sees exactly the events after its starting point: no gap and no duplicate. Each stored object
//! keeps its JSON encoding, so a list of thousands of pods is a concatenation, not a serialisation.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::ids::IdGenerator;
use super::object::{complete_new_pod, namespace_object, validate_new_pod, Assigned};
use super::StoreError;
use crate::apiserver::names::is_dns1123_label;

pub(crate) use super::stored::{EventType, Page, PodEvent, PodKey, Stored, WatchStart};

/// Pod events kept for watches that resume from a resourceVersion.
const HISTORY: usize = 1024;
/// Events a slow watcher may fall behind before its watch is ended with `410 Expired`.
const BROADCAST_CAPACITY: usize = 4096;

#[derive(Debug)]
struct State {
    resource_version: u64,
    ids: IdGenerator,
    pods: BTreeMap<PodKey, Arc<Stored>>,
    namespaces: BTreeMap<String, Arc<Stored>>,
    history: VecDeque<Arc<PodEvent>>,
    /// resourceVersion of the newest event dropped from `history`.
    history_floor: u64,
}

impl State {
    fn next_rv(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn insert_namespace(&mut self, name: &str, labels: Option<&Value>) -> Arc<Stored> {
        let rv = self.next_rv();
        let uid = self.ids.uid();
        let stored = Stored::new(
            namespace_object(name, &uid, rv, SystemTime::now(), labels),
            rv,
        );
        self.namespaces.insert(name.to_owned(), stored.clone());
        stored
    }
}

/// The stand-in's objects.
#[derive(Debug)]
pub(crate) struct Store {
    state: Mutex<State>,
    events: broadcast::Sender<Arc<PodEvent>>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub(crate) fn new() -> Self {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        Store {
            state: Mutex::new(State {
                resource_version: 0,
                ids: IdGenerator::default(),
                pods: BTreeMap::new(),
                namespaces: BTreeMap::new(),
                history: VecDeque::new(),
                history_floor: 0,
            }),
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated (each change is one
        // insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, state: &mut State, kind: EventType, pod: Arc<Stored>) {
        let event = Arc::new(PodEvent { kind, pod });
        if state.history.len() >= HISTORY {
            if let Some(old) = state.history.pop_front() {
                state.history_floor = old.pod.resource_version;
            }
        }
        state.history.push_back(event.clone());
        // No receivers is not an error: nobody is watching.
        let _ = self.events.send(event);
    }

    /// Creates the namespace if it does not exist.
    pub(crate) fn ensure_namespace(&self, name: &str) -> Arc<Stored> {
        let mut state = self.lock();
        match state.namespaces.get(name) {
            Some(ns) => ns.clone(),
            None => state.insert_namespace(name, None),
        }
    }

    /// Creates a namespace from a submitted object.
    pub(crate) fn create_namespace(&self, object: &Value) -> Result<Arc<Stored>, StoreError> {
        let obj = object.as_object().ok_or_else(|| {
            StoreError::BadRequest("the object provided is not a JSON object".to_owned())
        })?;
        super::object::check_kind(obj, "Namespace")?;
        let meta = obj.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name.is_empty() {
            return Err(StoreError::invalid(
                "Namespace",
                "",
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            ));
        }
        if !is_dns1123_label(name) {
            return Err(StoreError::invalid("Namespace", name, "metadata.name", "FieldValueInvalid", format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character")));
        }
        let mut state = self.lock();
        if state.namespaces.contains_key(name) {
            return Err(StoreError::AlreadyExists {
                resource: "namespaces",
                name: name.to_owned(),
            });
        }
        Ok(state.insert_namespace(name, meta.and_then(|m| m.get("labels"))))
    }

    pub(crate) fn namespace(&self, name: &str) -> Option<Arc<Stored>> {
        self.lock().namespaces.get(name).cloned()
    }

    /// All namespaces matching `filter`, with the current resourceVersion.
    pub(crate) fn list_namespaces(
        &self,
        filter: impl Fn(&Stored) -> bool,
    ) -> (u64, Vec<Arc<Stored>>) {
        let state = self.lock();
        let items = state
            .namespaces
            .values()
            .filter(|ns| filter(ns))
            .cloned()
            .collect();
        (state.resource_version, items)
    }

    /// Creates a pod in `namespace` from a submitted object, firing `ADDED`.
    pub(crate) fn create_pod(
        &self,
        namespace: &str,
        object: Value,
    ) -> Result<Arc<Stored>, StoreError> {
        validate_new_pod(&object, namespace)?;
        let meta = object.get("metadata");
        let requested = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let prefix = meta
            .and_then(|m| m.get("generateName"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut state = self.lock();
        if !state.namespaces.contains_key(namespace) {
            return Err(StoreError::NotFound {
                resource: "namespaces",
                name: namespace.to_owned(),
            });
        }
        let name = if requested.is_empty() {
            // Retry on the (unlikely) collision, as the apiserver does since v1.30 (RetryGenerateName).
            let mut name = format!("{prefix}{}", state.ids.name_suffix());
            for _ in 0..8 {
                if !state
                    .pods
                    .contains_key(&(namespace.to_owned(), name.clone()))
                {
                    break;
                }
                name = format!("{prefix}{}", state.ids.name_suffix());
            }
            name
        } else {
            requested
        };
        let key = (namespace.to_owned(), name.clone());
        if state.pods.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                resource: "pods",
                name,
            });
        }
        let rv = state.next_rv();
        let uid = state.ids.uid();
        let n = state.pods.len() as u64;
        let pod_ip = format!("10.244.{}.{}", (n / 250) % 256, n % 250 + 2);
        let assigned = Assigned {
            namespace,
            name: &name,
            uid,
            resource_version: rv,
            now: SystemTime::now(),
            pod_ip,
        };
        let stored = Stored::new(complete_new_pod(object, &assigned), rv);
        state.pods.insert(key, stored.clone());
        self.publish(&mut state, EventType::Added, stored.clone());
        Ok(stored)
    }

    pub(crate) fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Stored>> {
        self.lock()
            .pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Up to `limit` pods matching `filter`, in key order, after `after`.
    pub(crate) fn list_pods(
        &self,
        namespace: Option<&str>,
        after: Option<&PodKey>,
        limit: Option<usize>,
        filter: impl Fn(&Stored) -> bool,
    ) -> Page {
        let state = self.lock();
        let start = match (after, namespace) {
            (Some(key), _) => Bound::Excluded(key.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_owned(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut matching = state
            .pods
            .range((start, Bound::Unbounded))
            .take_while(|(key, _)| namespace.is_none_or(|ns| key.0 == ns))
            .filter(|(_, pod)| filter(pod));
        let limit = limit.unwrap_or(usize::MAX);
        let items: Vec<Arc<Stored>> = matching
            .by_ref()
            .take(limit)
            .map(|(_, pod)| pod.clone())
            .collect();
        let remaining = matching.count();
        let next = (remaining > 0)
            .then(|| {
                items
                    .last()
                    .map(|p| (p.namespace().to_owned(), p.name().to_owned()))
            })
            .flatten();
        Page {
            resource_version: state.resource_version,
            items,
            next,
            remaining,
        }
    }

    /// Replaces a pod with `update(current)`, firing `MODIFIED` when anything changed.
    /// Identity fields (name, namespace, uid, creationTimestamp) are kept from the current pod.
    pub(crate) fn update_pod(
        &self,
        namespace: &str,
        name: &str,
        update: impl FnOnce(&Stored) -> Result<Value, StoreError>,
    ) -> Result<Arc<Stored>, StoreError> {
        let mut state = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        let current = state
            .pods
            .get(&key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                resource: "pods",
                name: name.to_owned(),
            })?;
        let mut updated = update(&current)?;
        if !updated.is_object() {
            return Err(StoreError::BadRequest(
                "the updated object is not a JSON object".to_owned(),
            ));
        }
        let current_meta = current
            .object
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if !updated.get("metadata").is_some_and(Value::is_object) {
            updated["metadata"] = json!({});
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "resourceVersion",
        ] {
            updated["metadata"][field] = current_meta.get(field).cloned().unwrap_or(Value::Null);
        }
        updated["apiVersion"] = json!("v1");
        updated["kind"] = json!("Pod");
        if updated == current.object {
            // The apiserver does not write (or bump the resourceVersion for) a no-op update.
            return Ok(current);
        }
        let rv = state.next_rv();
        updated["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Stored::new(updated, rv);
        state.pods.insert(key, stored.clone());
        self.publish(&mut state, EventType::Modified, stored.clone());
        Ok(stored)
    }

    /// Deletes a pod at once (no grace period: there is no kubelet to wait for), firing `DELETED`.
    pub(crate) fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Stored>, StoreError> {
        let mut state = self.lock();
        let removed = state
            .pods
            .remove(&(namespace.to_owned(), name.to_owned()))
            .ok_or_else(|| StoreError::NotFound {
                resource: "pods",
                name: name.to_owned(),
            })?;
        let rv = state.next_rv();
        let mut object = removed.object.clone();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let stored = Stored::new(object, rv);
        self.publish(&mut state, EventType::Deleted, stored.clone());
        Ok(stored)
    }

    /// Starts a pod watch. `since: None` (resourceVersion unset or `0`) begins with a synthetic
    /// `ADDED` for every pod, as the apiserver does; `Some(rv)` replays the changes after `rv`.
    pub(crate) fn watch_pods(&self, since: Option<u64>) -> Result<WatchStart, StoreError> {
        let state = self.lock();
        let live = self.events.subscribe();
        let backlog = match since {
            None => state
                .pods
                .values()
                .map(|pod| {
                    Arc::new(PodEvent {
                        kind: EventType::Added,
                        pod: pod.clone(),
                    })
                })
                .collect(),
            Some(rv) if rv < state.history_floor => {
                return Err(StoreError::Expired(format!(
                    "too old resource version: {rv} ({})",
                    state.history_floor + 1
                )))
            }
            Some(rv) => state
                .history
                .iter()
                .filter(|e| e.pod.resource_version > rv)
                .cloned()
                .collect(),
        };
        Ok(WatchStart { backlog, live })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "main"}]}})
    }

    #[test]
    fn create_list_delete() {
        let store = Store::new();
        store.ensure_namespace("default");
        assert!(matches!(
            store.create_pod("nope", pod("a")),
            Err(StoreError::NotFound { .. })
        ));
        store.create_pod("default", pod("a")).expect("created");
        store.create_pod("default", pod("b")).expect("created");
        assert!(matches!(
            store.create_pod("default", pod("a")),
            Err(StoreError::AlreadyExists { .. })
        ));
        let page = store.list_pods(Some("default"), None, Some(1), |_| true);
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.remaining, 1);
        let next = store.list_pods(Some("default"), page.next.as_ref(), Some(1), |_| true);
        assert_eq!(next.items[0].name(), "b");
        assert!(next.next.is_none());
        store.delete_pod("default", "a").expect("deleted");
        assert_eq!(store.list_pods(None, None, None, |_| true).items.len(), 1);
    }

    #[test]
    fn watch_resumes_after_resource_version() {
        let store = Store::new();
        store.ensure_namespace("default");
        let a = store.create_pod("default", pod("a")).expect("created");
        store.create_pod("default", pod("b")).expect("created");
        let start = store.watch_pods(Some(a.resource_version)).expect("watch");
        assert_eq!(start.backlog.len(), 1);
        assert_eq!(start.backlog[0].pod.name(), "b");
        let from_scratch = store.watch_pods(None).expect("watch");
        assert_eq!(from_scratch.backlog.len(), 2);
    }

    #[test]
    fn no_op_update_keeps_resource_version() {
        let store = Store::new();
        store.ensure_namespace("default");
        let a = store.create_pod("default", pod("a")).expect("created");
        let same = store
            .update_pod("default", "a", |p| Ok(p.object.clone()))
            .expect("updated");
        assert_eq!(same.resource_version, a.resource_version);
        let changed = store
            .update_pod("default", "a", |p| {
                let mut v = p.object.clone();
                v["metadata"]["labels"] = json!({"x": "y"});
                Ok(v)
            })
            .expect("updated");
        assert!(changed.resource_version > a.resource_version);
    }
}
