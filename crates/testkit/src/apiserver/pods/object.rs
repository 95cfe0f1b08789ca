//! What a stored pod looks like: validation of a submitted pod, the defaults the apiserver (and,
//! here, a pretend kubelet) fill in, and pods built from configuration.
//!
//! The stand-in has no scheduler or kubelet: a created pod is bound to [`NODE_NAME`] and reported
//! as running at once (unless the submitted object already carries a `status.phase`), so that
//! `kubectl get` shows it `Running` and later exec/attach can find it.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::StoreError;
use crate::apiserver::config::PodConfig;
use crate::apiserver::names::{is_dns1123_label, is_dns1123_subdomain};
use crate::apiserver::timefmt::rfc3339;

/// The node every pod runs on.
pub(crate) const NODE_NAME: &str = "testkit-node";
/// The node's address (`status.hostIP`).
const HOST_IP: &str = "10.0.0.10";

/// Identity and bookkeeping assigned to a new object by the store.
pub(crate) struct Assigned<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) uid: String,
    pub(crate) resource_version: u64,
    pub(crate) now: SystemTime,
    pub(crate) pod_ip: String,
}

/// The manifest a user would write for a configured pod.
pub(crate) fn manifest_from_config(pod: &PodConfig) -> Value {
    let containers: Vec<Value> = pod
        .containers
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut container = json!({ "name": name, "image": pod.image });
            // The attach settings belong to the first container, as `kubectl run -it` makes it.
            if i == 0 && !pod.attach_command.is_empty() {
                container["command"] = json!(pod.attach_command);
                container["stdin"] = json!(pod.stdin);
                container["tty"] = json!(pod.tty);
            }
            container
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": pod.name, "namespace": pod.namespace, "labels": pod.labels },
        "spec": { "containers": containers },
        "status": { "phase": pod.phase },
    })
}

/// Checks a submitted pod as the apiserver's validation would (the parts the stand-in relies on).
/// `path_namespace` is the namespace of the request path. The name may be empty when
/// `generateName` is set.
pub(crate) fn validate_new_pod(pod: &Value, path_namespace: &str) -> Result<(), StoreError> {
    let Some(obj) = pod.as_object() else {
        return Err(StoreError::BadRequest(
            "the object provided is not a JSON object".to_owned(),
        ));
    };
    check_kind(obj, "Pod")?;
    let meta = obj.get("metadata").and_then(Value::as_object);
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let generate = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(ns) = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        if !ns.is_empty() && ns != path_namespace {
            return Err(StoreError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".to_owned(),
            ));
        }
    }
    if name.is_empty() && generate.is_empty() {
        return Err(StoreError::invalid(
            "Pod",
            "",
            "metadata.name",
            "FieldValueRequired",
            "Required value: name or generateName is required",
        ));
    }
    if !name.is_empty() && !is_dns1123_subdomain(name) {
        return Err(StoreError::invalid(
            "Pod",
            name,
            "metadata.name",
            "FieldValueInvalid",
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    let containers = obj
        .get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match containers {
        Some(list) if !list.is_empty() => {
            for (i, c) in list.iter().enumerate() {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                if !is_dns1123_label(cname) {
                    return Err(StoreError::invalid(
                        "Pod",
                        name,
                        &format!("spec.containers[{i}].name"),
                        "FieldValueRequired",
                        "Required value",
                    ));
                }
            }
            Ok(())
        }
        _ => Err(StoreError::invalid(
            "Pod",
            name,
            "spec.containers",
            "FieldValueRequired",
            "Required value",
        )),
    }
}

/// Refuses an object whose `kind`/`apiVersion` are present and not what the path serves.
pub(crate) fn check_kind(obj: &Map<String, Value>, kind: &str) -> Result<(), StoreError> {
    if let Some(api_version) = obj.get("apiVersion").and_then(Value::as_str) {
        if api_version != "v1" {
            return Err(StoreError::BadRequest(format!(
                "the API version in the data ({api_version}) does not match the expected API version (v1)"
            )));
        }
    }
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != kind {
            return Err(StoreError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({kind})"
            )));
        }
    }
    Ok(())
}

/// Takes `key` out of `obj` as a map (empty when absent or not a map).
fn take_map(obj: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match obj.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Fills in what the apiserver and kubelet would: metadata, spec defaults and a status.
pub(crate) fn complete_new_pod(pod: Value, a: &Assigned<'_>) -> Value {
    let mut pod = match pod {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    pod.insert("apiVersion".into(), json!("v1"));
    pod.insert("kind".into(), json!("Pod"));
    let created = rfc3339(a.now);

    let mut meta = take_map(&mut pod, "metadata");
    meta.insert("name".into(), json!(a.name));
    meta.insert("namespace".into(), json!(a.namespace));
    meta.insert("uid".into(), json!(a.uid));
    meta.insert(
        "resourceVersion".into(),
        json!(a.resource_version.to_string()),
    );
    meta.insert("creationTimestamp".into(), json!(created));
    meta.remove("deletionTimestamp");
    meta.remove("managedFields");
    pod.insert("metadata".into(), Value::Object(meta));

    let mut spec = take_map(&mut pod, "spec");
    for (key, value) in [
        ("nodeName", json!(NODE_NAME)),
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("serviceAccountName", json!("default")),
        ("schedulerName", json!("default-scheduler")),
        ("enableServiceLinks", json!(true)),
        ("priority", json!(0)),
    ] {
        spec.entry(key).or_insert(value);
    }
    if let Some(Value::Array(containers)) = spec.get_mut("containers") {
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            c.entry("imagePullPolicy").or_insert(json!("IfNotPresent"));
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            c.entry("resources").or_insert(json!({}));
        }
    }
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    pod.insert("spec".into(), Value::Object(spec));

    let status = take_map(&mut pod, "status");
    let status = if status.contains_key("containerStatuses") {
        Value::Object(status)
    } else {
        let phase = status
            .get("phase")
            .and_then(Value::as_str)
            .unwrap_or("Running");
        pretend_kubelet_status(&containers, phase, &created, &a.pod_ip)
    };
    pod.insert("status".into(), status);
    Value::Object(pod)
}

/// The status a kubelet would report for a pod in `phase`.
fn pretend_kubelet_status(containers: &[Value], phase: &str, now: &str, pod_ip: &str) -> Value {
    let running = phase == "Running";
    let statuses: Vec<Value> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let state = match phase {
                "Running" => json!({ "running": { "startedAt": now } }),
                "Succeeded" => json!({ "terminated": { "exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now } }),
                "Failed" => json!({ "terminated": { "exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now } }),
                _ => json!({ "waiting": { "reason": "ContainerCreating" } }),
            };
            json!({
                "name": c.get("name").cloned().unwrap_or(Value::Null),
                "image": c.get("image").cloned().unwrap_or(Value::Null),
                "imageID": "",
                "containerID": format!("containerd://testkit-{pod_ip}-{i}"),
                "state": state,
                "lastState": {},
                "ready": running,
                "started": running,
                "restartCount": 0,
            })
        })
        .collect();
    let truth = |b: bool| if b { "True" } else { "False" };
    let condition = |t: &str, ok: bool| json!({ "type": t, "status": truth(ok), "lastProbeTime": null, "lastTransitionTime": now });
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("Initialized", true),
            condition("Ready", running),
            condition("ContainersReady", running),
            condition("PodScheduled", true),
        ],
        "hostIP": HOST_IP,
        "hostIPs": [{ "ip": HOST_IP }],
        "startTime": now,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    });
    if phase != "Pending" {
        status["podIP"] = json!(pod_ip);
        status["podIPs"] = json!([{ "ip": pod_ip }]);
    }
    status
}

/// A namespace object as the apiserver stores it.
pub(crate) fn namespace_object(
    name: &str,
    uid: &str,
    resource_version: u64,
    now: SystemTime,
    labels: Option<&Value>,
) -> Value {
    let mut labels = labels
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": uid,
            "resourceVersion": resource_version.to_string(),
            "creationTimestamp": rfc3339(now),
            "labels": labels,
        },
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": "Active" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_pod_is_running_and_ready() {
        let manifest = manifest_from_config(&PodConfig::new("default", "demo"));
        validate_new_pod(&manifest, "default").expect("valid");
        let a = Assigned {
            namespace: "default",
            name: "demo",
            uid: "u".into(),
            resource_version: 7,
            now: SystemTime::UNIX_EPOCH,
            pod_ip: "10.244.0.2".into(),
        };
        let pod = complete_new_pod(manifest, &a);
        assert_eq!(pod["metadata"]["resourceVersion"], "7");
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(pod["status"]["containerStatuses"][0]["ready"], true);
        assert_eq!(pod["spec"]["nodeName"], NODE_NAME);
    }

    #[test]
    fn attach_settings_go_to_the_first_container() {
        let mut config = PodConfig::new("default", "sh").with_attach_command(["sh"], true);
        config.containers.push("sidecar".into());
        let manifest = manifest_from_config(&config);
        let containers = &manifest["spec"]["containers"];
        assert_eq!(containers[0]["command"], json!(["sh"]));
        assert_eq!(containers[0]["tty"], true);
        assert_eq!(containers[0]["stdin"], true);
        assert!(containers[1].get("command").is_none());
        let plain = manifest_from_config(&PodConfig::new("default", "plain"));
        assert!(plain["spec"]["containers"][0].get("tty").is_none());
    }

    #[test]
    fn validation() {
        let no_name = json!({"spec": {"containers": [{"name": "a"}]}});
        assert!(matches!(
            validate_new_pod(&no_name, "default"),
            Err(StoreError::Invalid { .. })
        ));
        let wrong_ns = json!({"metadata": {"name": "x", "namespace": "other"}, "spec": {"containers": [{"name": "a"}]}});
        assert!(matches!(
            validate_new_pod(&wrong_ns, "default"),
            Err(StoreError::BadRequest(_))
        ));
        let wrong_kind = json!({"kind": "Service", "metadata": {"name": "x"}});
        assert!(matches!(
            validate_new_pod(&wrong_kind, "default"),
            Err(StoreError::BadRequest(_))
        ));
    }
}
