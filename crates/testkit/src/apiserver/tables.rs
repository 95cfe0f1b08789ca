//! Server-side tables (`meta.k8s.io/v1` `Table`), as `kubectl get` prints them.
//!
//! Columns and cells follow the apiserver's printers (`pkg/printers/internalversion/printers.go`:
//! `printPod`, `printNamespace`). The server always sends every column; kubectl hides those with
//! priority > 0 unless `-o wide`. Rows carry the object as `includeObject` says (default
//! `PartialObjectMetadata`), which kubectl uses for `-A` (the NAMESPACE column), `--show-labels`
//! and `-L`; it decodes it as unstructured, so it must have `kind` and `apiVersion`.

use std::time::SystemTime;

use serde_json::{json, Value};

use super::list_options::IncludeObject;
use super::negotiation::TableVersion;
use super::pods::store::Stored;
use super::timefmt::age_since;

/// A resource the stand-in prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Printer {
    Pods,
    Namespaces,
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.";
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

fn column(name: &str, format: &str, description: &str, priority: u8) -> Value {
    json!({ "name": name, "type": "string", "format": format, "description": description, "priority": priority })
}

impl Printer {
    /// `columnDefinitions`.
    pub(crate) fn columns(self) -> Value {
        match self {
            Printer::Pods => json!([
                column("Name", "name", NAME_DESCRIPTION, 0),
                column("Ready", "", "The aggregate readiness state of this pod for accepting traffic.", 0),
                column("Status", "", "The aggregate status of the containers in this pod.", 0),
                column("Restarts", "", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
                column("Age", "", AGE_DESCRIPTION, 0),
                column("IP", "", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
                column("Node", "", "NodeName is a request to schedule this pod onto a specific node.", 1),
                column("Nominated Node", "", "nominatedNodeName is set only when this pod preempts other pods on the node.", 1),
                column("Readiness Gates", "", "If specified, all readiness gates will be evaluated for pod readiness.", 1),
            ]),
            Printer::Namespaces => json!([
                column("Name", "name", NAME_DESCRIPTION, 0),
                column("Status", "", "The status of the namespace", 0),
                column("Age", "", AGE_DESCRIPTION, 0),
            ]),
        }
    }

    fn cells(self, object: &Value, now: SystemTime) -> Value {
        match self {
            Printer::Pods => pod_cells(object, now),
            Printer::Namespaces => {
                let s = |path: &[&str]| str_at(object, path).to_owned();
                json!([
                    s(&["metadata", "name"]),
                    s(&["status", "phase"]),
                    age(object, now)
                ])
            }
        }
    }

    /// Appends one row (`{"cells":[...],"object":...}`) to `out`.
    pub(crate) fn encode_row(
        self,
        stored: &Stored,
        include: IncludeObject,
        version: TableVersion,
        now: SystemTime,
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(b"{\"cells\":");
        out.extend_from_slice(self.cells(&stored.object, now).to_string().as_bytes());
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                let partial = json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": version.api_version(),
                    "metadata": stored.object.get("metadata").cloned().unwrap_or_else(|| json!({})),
                });
                out.extend_from_slice(b",\"object\":");
                out.extend_from_slice(partial.to_string().as_bytes());
            }
            IncludeObject::Object => {
                out.extend_from_slice(b",\"object\":");
                out.extend_from_slice(&stored.json);
            }
        }
        out.push(b'}');
    }
}

/// The start of a table up to and including `"rows":[`. `columns: false` writes
/// `"columnDefinitions":null`, as the apiserver does for every watch event after the first.
pub(crate) fn table_prefix(
    printer: Printer,
    version: TableVersion,
    metadata: &Value,
    columns: bool,
) -> Vec<u8> {
    let columns = if columns {
        printer.columns()
    } else {
        Value::Null
    };
    format!(
        "{{\"kind\":\"Table\",\"apiVersion\":\"{}\",\"metadata\":{metadata},\"columnDefinitions\":{columns},\"rows\":[",
        version.api_version()
    )
    .into_bytes()
}

/// Closes what [`table_prefix`] opened.
pub(crate) const TABLE_SUFFIX: &[u8] = b"]}";

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn age(object: &Value, now: SystemTime) -> String {
    let created = object
        .get("metadata")
        .and_then(|m| m.get("creationTimestamp"))
        .and_then(Value::as_str);
    age_since(created, now)
}

fn none_if_empty(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_owned()
    } else {
        s.to_owned()
    }
}

/// `printPod`, without the restart-time suffix (the stand-in never restarts containers).
fn pod_cells(pod: &Value, now: SystemTime) -> Value {
    let empty = Vec::new();
    let spec_containers = pod
        .get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let statuses = pod
        .get("status")
        .and_then(|s| s.get("containerStatuses"))
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut reason = str_at(pod, &["status", "reason"]).to_owned();
    if reason.is_empty() {
        reason = str_at(pod, &["status", "phase"]).to_owned();
    }
    let (mut ready, mut restarts, mut has_running) = (0, 0u64, false);
    for c in statuses {
        restarts += c.get("restartCount").and_then(Value::as_u64).unwrap_or(0);
        let state = c.get("state");
        let waiting = state
            .and_then(|s| s.get("waiting"))
            .and_then(|w| w.get("reason"))
            .and_then(Value::as_str);
        let terminated = state.and_then(|s| s.get("terminated"));
        if let Some(w) = waiting.filter(|w| !w.is_empty()) {
            reason = w.to_owned();
        } else if let Some(t) = terminated {
            reason = match (
                t.get("reason").and_then(Value::as_str),
                t.get("signal").and_then(Value::as_i64),
            ) {
                (Some(r), _) if !r.is_empty() => r.to_owned(),
                (_, Some(sig)) if sig != 0 => format!("Signal:{sig}"),
                _ => format!(
                    "ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                ),
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true)
            && state.is_some_and(|s| s.get("running").is_some())
        {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        reason = "Running".to_owned();
    }
    if pod
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some()
    {
        reason = "Terminating".to_owned();
    }
    let gates = pod
        .get("spec")
        .and_then(|s| s.get("readinessGates"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let readiness_gates = if gates == 0 {
        "<none>".to_owned()
    } else {
        format!("0/{gates}")
    };
    json!([
        str_at(pod, &["metadata", "name"]),
        format!("{ready}/{}", spec_containers.len()),
        reason,
        restarts.to_string(),
        age(pod, now),
        none_if_empty(str_at(pod, &["status", "podIP"])),
        none_if_empty(str_at(pod, &["spec", "nodeName"])),
        none_if_empty(str_at(pod, &["status", "nominatedNodeName"])),
        readiness_gates,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_row() {
        let pod = json!({
            "metadata": {"name": "demo", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n"},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        let now = super::super::timefmt::parse_rfc3339("2025-01-01T00:00:30Z").expect("time");
        assert_eq!(
            pod_cells(&pod, now),
            json!([
                "demo",
                "1/2",
                "CrashLoopBackOff",
                "1",
                "30s",
                "10.0.0.1",
                "n",
                "<none>",
                "<none>"
            ])
        );
    }
}
