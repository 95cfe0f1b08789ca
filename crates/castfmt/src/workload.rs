//! The readable `workload` section of an API request event (kube-auth-proxy's extension): what a
//! request that starts containers asks to run, read from its JSON body, so that an auditor sees
//! the image, command, target and privileges of a `kubectl debug` or `kubectl run` without
//! decoding `request.body`.
//!
//! Requests that get one (core `v1` pods only):
//!
//! - `PATCH` and `PUT` of `pods/ephemeralcontainers` (`kubectl debug POD`): the ephemeral
//!   containers the body adds: those of `spec.ephemeralContainers` in a strategic merge or merge
//!   patch (kubectl 1.32 sends a strategic merge patch holding only the new container, with
//!   `$setElementOrder/ephemeralContainers` once the pod has some), the values of JSON patch
//!   operations on `/spec/ephemeralContainers`, or every ephemeral container of a `PUT`'s pod;
//! - `POST` of `pods` (`kubectl run`, `kubectl debug node/...`, `kubectl debug --copy-to`,
//!   `kubectl create`): the pod's containers, init containers and ephemeral containers, its host
//!   namespaces and its `hostPath` volumes.
//!
//! Only JSON bodies are read (`application/json`, `application/*+json`, or no content type);
//! YAML, protobuf and server-side apply bodies get no section, nor does a body that was cut
//! (`bodyTruncated`) or that does not parse. Reading never fails a request: it yields `None`.
//! What is kept is bounded ([`MAX_CONTAINERS`], [`MAX_LIST`], [`MAX_TEXT`]; `truncated` says
//! when something was left out), and environment variables are not copied (they may hold
//! secrets; the body still has them).

use requestinfo::RequestInfo;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Containers a section lists at most.
pub const MAX_CONTAINERS: usize = 64;
/// Entries of one list (command, args, capabilities, volumes) a section keeps at most.
pub const MAX_LIST: usize = 128;
/// Bytes of one string a section keeps at most (cut at a character boundary).
pub const MAX_TEXT: usize = 4096;

/// What a request asks to run: the event's `workload` object.
///
/// ```json
/// {"podName":"demo","containers":[{"name":"debugger-x7k2p","image":"busybox","command":["sh"],
///  "ephemeral":true,"targetContainerName":"main","stdin":true,"tty":true,
///  "securityContext":{"privileged":true}}]}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    /// The pod's name (`metadata.name`, or `generateName` followed by `*`), when the body names
    /// it; left out otherwise (a patch names the pod in the path only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// The containers, in the body's order: regular, init, then ephemeral.
    #[serde(default)]
    pub containers: Vec<WorkloadContainer>,
    /// The pod uses the node's network namespace (`spec.hostNetwork`). Left out when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_network: bool,
    /// The pod uses the node's PID namespace (`spec.hostPID`). Left out when false.
    #[serde(default, rename = "hostPID", skip_serializing_if = "is_false")]
    pub host_pid: bool,
    /// The pod uses the node's IPC namespace (`spec.hostIPC`). Left out when false.
    #[serde(default, rename = "hostIPC", skip_serializing_if = "is_false")]
    pub host_ipc: bool,
    /// The pod's `hostPath` volumes: node directories mounted into it. Left out when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_path_volumes: Vec<HostPathVolume>,
    /// Whether something was left out to keep the section bounded. Left out when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
}

/// One container of a [`Workload`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadContainer {
    /// The container's name.
    #[serde(default)]
    pub name: String,
    /// Its image, as written (empty when the body has none).
    #[serde(default)]
    pub image: String,
    /// Its `command` (the image's entrypoint when empty). Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Its `args`. Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Whether it is an ephemeral (debug) container. Always written.
    #[serde(default)]
    pub ephemeral: bool,
    /// Whether it is an init container. Left out when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub init: bool,
    /// For an ephemeral container, the container whose namespaces it joins
    /// (`kubectl debug --target`). Left out when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_container_name: Option<String>,
    /// It gets a stdin (`-i`). Left out when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdin: bool,
    /// It runs on a terminal (`-t`). Left out when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tty: bool,
    /// The privileges it asks for; left out when it sets none of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<WorkloadSecurity>,
}

/// The privilege-related settings of a container's `securityContext`, each left out when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSecurity {
    /// `privileged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// `capabilities.add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_add: Vec<String>,
    /// `capabilities.drop`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_drop: Vec<String>,
    /// `runAsUser`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// `runAsGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// `runAsNonRoot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// `allowPrivilegeEscalation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    /// `readOnlyRootFilesystem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// `procMount` (`Unmasked` exposes the host's /proc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_mount: Option<String>,
}

impl WorkloadSecurity {
    fn is_empty(&self) -> bool {
        *self == WorkloadSecurity::default()
    }
}

/// A `hostPath` volume of a [`Workload`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPathVolume {
    /// The volume's name.
    #[serde(default)]
    pub name: String,
    /// The node's path.
    #[serde(default)]
    pub path: String,
}

impl Workload {
    /// The section for a request, from what its event records: `info` as the apiserver reads
    /// the request, its `Content-Type`, the recorded `body` and whether it was cut. `None` when
    /// the request is not one that starts containers, or its body cannot be read (see the
    /// module's documentation).
    pub fn from_request(
        info: &RequestInfo,
        content_type: Option<&str>,
        body: &[u8],
        body_truncated: bool,
    ) -> Option<Workload> {
        if !info.is_resource_request
            || !info.api_group.is_empty()
            || info.api_version != "v1"
            || info.resource != "pods"
            || body_truncated
            || body.is_empty()
        {
            return None;
        }
        let media = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|ct| ct.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let json = media.is_empty() || media == "application/json" || media.ends_with("+json");
        if !json || media == "application/apply-patch+json" {
            return None;
        }
        match (info.verb.as_str(), info.subresource.as_str()) {
            ("create", "") => Workload::from_pod_json(body),
            ("patch", "ephemeralcontainers") if media == "application/json-patch+json" => {
                Workload::from_json_patch(body)
            }
            ("patch" | "update", "ephemeralcontainers") => {
                Workload::from_ephemeral_containers_json(body)
            }
            _ => None,
        }
    }

    /// The section for a pod being created: its containers of every kind, host namespaces and
    /// `hostPath` volumes. `None` when `body` is not a JSON object.
    pub fn from_pod_json(body: &[u8]) -> Option<Workload> {
        let pod: PodIn = serde_json::from_slice(body).ok()?;
        let mut workload = Workload {
            pod_name: pod.metadata.and_then(|m| {
                m.name
                    .filter(|n| !n.is_empty())
                    .or_else(|| m.generate_name.filter(|g| !g.is_empty()).map(|g| g + "*"))
            }),
            ..Workload::default()
        };
        let spec = pod.spec.unwrap_or_default();
        workload.host_network = spec.host_network.unwrap_or(false);
        workload.host_pid = spec.host_pid.unwrap_or(false);
        workload.host_ipc = spec.host_ipc.unwrap_or(false);
        for volume in spec.volumes.unwrap_or_default() {
            let Some(host_path) = volume.host_path else {
                continue;
            };
            if workload.host_path_volumes.len() >= MAX_LIST {
                workload.truncated = true;
                break;
            }
            let volume = HostPathVolume {
                name: workload.text(volume.name.unwrap_or_default()),
                path: workload.text(host_path.path.unwrap_or_default()),
            };
            workload.host_path_volumes.push(volume);
        }
        let kinds = [
            (spec.containers, Kind::Regular),
            (spec.init_containers, Kind::Init),
            (spec.ephemeral_containers, Kind::Ephemeral),
        ];
        for (list, kind) in kinds {
            for container in list.unwrap_or_default() {
                workload.push(container, kind);
            }
        }
        Some(workload)
    }

    /// The section for a patch or update of `pods/ephemeralcontainers` whose body is a pod or a
    /// strategic merge / merge patch of one: its `spec.ephemeralContainers` (elements that are
    /// `$patch` directives left out). `None` when `body` is not a JSON object.
    pub fn from_ephemeral_containers_json(body: &[u8]) -> Option<Workload> {
        let pod: PodIn = serde_json::from_slice(body).ok()?;
        let mut workload = Workload::default();
        let containers = pod.spec.and_then(|s| s.ephemeral_containers);
        for container in containers.unwrap_or_default() {
            if container.directive.is_none() {
                workload.push(container, Kind::Ephemeral);
            }
        }
        Some(workload)
    }

    /// The section for a JSON patch (RFC 6902) of `pods/ephemeralcontainers`: the containers that
    /// `add` and `replace` operations put at `/spec/ephemeralContainers` (the list, or one
    /// element). `None` when `body` is not a JSON array.
    pub fn from_json_patch(body: &[u8]) -> Option<Workload> {
        let operations: Vec<PatchOperation> = serde_json::from_slice(body).ok()?;
        let mut workload = Workload::default();
        for operation in operations {
            if !matches!(operation.op.as_str(), "add" | "replace") {
                continue;
            }
            let Some(rest) = operation.path.strip_prefix("/spec/ephemeralContainers") else {
                continue;
            };
            let containers: Vec<ContainerIn> = match (rest, operation.value) {
                ("", Some(value)) => serde_json::from_value(value).unwrap_or_default(),
                (element, Some(value))
                    if element.starts_with('/') && !element[1..].contains('/') =>
                {
                    serde_json::from_value(value)
                        .map(|c| vec![c])
                        .unwrap_or_default()
                }
                _ => Vec::new(),
            };
            for container in containers {
                workload.push(container, Kind::Ephemeral);
            }
        }
        Some(workload)
    }

    fn push(&mut self, container: ContainerIn, kind: Kind) {
        if self.containers.len() >= MAX_CONTAINERS {
            self.truncated = true;
            return;
        }
        let security = container
            .security_context
            .map(|s| {
                let capabilities = s.capabilities.unwrap_or_default();
                WorkloadSecurity {
                    privileged: s.privileged,
                    capabilities_add: self.list(capabilities.add.unwrap_or_default()),
                    capabilities_drop: self.list(capabilities.drop.unwrap_or_default()),
                    run_as_user: s.run_as_user,
                    run_as_group: s.run_as_group,
                    run_as_non_root: s.run_as_non_root,
                    allow_privilege_escalation: s.allow_privilege_escalation,
                    read_only_root_filesystem: s.read_only_root_filesystem,
                    proc_mount: s.proc_mount.map(|p| self.text(p)),
                }
            })
            .filter(|s| !s.is_empty());
        let entry = WorkloadContainer {
            name: self.text(container.name.unwrap_or_default()),
            image: self.text(container.image.unwrap_or_default()),
            command: self.list(container.command.unwrap_or_default()),
            args: self.list(container.args.unwrap_or_default()),
            ephemeral: kind == Kind::Ephemeral,
            init: kind == Kind::Init,
            target_container_name: container
                .target_container_name
                .filter(|t| !t.is_empty())
                .map(|t| self.text(t)),
            stdin: container.stdin.unwrap_or(false),
            tty: container.tty.unwrap_or(false),
            security_context: security,
        };
        self.containers.push(entry);
    }

    /// `text`, cut to [`MAX_TEXT`] bytes (noted in `truncated`).
    fn text(&mut self, mut text: String) -> String {
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            self.truncated = true;
        }
        text
    }

    /// `list`, cut to [`MAX_LIST`] entries of [`MAX_TEXT`] bytes (noted in `truncated`).
    fn list(&mut self, mut list: Vec<String>) -> Vec<String> {
        if list.len() > MAX_LIST {
            list.truncate(MAX_LIST);
            self.truncated = true;
        }
        list.into_iter().map(|s| self.text(s)).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    Init,
    Ephemeral,
}

// What is read of a body: only the fields the section shows, all optional; other fields are
// ignored, and a field of the wrong type makes the body unreadable (the apiserver refuses it
// too).

#[derive(Deserialize)]
struct PodIn {
    metadata: Option<MetadataIn>,
    spec: Option<SpecIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataIn {
    name: Option<String>,
    generate_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SpecIn {
    containers: Option<Vec<ContainerIn>>,
    init_containers: Option<Vec<ContainerIn>>,
    ephemeral_containers: Option<Vec<ContainerIn>>,
    volumes: Option<Vec<VolumeIn>>,
    host_network: Option<bool>,
    #[serde(rename = "hostPID")]
    host_pid: Option<bool>,
    #[serde(rename = "hostIPC")]
    host_ipc: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerIn {
    name: Option<String>,
    image: Option<String>,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    target_container_name: Option<String>,
    stdin: Option<bool>,
    tty: Option<bool>,
    security_context: Option<SecurityIn>,
    /// A strategic merge patch directive (`$patch: delete`): not a container being added.
    #[serde(rename = "$patch")]
    directive: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityIn {
    privileged: Option<bool>,
    capabilities: Option<CapabilitiesIn>,
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
    run_as_non_root: Option<bool>,
    allow_privilege_escalation: Option<bool>,
    read_only_root_filesystem: Option<bool>,
    proc_mount: Option<String>,
}

#[derive(Deserialize, Default)]
struct CapabilitiesIn {
    add: Option<Vec<String>>,
    drop: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeIn {
    name: Option<String>,
    host_path: Option<HostPathIn>,
}

#[derive(Deserialize)]
struct HostPathIn {
    path: Option<String>,
}

#[derive(Deserialize)]
struct PatchOperation {
    #[serde(default)]
    op: String,
    #[serde(default)]
    path: String,
    value: Option<Value>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const STRATEGIC: &str = "application/strategic-merge-patch+json";

    fn info(method: &str, path: &str) -> RequestInfo {
        requestinfo::parse(method, path, "")
    }

    fn ephemeral_patch(body: &str) -> Option<Workload> {
        Workload::from_request(
            &info(
                "PATCH",
                "/api/v1/namespaces/default/pods/demo/ephemeralcontainers",
            ),
            Some(STRATEGIC),
            body.as_bytes(),
            false,
        )
    }

    fn create(body: &str) -> Option<Workload> {
        Workload::from_request(
            &info("POST", "/api/v1/namespaces/default/pods"),
            Some("application/json"),
            body.as_bytes(),
            false,
        )
    }

    /// kubectl 1.32, `kubectl debug demo --image=busybox --target=main -c d1 -- sh` (the default
    /// `--profile=legacy`), as sent: the pod had no ephemeral container yet.
    const LEGACY: &str = r#"{"spec":{"ephemeralContainers":[{"command":["sh"],"image":"busybox","name":"d1","resources":{},"targetContainerName":"main","terminationMessagePolicy":"File"}]}}"#;

    /// `kubectl debug demo --image=busybox --target=main -c d2 --profile=sysadmin -- sh -c id`,
    /// the pod already debugged once (`$setElementOrder`).
    const SYSADMIN: &str = r#"{"spec":{"$setElementOrder/ephemeralContainers":[{"name":"d1"},{"name":"d2"}],"ephemeralContainers":[{"command":["sh","-c","id"],"image":"busybox","name":"d2","resources":{},"securityContext":{"privileged":true},"targetContainerName":"main","terminationMessagePolicy":"File"}]}}"#;

    /// `kubectl debug -it demo --image=busybox --target=main -c d3 --profile=netadmin`: no
    /// command (the image's entrypoint), stdin and tty.
    const NETADMIN: &str = r#"{"spec":{"$setElementOrder/ephemeralContainers":[{"name":"d1"},{"name":"d2"},{"name":"d3"}],"ephemeralContainers":[{"image":"busybox","name":"d3","resources":{},"securityContext":{"capabilities":{"add":["NET_ADMIN","NET_RAW"]}},"stdin":true,"targetContainerName":"main","terminationMessagePolicy":"File","tty":true}]}}"#;

    /// `kubectl run tmp3 --image=busybox --restart=Never -- true`, as sent.
    const RUN: &str = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"tmp3","creationTimestamp":null,"labels":{"run":"tmp3"}},"spec":{"containers":[{"name":"tmp3","image":"busybox","args":["true"],"resources":{}}],"restartPolicy":"Never","dnsPolicy":"ClusterFirst"},"status":{}}"#;

    /// `kubectl debug node/worker-1 -it --image=busybox` (legacy profile): the pod
    /// `generateNodeDebugPod` builds, with the profile's host namespaces and the host's root at
    /// `/host`, in Go's field order.
    const NODE: &str = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"node-debugger-worker-1-x7k2p","creationTimestamp":null},"spec":{"volumes":[{"name":"host-root","hostPath":{"path":"/"}}],"containers":[{"name":"debugger","image":"busybox","resources":{},"volumeMounts":[{"name":"host-root","mountPath":"/host"}],"terminationMessagePolicy":"File","stdin":true,"tty":true}],"restartPolicy":"Never","nodeName":"worker-1","hostNetwork":true,"hostPID":true,"hostIPC":true,"tolerations":[{"operator":"Exists"}]},"status":{}}"#;

    #[test]
    fn kubectl_debug_legacy_names_image_target_and_command() {
        let workload = ephemeral_patch(LEGACY).expect("a section");
        assert_eq!(
            serde_json::to_value(&workload).expect("json"),
            json!({"containers": [{
                "name": "d1", "image": "busybox", "command": ["sh"], "ephemeral": true,
                "targetContainerName": "main",
            }]})
        );
    }

    #[test]
    fn kubectl_debug_sysadmin_is_privileged() {
        let workload = ephemeral_patch(SYSADMIN).expect("a section");
        assert_eq!(workload.containers.len(), 1, "only the container added");
        let c = &workload.containers[0];
        assert_eq!((c.name.as_str(), c.image.as_str()), ("d2", "busybox"));
        assert_eq!(c.command, ["sh", "-c", "id"]);
        assert_eq!(
            serde_json::to_value(&c.security_context).expect("json"),
            json!({"privileged": true})
        );
    }

    #[test]
    fn kubectl_debug_netadmin_adds_capabilities() {
        let workload = ephemeral_patch(NETADMIN).expect("a section");
        let c = &workload.containers[0];
        assert!(c.command.is_empty() && c.stdin && c.tty && c.ephemeral);
        let security = c.security_context.as_ref().expect("capabilities");
        assert_eq!(security.capabilities_add, ["NET_ADMIN", "NET_RAW"]);
        assert_eq!(security.privileged, None);
    }

    #[test]
    fn kubectl_run_and_debug_node_create_pods() {
        let run = create(RUN).expect("a section");
        assert_eq!(
            serde_json::to_value(&run).expect("json"),
            json!({"podName": "tmp3", "containers": [{
                "name": "tmp3", "image": "busybox", "args": ["true"], "ephemeral": false,
            }]})
        );
        let node = create(NODE).expect("a section");
        assert_eq!(
            serde_json::to_value(&node).expect("json"),
            json!({
                "podName": "node-debugger-worker-1-x7k2p",
                "containers": [{"name": "debugger", "image": "busybox", "ephemeral": false,
                                "stdin": true, "tty": true}],
                "hostNetwork": true, "hostPID": true, "hostIPC": true,
                "hostPathVolumes": [{"name": "host-root", "path": "/"}],
            })
        );
        // Read back.
        let read: Workload =
            serde_json::from_value(serde_json::to_value(&node).expect("json")).expect("read");
        assert_eq!(read, node);
    }

    #[test]
    fn every_kind_of_container_and_generate_name() {
        let body = json!({"metadata": {"generateName": "job-"}, "spec": {
            "initContainers": [{"name": "init", "image": "alpine",
                "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": true,
                                    "capabilities": {"drop": ["ALL"]}}}],
            "containers": [{"name": "app", "image": "nginx"}],
            "ephemeralContainers": [{"name": "dbg", "image": "busybox", "targetContainerName": "app"}],
        }});
        let workload = create(&body.to_string()).expect("a section");
        assert_eq!(workload.pod_name.as_deref(), Some("job-*"));
        let names: Vec<(&str, bool, bool)> = workload
            .containers
            .iter()
            .map(|c| (c.name.as_str(), c.init, c.ephemeral))
            .collect();
        assert_eq!(
            names,
            [
                ("app", false, false),
                ("init", true, false),
                ("dbg", false, true)
            ]
        );
        let security = workload.containers[1]
            .security_context
            .as_ref()
            .expect("set");
        assert_eq!(security.run_as_user, Some(0));
        assert_eq!(security.allow_privilege_escalation, Some(true));
        assert_eq!(security.capabilities_drop, ["ALL"]);
        // An empty securityContext is no section.
        let empty =
            create(r#"{"spec":{"containers":[{"name":"a","image":"b","securityContext":{}}]}}"#)
                .expect("a section");
        assert_eq!(empty.containers[0].security_context, None);
    }

    #[test]
    fn put_merge_and_json_patches_of_ephemeral_containers() {
        let path = "/api/v1/namespaces/default/pods/demo/ephemeralcontainers";
        let put = Workload::from_request(
            &info("PUT", path),
            Some("application/json"),
            br#"{"metadata":{"name":"demo"},"spec":{"containers":[{"name":"main","image":"x"}],"ephemeralContainers":[{"name":"d","image":"busybox"}]}}"#,
            false,
        )
        .expect("a section");
        assert_eq!(put.containers.len(), 1);
        assert!(put.containers[0].ephemeral);
        let merge = Workload::from_request(
            &info("PATCH", path),
            Some("application/merge-patch+json"),
            LEGACY.as_bytes(),
            false,
        )
        .expect("a section");
        assert_eq!(merge.containers[0].name, "d1");
        let json_patch = Workload::from_request(
            &info("PATCH", path),
            Some("application/json-patch+json"),
            br#"[{"op":"test","path":"/spec","value":{}},{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"j","image":"alpine","command":["sh"]}},{"op":"add","path":"/spec/ephemeralContainers","value":[{"name":"k","image":"busybox"}]}]"#,
            false,
        )
        .expect("a section");
        let names: Vec<&str> = json_patch
            .containers
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["j", "k"]);
        // A strategic merge directive is not a container.
        let delete = ephemeral_patch(
            r#"{"spec":{"ephemeralContainers":[{"name":"d1","$patch":"delete"}]}}"#,
        )
        .expect("a section");
        assert!(delete.containers.is_empty());
    }

    #[test]
    fn other_requests_and_unreadable_bodies_get_no_section() {
        let pods = info("POST", "/api/v1/namespaces/default/pods");
        // Not JSON.
        for content_type in [
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
            "application/apply-patch+yaml",
        ] {
            assert_eq!(
                Workload::from_request(&pods, Some(content_type), RUN.as_bytes(), false),
                None,
                "{content_type}"
            );
        }
        // Cut, broken, empty, mistyped.
        assert_eq!(
            Workload::from_request(&pods, Some("application/json"), RUN.as_bytes(), true),
            None
        );
        assert_eq!(create(&RUN[..RUN.len() / 2]), None);
        assert_eq!(create(""), None);
        assert_eq!(create(r#"{"spec":{"containers":"nope"}}"#), None);
        assert_eq!(create("[1,2]"), None);
        // No content type: read as JSON, as the apiserver does.
        assert!(Workload::from_request(&pods, None, RUN.as_bytes(), false).is_some());
        // Other resources, subresources, verbs and groups.
        for (method, path) in [
            ("PATCH", "/api/v1/namespaces/default/pods/demo"),
            ("POST", "/api/v1/namespaces/default/pods/demo/eviction"),
            ("PUT", "/api/v1/namespaces/default/pods/demo/status"),
            ("POST", "/api/v1/namespaces/default/services"),
            ("POST", "/apis/apps/v1/namespaces/default/deployments"),
            (
                "GET",
                "/api/v1/namespaces/default/pods/demo/ephemeralcontainers",
            ),
            ("POST", "/api/v1/namespaces/default/pods/demo/exec"),
        ] {
            assert_eq!(
                Workload::from_request(&info(method, path), Some(STRATEGIC), RUN.as_bytes(), false),
                None,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_event_carries_the_section_after_destination() {
        let info = info(
            "PATCH",
            "/api/v1/namespaces/default/pods/demo/ephemeralcontainers",
        );
        let event = crate::ApiRequestEvent {
            id: "e1".into(),
            timestamp: 1,
            user_agent: "kubectl".into(),
            request: crate::EventRequest {
                method: "PATCH".into(),
                path: info.path.clone(),
                body: Some(bytes::Bytes::from_static(LEGACY.as_bytes())),
                ..crate::EventRequest::default()
            },
            kubernetes: info,
            source: crate::EventSource::default(),
            destination: crate::EventDestination::default(),
        };
        let workload = ephemeral_patch(LEGACY).expect("a section");
        let with = serde_json::to_string(&event.with_workload(Some(&workload))).expect("json");
        let plain = serde_json::to_string(&event).expect("json");
        assert_eq!(
            serde_json::to_string(&event.with_workload(None)).expect("json"),
            plain
        );
        let section = serde_json::to_string(&workload).expect("json");
        assert_eq!(
            with,
            format!("{},\"workload\":{section}}}", &plain[..plain.len() - 1])
        );
        // Tailscale's reader (and ours) reads the event as before.
        let read: crate::ApiRequestEvent = serde_json::from_str(&with).expect("read");
        assert_eq!(read, event);
        let value: Value = serde_json::from_str(&with).expect("json");
        let read: Workload = serde_json::from_value(value["workload"].clone()).expect("read");
        assert_eq!(read, workload);
    }

    #[test]
    fn the_section_is_bounded() {
        let long = "x".repeat(MAX_TEXT + 10);
        let args: Vec<String> = (0..MAX_LIST + 5).map(|i| i.to_string()).collect();
        let containers: Vec<Value> = (0..MAX_CONTAINERS + 3)
            .map(|i| json!({"name": format!("c{i}"), "image": long, "args": args}))
            .collect();
        let body = json!({"spec": {"containers": containers}}).to_string();
        let workload = create(&body).expect("a section");
        assert!(workload.truncated);
        assert_eq!(workload.containers.len(), MAX_CONTAINERS);
        assert_eq!(workload.containers[0].image.len(), MAX_TEXT);
        assert_eq!(workload.containers[0].args.len(), MAX_LIST);
        // A multi-byte character is not split.
        let mut w = Workload::default();
        let cut = w.text("é".repeat(MAX_TEXT));
        assert!(cut.len() <= MAX_TEXT && cut.chars().all(|c| c == 'é'));
    }
}
