//! `pods/ephemeralcontainers` (`kubectl debug`): GET, PATCH and PUT, as the apiserver's
//! `EphemeralContainersREST` serves them, and the pretend kubelet that starts what is added.
//!
//! kubectl 1.32's `kubectl debug POD --image=...` (`pkg/cmd/debug/debug.go`,
//! `debugByEphemeralContainer`) GETs the pod, appends an ephemeral container to a copy, sends
//! the strategic merge patch between the two (`{"spec":{"ephemeralContainers":[{...}]}}`, with
//! `"$setElementOrder/ephemeralContainers"` once the pod has some) to this subresource, then
//! lists and watches the pod until the container's status is `running` or `terminated`, and
//! attaches to it.
//!
//! As the apiserver's `podEphemeralContainersStrategy` does, only `spec.ephemeralContainers` of
//! the patched (or submitted) pod is kept, everything else stays as stored; ephemeral containers
//! may be added, never changed or removed; a new one needs a name unique among all the pod's
//! containers, an image, a `targetContainerName` naming a regular or init container, and none of
//! the fields an ephemeral container may not have (ports, probes, lifecycle, resources). The
//! answer is the updated Pod. Then the pretend kubelet reports each new container running
//! (`status.ephemeralContainerStatuses`), in a second update, as a kubelet's status update
//! follows the apiserver's write; an attach runs its command on the host (see the
//! `remotecommand` module, and [`image_default_command`] for a container without one).
//!
//! Simplifications: the first validation error is reported, not all of them; an ephemeral
//! container stays `running` after its process has exited.

use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::patch::{self, PatchType};
use super::store::Stored;
use super::StoreError;
use crate::apiserver::list_options::IncludeObject;
use crate::apiserver::names::is_dns1123_label;
use crate::apiserver::negotiation::Output;
use crate::apiserver::request_body;
use crate::apiserver::responses::object_response;
use crate::apiserver::state::SharedState;
use crate::apiserver::status::Status;
use crate::apiserver::tables::Printer;
use crate::apiserver::timefmt::rfc3339;

type Handled = Result<Response, Status>;

/// The fields an ephemeral container may set (`allowedEphemeralContainerFields` in
/// `pkg/apis/core/validation`), by their JSON names; `targetContainerName` is the
/// `EphemeralContainer`'s own.
const ALLOWED_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "env",
    "envFrom",
    "volumeMounts",
    "volumeDevices",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
    "targetContainerName",
];

/// A shell for the images `kubectl debug` is used with, whose entrypoint is a shell (busybox's
/// `sh`, alpine's `/bin/sh`, the distributions' `bash`): what the host runs for an ephemeral
/// container without a command (`kubectl debug -it POD --image=busybox`). `None` for any other
/// image: the container has no process the stand-in can run.
pub(crate) fn image_default_command(image: &str) -> Option<Vec<String>> {
    // `registry.example/library/busybox:1.36@sha256:...` -> `busybox`.
    let without_digest = image.split('@').next().unwrap_or_default();
    let last = without_digest.rsplit('/').next().unwrap_or_default();
    let repository = last.split(':').next().unwrap_or_default();
    let shell = match repository {
        "busybox" | "alpine" | "netshoot" => "sh",
        "ubuntu" | "debian" | "fedora" | "centos" | "rockylinux" | "almalinux" => "bash",
        _ => return None,
    };
    Some(vec![shell.to_owned()])
}

/// Whether `container` (in `spec.containers`, `initContainers` or `ephemeralContainers`) is
/// an ephemeral container of `pod`.
pub(crate) fn is_ephemeral(pod: &Value, container: &str) -> bool {
    names(pod, "ephemeralContainers").any(|name| name == container)
}

fn list<'a>(pod: &'a Value, key: &str) -> &'a [Value] {
    pod.get("spec")
        .and_then(|spec| spec.get(key))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn names<'a>(pod: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    list(pod, key)
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
}

fn not_found(name: &str) -> Status {
    Status::not_found("pods", name)
}

fn answer(pod: &Stored) -> Response {
    object_response(
        StatusCode::OK,
        pod,
        Output::Object,
        Printer::Pods,
        IncludeObject::Object,
    )
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers`: the pod.
pub(crate) async fn get(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
) -> Handled {
    let pod = state
        .store
        .pod(&ns, &name)
        .ok_or_else(|| not_found(&name))?;
    Ok(answer(&pod))
}

/// `PATCH /api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers` with a strategic merge or
/// merge patch of the pod.
pub(crate) async fn patch(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Handled {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = PatchType::from_content_type(content_type)
        .ok_or_else(|| Status::unsupported_media_type(content_type))?;
    let patch_doc: Value = serde_json::from_slice(&body)
        .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
    update(&state, &ns, &name, |current| {
        Ok(patch::apply(current, &patch_doc, kind))
    })
}

/// `PUT /api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers`: the submitted pod's
/// ephemeral containers, with a `resourceVersion` precondition when it has one.
pub(crate) async fn replace(
    State(state): State<SharedState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Handled {
    let object = request_body::decode(&headers, &body)?;
    let body_name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if body_name != name {
        return Err(Status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let precondition = object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
        .map(str::to_owned);
    update(&state, &ns, &name, |current| match &precondition {
        Some(rv)
            if Some(rv.as_str())
                != current
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str) =>
        {
            Err(StoreError::Conflict { name: name.clone() })
        }
        _ => Ok(object.clone()),
    })
}

/// Applies `submitted(current pod)` to the stored pod's ephemeral containers, then lets the
/// pretend kubelet start the new ones; answers the pod as written by the first update.
fn update(
    state: &SharedState,
    namespace: &str,
    name: &str,
    submitted: impl FnOnce(&Value) -> Result<Value, StoreError>,
) -> Handled {
    let written = state
        .store
        .update_pod(namespace, name, |current| {
            let new = submitted(&current.object)?;
            with_ephemeral_containers(&current.object, &new)
        })
        .map_err(|e| e.to_status())?;
    // The kubelet's status update. A pod deleted in between has nothing to report on.
    let now = rfc3339(std::time::SystemTime::now());
    let _ = state.store.update_pod(namespace, name, |current| {
        Ok(with_kubelet_status(&current.object, &now))
    });
    Ok(answer(&written))
}

/// `current` with `new`'s `spec.ephemeralContainers`, checked and defaulted as the apiserver's
/// ephemeral containers strategy does.
fn with_ephemeral_containers(current: &Value, new: &Value) -> Result<Value, StoreError> {
    let pod_name = current
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let invalid = |field: String, cause: &'static str, message: String| {
        StoreError::invalid("Pod", pod_name, &field, cause, message)
    };
    let submitted: Vec<Value> = match new.pointer("/spec/ephemeralContainers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.clone(),
        Some(_) => {
            return Err(StoreError::BadRequest(
                "spec.ephemeralContainers: expected an array".to_owned(),
            ))
        }
    };
    let old = list(current, "ephemeralContainers");
    // Ephemeral containers may not be removed or changed once added.
    for (i, existing) in old.iter().enumerate() {
        let existing_name = existing.get("name").and_then(Value::as_str).unwrap_or("");
        match submitted
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(existing_name))
        {
            None => {
                return Err(invalid(
                    "spec.ephemeralContainers".to_owned(),
                    "FieldValueForbidden",
                    format!(
                        "Forbidden: existing ephemeral containers {existing_name:?} may not be removed\n"
                    ),
                ))
            }
            Some(c) if c != existing => {
                return Err(invalid(
                    format!("spec.ephemeralContainers[{i}]"),
                    "FieldValueForbidden",
                    format!(
                        "Forbidden: existing ephemeral containers {existing_name:?} may not be changed\n"
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let others: Vec<&str> = names(current, "containers")
        .chain(names(current, "initContainers"))
        .collect();
    let mut seen: Vec<String> = others.iter().map(|n| (*n).to_owned()).collect();
    let mut checked = Vec::with_capacity(submitted.len());
    for (i, container) in submitted.into_iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        let Value::Object(mut c) = container else {
            return Err(StoreError::BadRequest(format!(
                "{path}: expected an object"
            )));
        };
        let is_new = !old.iter().any(|o| o.get("name") == c.get("name"));
        let cname = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if is_new {
            check_new(&c, &path, &others)
                .map_err(|(field, cause, message)| invalid(field, cause, message))?;
            default_new(&mut c);
        }
        if seen.contains(&cname) {
            return Err(invalid(
                format!("{path}.name"),
                "FieldValueDuplicate",
                format!("Duplicate value: {cname:?}"),
            ));
        }
        seen.push(cname);
        checked.push(Value::Object(c));
    }
    let mut updated = current.clone();
    if let Some(spec) = updated.get_mut("spec").and_then(Value::as_object_mut) {
        if checked.is_empty() {
            spec.remove("ephemeralContainers");
        } else {
            spec.insert("ephemeralContainers".into(), Value::Array(checked));
        }
    }
    Ok(updated)
}

/// A new ephemeral container's validation: `(field, cause, message)` of the first error.
fn check_new(
    c: &Map<String, Value>,
    path: &str,
    others: &[&str],
) -> Result<(), (String, &'static str, String)> {
    let text = |key: &str| c.get(key).and_then(Value::as_str).unwrap_or_default();
    let name = text("name");
    if name.is_empty() {
        return Err((
            format!("{path}.name"),
            "FieldValueRequired",
            "Required value".to_owned(),
        ));
    }
    if !is_dns1123_label(name) {
        return Err((
            format!("{path}.name"),
            "FieldValueInvalid",
            format!("Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
        ));
    }
    if text("image").trim().is_empty() {
        return Err((
            format!("{path}.image"),
            "FieldValueRequired",
            "Required value".to_owned(),
        ));
    }
    let target = text("targetContainerName");
    if !target.is_empty() && !others.contains(&target) {
        return Err((
            format!("{path}.targetContainerName"),
            "FieldValueNotFound",
            format!("Not found: {target:?}"),
        ));
    }
    for (key, value) in c {
        let empty = match value {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if !ALLOWED_FIELDS.contains(&key.as_str()) && !empty {
            return Err((
                format!("{path}.{key}"),
                "FieldValueForbidden",
                "Forbidden: cannot be set for an Ephemeral Container".to_owned(),
            ));
        }
    }
    Ok(())
}

/// The defaults the apiserver fills in for a container (`SetDefaults_Container`).
fn default_new(c: &mut Map<String, Value>) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let tag = image
        .split('@')
        .next()
        .and_then(|i| i.rsplit('/').next())
        .and_then(|last| last.split_once(':').map(|(_, tag)| tag.to_owned()));
    let pull = if image.contains('@') || tag.as_deref().is_some_and(|t| t != "latest") {
        "IfNotPresent"
    } else {
        "Always"
    };
    let pull_unset = c
        .get("imagePullPolicy")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if pull_unset {
        c.insert("imagePullPolicy".into(), json!(pull));
    }
    c.entry("terminationMessagePath")
        .or_insert(json!("/dev/termination-log"));
    let policy_unset = c
        .get("terminationMessagePolicy")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if policy_unset {
        c.insert("terminationMessagePolicy".into(), json!("File"));
    }
    // An empty `resources` is what Go's encoder writes for the zero struct.
    c.entry("resources").or_insert(json!({}));
}

/// `pod` with a status for each ephemeral container that has none: running (since `now`) when
/// the pod is, else waiting, as a kubelet reports a container it has just started.
fn with_kubelet_status(pod: &Value, now: &str) -> Value {
    let mut updated = pod.clone();
    let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
    let pod_ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_owned();
    let mut statuses: Vec<Value> = pod
        .pointer("/status/ephemeralContainerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in list(pod, "ephemeralContainers") {
        let name = c.get("name").cloned().unwrap_or(Value::Null);
        if statuses.iter().any(|s| s.get("name") == Some(&name)) {
            continue;
        }
        let state = if running {
            json!({ "running": { "startedAt": now } })
        } else {
            json!({ "waiting": { "reason": "PodInitializing" } })
        };
        statuses.push(json!({
            "name": name,
            "state": state,
            "lastState": {},
            "ready": false,
            "restartCount": 0,
            "image": c.get("image").cloned().unwrap_or(Value::Null),
            "imageID": "",
            "containerID": format!(
                "containerd://testkit-{pod_ip}-{}",
                name.as_str().unwrap_or_default()
            ),
        }));
    }
    if statuses.is_empty() {
        return updated;
    }
    if !updated.get("status").is_some_and(Value::is_object) {
        updated["status"] = json!({});
    }
    updated["status"]["ephemeralContainerStatuses"] = Value::Array(statuses);
    updated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "demo", "resourceVersion": "5"},
            "spec": {"containers": [{"name": "main", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": "10.244.0.2"},
        })
    }

    fn debugger(name: &str) -> Value {
        json!({"name": name, "image": "busybox", "command": ["sh"], "stdin": true, "tty": true,
               "targetContainerName": "main", "resources": {}, "terminationMessagePolicy": "File"})
    }

    #[test]
    fn kubectl_debugs_patch_adds_a_container_and_the_kubelet_starts_it() {
        let patch_doc = json!({"spec": {"ephemeralContainers": [debugger("debugger-abcde")]}});
        let patched = patch::apply(&pod(), &patch_doc, PatchType::Strategic);
        let updated = with_ephemeral_containers(&pod(), &patched).expect("valid");
        let ec = &updated["spec"]["ephemeralContainers"][0];
        assert_eq!(ec["name"], "debugger-abcde");
        assert_eq!(ec["imagePullPolicy"], "Always");
        assert_eq!(ec["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(updated["spec"]["containers"], pod()["spec"]["containers"]);
        assert!(is_ephemeral(&updated, "debugger-abcde"));
        assert!(!is_ephemeral(&updated, "main"));

        let started = with_kubelet_status(&updated, "2026-01-01T00:00:00Z");
        let status = &started["status"]["ephemeralContainerStatuses"][0];
        assert_eq!(status["name"], "debugger-abcde");
        assert!(status["state"]["running"].is_object());

        // A second debug session: $setElementOrder, the old one kept as it was.
        let second = json!({"spec": {
            "$setElementOrder/ephemeralContainers": [{"name": "debugger-abcde"}, {"name": "debugger-fghij"}],
            "ephemeralContainers": [debugger("debugger-fghij")],
        }});
        let patched = patch::apply(&started, &second, PatchType::Strategic);
        let again = with_ephemeral_containers(&started, &patched).expect("valid");
        assert_eq!(
            again["spec"]["ephemeralContainers"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        let both = with_kubelet_status(&again, "2026-01-01T00:00:01Z");
        assert_eq!(
            both["status"]["ephemeralContainerStatuses"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn only_ephemeral_containers_change() {
        let mut new = pod();
        new["spec"]["containers"][0]["image"] = json!("evil");
        new["metadata"]["labels"] = json!({"a": "b"});
        new["spec"]["ephemeralContainers"] = json!([debugger("d")]);
        let updated = with_ephemeral_containers(&pod(), &new).expect("valid");
        assert_eq!(updated["spec"]["containers"][0]["image"], "nginx");
        assert!(updated["metadata"].get("labels").is_none());
    }

    #[test]
    fn refusals() {
        let cases = [
            (
                json!({"name": "main", "image": "busybox"}),
                "spec.ephemeralContainers[0].name",
                "Duplicate value",
            ),
            (
                json!({"name": "d"}),
                "spec.ephemeralContainers[0].image",
                "Required value",
            ),
            (
                json!({"name": "d", "image": "b", "targetContainerName": "nope"}),
                "spec.ephemeralContainers[0].targetContainerName",
                "Not found: \"nope\"",
            ),
            (
                json!({"name": "d", "image": "b", "ports": [{"containerPort": 80}]}),
                "spec.ephemeralContainers[0].ports",
                "cannot be set for an Ephemeral Container",
            ),
            (
                json!({"name": "D_", "image": "b"}),
                "spec.ephemeralContainers[0].name",
                "RFC 1123",
            ),
        ];
        for (container, field, what) in cases {
            let mut new = pod();
            new["spec"]["ephemeralContainers"] = json!([container]);
            let Err(StoreError::Invalid {
                field: f, message, ..
            }) = with_ephemeral_containers(&pod(), &new)
            else {
                panic!("{field} accepted");
            };
            assert_eq!(f, field);
            assert!(message.contains(what), "{message}");
        }
        // Existing ones may be neither removed nor changed.
        let mut with_one = pod();
        with_one["spec"]["ephemeralContainers"] = json!([debugger("d")]);
        let with_one = with_ephemeral_containers(&pod(), &with_one).expect("valid");
        let mut removed = with_one.clone();
        removed["spec"]["ephemeralContainers"] = json!([]);
        assert!(matches!(
            with_ephemeral_containers(&with_one, &removed),
            Err(StoreError::Invalid { ref message, .. }) if message.contains("may not be removed")
        ));
        let mut changed = with_one.clone();
        changed["spec"]["ephemeralContainers"][0]["image"] = json!("other");
        assert!(matches!(
            with_ephemeral_containers(&with_one, &changed),
            Err(StoreError::Invalid { ref message, .. }) if message.contains("may not be changed")
        ));
    }

    #[test]
    fn shells_for_shell_images() {
        assert_eq!(
            image_default_command("busybox"),
            Some(vec!["sh".to_owned()])
        );
        assert_eq!(
            image_default_command("docker.io/library/busybox:1.36@sha256:ab"),
            Some(vec!["sh".to_owned()])
        );
        assert_eq!(
            image_default_command("ubuntu:24.04"),
            Some(vec!["bash".to_owned()])
        );
        assert_eq!(image_default_command("nginx"), None);
    }
}
