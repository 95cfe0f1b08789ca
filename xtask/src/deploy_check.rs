//! `cargo xtask deploy-check`: every kustomize overlay under `deploy/overlays/` renders, and what
//! it renders keeps the deployment's invariants (docs/deployment.md):
//!
//! - RBAC: no `*` in any Role or ClusterRole (verbs, resources, apiGroups, resourceNames,
//!   nonResourceURLs); a ClusterRole may only `impersonate` users and groups of the core group; a
//!   Role that touches Secrets names them (resourceNames) and may only get/update/patch them.
//! - Every container (init containers included): `allowPrivilegeEscalation: false`,
//!   `readOnlyRootFilesystem: true`, capabilities `drop: [ALL]`, not privileged, runs as non-root
//!   (container or pod level), seccomp RuntimeDefault, resource requests (cpu, memory) and a
//!   memory limit. The one exception is the container named `tailscaled` in kernel mode
//!   (`TS_USERSPACE=false`): it may run as root and add NET_ADMIN and NET_RAW, and only it may
//!   mount a hostPath, which must be /dev/net/tun. No hostNetwork, hostPID or hostIPC.
//! - Probes: an httpGet or tcpSocket probe's port is a port of its container; the proxy has
//!   liveness and readiness probes on paths it serves (`/healthz`, `/readyz`) and on the port of
//!   its `--metrics-listen`, which is not loopback; the recorder's probes use `/healthz` on its
//!   `--listen` port.
//! - Arguments: the proxy's container args parse with the proxy's own parser
//!   (`kube_auth_proxy::Cli`), with exactly one TLS source; the recorder's are given to the built
//!   `kube-recorder` binary followed by `--help`, which makes clap check every flag and value up
//!   to there (its parser is private to the binary), and its required flags are read from its
//!   usage line. `KUBE_AUTH_PROXY_*` / `KUBE_RECORDER_*` environment variables must be ones the
//!   binaries read. Both commands are the paths the Containerfile installs.
//! - The LocalAPI socket: with a tailscaled sidecar, `TS_SOCKET` is the proxy's
//!   `--localapi-socket`, in a volume both containers mount.
//! - Services select a workload and target its ports; every workload has a Service.
//! - A NetworkPolicy admits only the proxy's pods, and only to the recorder's ingest port.
//! - The recorder's pods keep off the proxy's node (`podAntiAffinity` on
//!   `kubernetes.io/hostname` selecting the proxy's pods, preferred or required).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use clap::{CommandFactory as _, FromArgMatches as _};
use serde_yaml::Value;

use crate::tools::{cargo, ensure_kubectl, run, workspace_root};

/// The overlays that must exist (others found under deploy/overlays are checked too).
const REQUIRED_OVERLAYS: [&str; 3] = ["tailscale-sidecar", "proxy-protocol", "client-cert-oidc"];

/// Where the Containerfile installs the binaries.
const BIN_DIR: &str = "/usr/local/bin";

/// Paths the proxy's operations listener serves that a probe may use (proxy-bin/src/health.rs).
const PROXY_PROBE_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// Paths the recorder serves that a probe may use (recorder-server/src/server/routes.rs).
const RECORDER_PROBE_PATHS: [&str; 1] = ["/healthz"];

/// Capabilities the kernel-mode tailscaled may add.
const TAILSCALED_KERNEL_CAPS: [&str; 2] = ["NET_ADMIN", "NET_RAW"];

/// The sidecar's container name.
const TAILSCALED: &str = "tailscaled";

/// `cargo xtask deploy-check`.
pub(crate) fn deploy_check() -> anyhow::Result<()> {
    ensure_kubectl()?;
    let root = workspace_root();
    let recorder = RecorderCli::build()?;
    let containerfile =
        std::fs::read_to_string(root.join("Containerfile")).context("reading Containerfile")?;
    let overlays = overlays(&root.join("deploy/overlays"))?;
    let mut problems = Vec::new();
    for (name, dir) in &overlays {
        eprintln!("$ kubectl kustomize {}", dir.display());
        let rendered = kustomize(dir)?;
        let documents =
            parse_documents(&rendered).with_context(|| format!("overlay {name}: parsing"))?;
        let found = check(&documents, &recorder, &containerfile);
        problems.extend(found.into_iter().map(|p| format!("overlay {name}: {p}")));
    }
    if !problems.is_empty() {
        bail!(
            "deploy-check found {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    let names: Vec<&str> = overlays.iter().map(|(n, _)| n.as_str()).collect();
    eprintln!("deploy-check: overlays {} are consistent", names.join(", "));
    Ok(())
}

/// The overlay directories, by name, sorted; the required ones must be among them.
fn overlays(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        if entry.path().join("kustomization.yaml").is_file() {
            found.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    found.sort();
    for required in REQUIRED_OVERLAYS {
        if !found.iter().any(|(name, _)| name == required) {
            bail!("{}: the overlay {required} is missing", dir.display());
        }
    }
    Ok(found)
}

/// `kubectl kustomize DIR`.
fn kustomize(dir: &Path) -> anyhow::Result<String> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .context("cannot run kubectl kustomize")?;
    if !output.status.success() {
        bail!(
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).context("kubectl kustomize printed non-UTF-8")
}

/// The YAML documents of a stream, empty ones left out.
fn parse_documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = serde::Deserialize::deserialize(document)?;
        if !matches!(value, Value::Null) {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// How the recorder's arguments are checked: through the built binary.
pub(crate) struct RecorderCli {
    /// The `kube-recorder` binary.
    binary: PathBuf,
    /// The flags `kube-recorder serve` requires (from its usage line).
    required: Vec<String>,
    /// The environment variables it reads (`[env: NAME=]` in its help).
    env: BTreeSet<String>,
}

impl RecorderCli {
    /// Builds `kube-recorder` and reads its `serve` help.
    pub(crate) fn build() -> anyhow::Result<Self> {
        run(cargo().args([
            "build",
            "--quiet",
            "--package",
            "recorder-server",
            "--bin",
            "kube-recorder",
        ]))?;
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let binary = target.join("debug/kube-recorder");
        let help = |args: &[&str]| -> anyhow::Result<String> {
            let output = Command::new(&binary)
                .args(args)
                .output()
                .with_context(|| format!("running {}", binary.display()))?;
            if !output.status.success() {
                bail!("{} {args:?} failed", binary.display());
            }
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        };
        let serve_help = help(&["serve", "--help"])?;
        let top_help = help(&["--help"])?;
        let usage = serve_help
            .lines()
            .find_map(|line| line.strip_prefix("Usage: "))
            .context("kube-recorder serve --help has no usage line")?;
        Ok(RecorderCli {
            binary,
            required: required_flags(usage),
            env: env_names(&serve_help).chain(env_names(&top_help)).collect(),
        })
    }

    /// Problems with `kube-recorder ARGS` (empty when the binary accepts them).
    fn check_args(&self, args: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        // clap reads left to right: an unknown flag or a bad value before `--help` is an error
        // (exit 2); reaching `--help` means everything before it parsed.
        let output = Command::new(&self.binary)
            .args(args)
            .arg("--help")
            .env_clear()
            .output();
        match output {
            Ok(output) if output.status.success() => {}
            Ok(output) => problems.push(format!(
                "kube-recorder refuses its args {args:?}: {}",
                first_line(&String::from_utf8_lossy(&output.stderr))
            )),
            Err(error) => problems.push(format!("cannot run kube-recorder: {error}")),
        }
        if args.first().map(String::as_str) != Some("serve") {
            problems.push(format!(
                "the recorder's args must start with `serve`: {args:?}"
            ));
        }
        for flag in &self.required {
            if flag_value(args, flag).is_none() {
                problems.push(format!("kube-recorder serve needs {flag}"));
            }
        }
        problems
    }
}

/// The first line of a message.
fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// The `--flag` tokens of a clap usage line that are not inside `[...]`.
fn required_flags(usage: &str) -> Vec<String> {
    let mut depth = 0usize;
    let mut flags = Vec::new();
    for token in usage.split_whitespace() {
        let opens = token.matches('[').count();
        let closes = token.matches(']').count();
        if depth == 0 && opens == 0 && token.starts_with("--") {
            flags.push(token.to_string());
        }
        depth = (depth + opens).saturating_sub(closes);
    }
    flags
}

/// `NAME` of every `[env: NAME=...]` in a help text.
fn env_names(help: &str) -> impl Iterator<Item = String> + '_ {
    help.split("[env: ").skip(1).filter_map(|rest| {
        rest.split_once('=')
            .map(|(name, _)| name.trim().to_string())
    })
}

/// The value of `--flag=V` or `--flag V` in an argument list (the last one given).
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let mut value = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(rest) = arg.strip_prefix(flag) {
            if let Some(v) = rest.strip_prefix('=') {
                value = Some(v);
            } else if rest.is_empty() {
                value = iter.next().map(String::as_str);
            }
        }
    }
    value
}

/// Every problem in one rendered overlay.
fn check(documents: &[Value], recorder: &RecorderCli, containerfile: &str) -> Vec<String> {
    let mut problems = Vec::new();
    check_rbac(documents, &mut problems);
    let workloads = workloads(documents);
    let mut proxies = 0;
    let mut recorders = Vec::new();
    for workload in &workloads {
        let found = check_workload(workload, recorder, containerfile, &mut problems);
        proxies += found.proxies;
        recorders.extend(
            found
                .recorder_ports
                .into_iter()
                .map(|port| (workload, port)),
        );
    }
    if proxies != 1 {
        problems.push(format!(
            "expected exactly one kube-auth-proxy container, found {proxies}"
        ));
    }
    if recorders.len() != 1 {
        problems.push(format!(
            "expected exactly one kube-recorder container, found {}",
            recorders.len()
        ));
    }
    check_services(documents, &workloads, &mut problems);
    check_policy_files(documents, &mut problems);
    let proxy_labels: Vec<&Workload> = workloads.iter().filter(|w| w.runs_proxy()).collect();
    for (workload, port) in recorders {
        check_recorder_policy(documents, workload, port, &proxy_labels, &mut problems);
        check_recorder_placement(workload, &proxy_labels, &mut problems);
    }
    problems
}

/// Every policy file shipped in a ConfigMap (a data key ending in `policy.yaml` or
/// `policy.json`) is one the proxy accepts: parsed by the proxy's own policy reader.
fn check_policy_files(documents: &[Value], problems: &mut Vec<String>) {
    for document in documents {
        if str_at(document, &["kind"]) != Some("ConfigMap") {
            continue;
        }
        let name = str_at(document, &["metadata", "name"]).unwrap_or("?");
        let Some(Value::Mapping(data)) = at(document, &["data"]) else {
            continue;
        };
        for (key, text) in data {
            let (Some(key), Some(text)) = (key.as_str(), text.as_str()) else {
                continue;
            };
            if !(key.ends_with("policy.yaml") || key.ends_with("policy.json")) {
                continue;
            }
            let parsed = serde_yaml::from_str::<serde_json::Value>(text)
                .map_err(|error| error.to_string())
                .and_then(|value| {
                    capmodel::PolicyFile::from_value(&value).map_err(|error| error.to_string())
                });
            if let Err(error) = parsed {
                problems.push(format!(
                    "ConfigMap {name}: {key} is not a policy file the proxy accepts: {error}"
                ));
            }
        }
    }
}

/// `value[k1][k2]...`.
fn at<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(value, |v, k| v.get(*k))
}

/// A string at a path.
fn str_at<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a str> {
    at(value, keys).and_then(Value::as_str)
}

/// The strings of a sequence at a path (empty when absent).
fn strings_at(value: &Value, keys: &[&str]) -> Vec<String> {
    at(value, keys)
        .and_then(Value::as_sequence)
        .map(|items| items.iter().map(scalar_string).collect())
        .unwrap_or_default()
}

/// A scalar as text (numbers and booleans too).
fn scalar_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// The sequence at a path (empty when absent).
fn seq_at<'a>(value: &'a Value, keys: &[&str]) -> &'a [Value] {
    at(value, keys)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `Kind/name` of a document.
fn describe(document: &Value) -> String {
    format!(
        "{}/{}",
        str_at(document, &["kind"]).unwrap_or("?"),
        str_at(document, &["metadata", "name"]).unwrap_or("?")
    )
}

fn check_rbac(documents: &[Value], problems: &mut Vec<String>) {
    for document in documents {
        let kind = str_at(document, &["kind"]).unwrap_or("");
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        let name = describe(document);
        if at(document, &["aggregationRule"]).is_some() {
            problems.push(format!("{name}: aggregationRule is not allowed"));
        }
        for (i, rule) in seq_at(document, &["rules"]).iter().enumerate() {
            let field = |f: &str| strings_at(rule, &[f]);
            for f in [
                "verbs",
                "resources",
                "apiGroups",
                "resourceNames",
                "nonResourceURLs",
            ] {
                if field(f).iter().any(|v| v.contains('*')) {
                    problems.push(format!("{name}: rule {i} has `*` in {f}"));
                }
            }
            let verbs = field("verbs");
            let resources = field("resources");
            if kind == "ClusterRole" {
                if verbs.is_empty() || verbs.iter().any(|v| v != "impersonate") {
                    problems.push(format!(
                        "{name}: rule {i}: a ClusterRole may only impersonate (verbs {verbs:?})"
                    ));
                }
                if resources.is_empty() || resources.iter().any(|r| r != "users" && r != "groups") {
                    problems.push(format!(
                        "{name}: rule {i}: only users and groups may be impersonated (resources {resources:?})"
                    ));
                }
                if field("apiGroups") != [""] {
                    problems.push(format!(
                        "{name}: rule {i}: impersonation is in the core group only (apiGroups {:?})",
                        field("apiGroups")
                    ));
                }
                if !field("nonResourceURLs").is_empty() {
                    problems.push(format!("{name}: rule {i}: nonResourceURLs not allowed"));
                }
            } else if resources.iter().any(|r| r == "secrets") {
                if field("resourceNames").is_empty() {
                    problems.push(format!(
                        "{name}: rule {i}: Secrets only by name (resourceNames)"
                    ));
                }
                if verbs
                    .iter()
                    .any(|v| !["get", "update", "patch"].contains(&v.as_str()))
                {
                    problems.push(format!(
                        "{name}: rule {i}: Secrets only get/update/patch (verbs {verbs:?})"
                    ));
                }
            }
        }
    }
}

/// A document with a pod template.
struct Workload<'a> {
    name: String,
    namespace: Option<&'a str>,
    pod: &'a Value,
    labels: BTreeMap<String, String>,
}

impl Workload<'_> {
    /// Its containers, init containers included.
    fn containers(&self) -> impl Iterator<Item = &Value> {
        seq_at(self.pod, &["initContainers"])
            .iter()
            .chain(seq_at(self.pod, &["containers"]))
    }

    /// Whether one of its containers runs the proxy.
    fn runs_proxy(&self) -> bool {
        self.containers()
            .any(|c| binary_of(c) == Some("kube-auth-proxy"))
    }

    /// Whether `port` (a number or a name) is a port of one of its containers.
    fn has_port(&self, port: &Value) -> bool {
        self.containers().any(|c| container_has_port(c, port))
    }
}

/// The labels at a path, as a map.
fn labels_at(value: &Value, keys: &[&str]) -> BTreeMap<String, String> {
    at(value, keys)
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (scalar_string(k), scalar_string(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every label of `selector` is in `labels` (and the selector is not empty).
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn workloads(documents: &[Value]) -> Vec<Workload<'_>> {
    documents
        .iter()
        .filter_map(|document| {
            let template: &[&str] = match str_at(document, &["kind"])? {
                "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                    &["spec", "template"]
                }
                "CronJob" => &["spec", "jobTemplate", "spec", "template"],
                "Pod" => &[],
                _ => return None,
            };
            let template = at(document, template)?;
            Some(Workload {
                name: describe(document),
                namespace: str_at(document, &["metadata", "namespace"]),
                pod: if template.get("spec").is_some() {
                    at(template, &["spec"])?
                } else {
                    template
                },
                labels: labels_at(template, &["metadata", "labels"]),
            })
        })
        .collect()
}

/// The binary a container runs: the file name of its command, when it is one of ours.
fn binary_of(container: &Value) -> Option<&str> {
    let command = seq_at(container, &["command"]).first()?.as_str()?;
    let name = command.rsplit('/').next()?;
    ["kube-auth-proxy", "kube-recorder"]
        .into_iter()
        .find(|b| *b == name)
}

/// Whether a port (number or name) is one of the container's ports.
fn container_has_port(container: &Value, port: &Value) -> bool {
    seq_at(container, &["ports"]).iter().any(|p| match port {
        Value::Number(n) => p.get("containerPort").and_then(Value::as_u64) == n.as_u64(),
        Value::String(name) => str_at(p, &["name"]) == Some(name.as_str()),
        _ => false,
    })
}

/// The container port number a probe's port names.
fn port_number(container: &Value, port: &Value) -> Option<u64> {
    match port {
        Value::Number(n) => n.as_u64(),
        Value::String(name) => seq_at(container, &["ports"])
            .iter()
            .find(|p| str_at(p, &["name"]) == Some(name.as_str()))
            .and_then(|p| p.get("containerPort").and_then(Value::as_u64)),
        _ => None,
    }
}

/// The environment variable `name` of a container, when set to a literal value.
fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    seq_at(container, &["env"])
        .iter()
        .find(|e| str_at(e, &["name"]) == Some(name))
        .and_then(|e| str_at(e, &["value"]))
}

/// What a workload contains that the overlay-wide checks need.
#[derive(Default)]
struct Found {
    proxies: usize,
    /// The ports the recorder containers listen on.
    recorder_ports: Vec<u16>,
}

fn check_workload(
    workload: &Workload<'_>,
    recorder: &RecorderCli,
    containerfile: &str,
    problems: &mut Vec<String>,
) -> Found {
    let pod = workload.pod;
    let name = &workload.name;
    let mut found = Found::default();
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod.get(host).and_then(Value::as_bool) == Some(true) {
            problems.push(format!("{name}: {host} is not allowed"));
        }
    }
    let pod_sc = pod.get("securityContext");
    // Volumes from the host: only /dev/net/tun, for the kernel-mode tailscaled.
    let host_volumes: BTreeMap<String, String> = seq_at(pod, &["volumes"])
        .iter()
        .filter_map(|v| {
            let path = str_at(v, &["hostPath", "path"])?;
            Some((str_at(v, &["name"])?.to_string(), path.to_string()))
        })
        .collect();
    for (volume, path) in &host_volumes {
        if path != "/dev/net/tun" {
            problems.push(format!(
                "{name}: hostPath volume {volume} ({path}): only /dev/net/tun is allowed"
            ));
        }
    }
    for container in workload.containers() {
        let cname = str_at(container, &["name"]).unwrap_or("?");
        let here = format!("{name}: container {cname}");
        let kernel_tailscaled =
            cname == TAILSCALED && env_value(container, "TS_USERSPACE") == Some("false");
        check_security_context(container, pod_sc, kernel_tailscaled, &here, problems);
        for mount in seq_at(container, &["volumeMounts"]) {
            let volume = str_at(mount, &["name"]).unwrap_or("");
            if host_volumes.contains_key(volume) && !kernel_tailscaled {
                problems.push(format!(
                    "{here}: mounts hostPath volume {volume}; only the kernel-mode {TAILSCALED} may"
                ));
            }
        }
        check_resources(container, &here, problems);
        check_probe_ports(container, &here, problems);
        let Some(binary) = binary_of(container) else {
            if !seq_at(container, &["command"]).is_empty()
                && str_at(container, &["image"]).is_some_and(|i| i.contains("kube-auth-proxy"))
            {
                problems.push(format!(
                    "{here}: runs our image with an unknown command (expected {BIN_DIR}/kube-auth-proxy or {BIN_DIR}/kube-recorder)"
                ));
            }
            continue;
        };
        let command = seq_at(container, &["command"])
            .first()
            .and_then(Value::as_str)
            .unwrap_or("");
        let installed = format!("{BIN_DIR}/{binary}");
        if command != installed {
            problems.push(format!(
                "{here}: command {command} is not where the Containerfile installs {binary} ({installed})"
            ));
        }
        if !containerfile.contains(&installed) {
            problems.push(format!(
                "{here}: the Containerfile does not install {installed}"
            ));
        }
        let args = strings_at(container, &["args"]);
        // What the binary gets: the rest of `command`, then `args`.
        let args: Vec<String> = seq_at(container, &["command"])
            .iter()
            .skip(1)
            .map(scalar_string)
            .chain(args)
            .collect();
        match binary {
            "kube-auth-proxy" => {
                found.proxies += 1;
                check_proxy(workload, container, &args, &here, problems);
            }
            _ => {
                problems.extend(
                    recorder
                        .check_args(&args)
                        .into_iter()
                        .map(|p| format!("{here}: {p}")),
                );
                check_env_names(container, "KUBE_RECORDER_", &recorder.env, &here, problems);
                let listen = flag_value(&args, "--listen")
                    .unwrap_or("127.0.0.1:8080")
                    .parse::<SocketAddr>();
                match listen {
                    Ok(listen) => {
                        if listen.ip().is_loopback() {
                            problems.push(format!(
                                "{here}: --listen {listen} is loopback: the proxy cannot reach it"
                            ));
                        }
                        check_http_probes(
                            container,
                            listen.port(),
                            &RECORDER_PROBE_PATHS,
                            &here,
                            problems,
                        );
                        found.recorder_ports.push(listen.port());
                    }
                    Err(error) => problems.push(format!("{here}: --listen: {error}")),
                }
            }
        }
    }
    found
}

fn check_security_context(
    container: &Value,
    pod_sc: Option<&Value>,
    kernel_tailscaled: bool,
    here: &str,
    problems: &mut Vec<String>,
) {
    let sc = container.get("securityContext");
    let field = |key: &str| sc.and_then(|sc| sc.get(key));
    // A container setting wins over the pod's.
    let effective = |key: &str| field(key).or_else(|| pod_sc.and_then(|p| p.get(key)));
    if field("allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false) {
        problems.push(format!("{here}: needs allowPrivilegeEscalation: false"));
    }
    if field("readOnlyRootFilesystem").and_then(Value::as_bool) != Some(true) {
        problems.push(format!("{here}: needs readOnlyRootFilesystem: true"));
    }
    if field("privileged").and_then(Value::as_bool) == Some(true) {
        problems.push(format!("{here}: privileged is not allowed"));
    }
    let drop = sc
        .map(|sc| strings_at(sc, &["capabilities", "drop"]))
        .unwrap_or_default();
    if !drop.iter().any(|c| c == "ALL") {
        problems.push(format!("{here}: needs capabilities.drop: [ALL]"));
    }
    let add = sc
        .map(|sc| strings_at(sc, &["capabilities", "add"]))
        .unwrap_or_default();
    for capability in &add {
        if !(kernel_tailscaled && TAILSCALED_KERNEL_CAPS.contains(&capability.as_str())) {
            problems.push(format!(
                "{here}: adds capability {capability} (only the kernel-mode {TAILSCALED} may add {TAILSCALED_KERNEL_CAPS:?})"
            ));
        }
    }
    if !kernel_tailscaled {
        if effective("runAsNonRoot").and_then(Value::as_bool) != Some(true) {
            problems.push(format!("{here}: needs runAsNonRoot: true"));
        }
        if effective("runAsUser").and_then(Value::as_u64) == Some(0) {
            problems.push(format!("{here}: runs as uid 0"));
        }
    }
    if str_at(
        effective("seccompProfile").unwrap_or(&Value::Null),
        &["type"],
    ) != Some("RuntimeDefault")
    {
        problems.push(format!("{here}: needs seccompProfile RuntimeDefault"));
    }
}

fn check_resources(container: &Value, here: &str, problems: &mut Vec<String>) {
    for path in [
        ["resources", "requests", "cpu"],
        ["resources", "requests", "memory"],
        ["resources", "limits", "memory"],
    ] {
        if at(container, &path).is_none() {
            problems.push(format!("{here}: needs {}", path.join(".")));
        }
    }
}

const PROBES: [&str; 3] = ["livenessProbe", "readinessProbe", "startupProbe"];

/// Every httpGet or tcpSocket probe targets a port of its container.
fn check_probe_ports(container: &Value, here: &str, problems: &mut Vec<String>) {
    for probe in PROBES {
        for kind in ["httpGet", "tcpSocket"] {
            if let Some(port) = at(container, &[probe, kind, "port"]) {
                if !container_has_port(container, port) {
                    problems.push(format!(
                        "{here}: {probe} port {} is not a port of the container",
                        scalar_string(port)
                    ));
                }
            }
        }
    }
}

/// The container's liveness and readiness probes are httpGet probes on `port`, at `paths`; so is
/// any other probe it has.
fn check_http_probes(
    container: &Value,
    port: u16,
    paths: &[&str],
    here: &str,
    problems: &mut Vec<String>,
) {
    for probe in PROBES {
        let Some(spec) = container.get(probe) else {
            if probe != "startupProbe" {
                problems.push(format!("{here}: needs a {probe}"));
            }
            continue;
        };
        let Some(get) = spec.get("httpGet") else {
            problems.push(format!("{here}: {probe} must be an httpGet probe"));
            continue;
        };
        let path = str_at(get, &["path"]).unwrap_or("/");
        if !paths.contains(&path) {
            problems.push(format!(
                "{here}: {probe} path {path} is not one it serves for probes ({paths:?})"
            ));
        }
        let probe_port = get.get("port").and_then(|p| port_number(container, p));
        if probe_port != Some(u64::from(port)) {
            problems.push(format!(
                "{here}: {probe} port {} is not the port it listens on ({port})",
                probe_port.map_or("?".into(), |p| p.to_string())
            ));
        }
    }
}

/// Variables with the binary's prefix must be ones it reads.
fn check_env_names(
    container: &Value,
    prefix: &str,
    known: &BTreeSet<String>,
    here: &str,
    problems: &mut Vec<String>,
) {
    for env in seq_at(container, &["env"]) {
        let name = str_at(env, &["name"]).unwrap_or("");
        if name.starts_with(prefix) && !known.contains(name) {
            problems.push(format!(
                "{here}: environment variable {name} is not one it reads"
            ));
        }
    }
}

/// The proxy's own parser, without reading this process's environment.
fn proxy_command() -> clap::Command {
    kube_auth_proxy::Cli::command().mut_args(|arg| arg.env(None::<&str>))
}

/// Problems with `kube-auth-proxy ARGS`; on success, the parsed matches.
fn parse_proxy_args(args: &[String]) -> Result<clap::ArgMatches, String> {
    let matches = proxy_command()
        .try_get_matches_from(
            std::iter::once("kube-auth-proxy").chain(args.iter().map(String::as_str)),
        )
        .map_err(|error| first_line(&error.to_string()).to_string())?;
    kube_auth_proxy::Cli::from_arg_matches(&matches)
        .map_err(|error| first_line(&error.to_string()).to_string())?;
    let tls = [
        matches.get_one::<PathBuf>("tls_cert").is_some(),
        matches.get_flag("tls_from_tailscale"),
        matches.get_flag("tls_self_signed"),
    ];
    let chosen = tls.iter().filter(|t| **t).count();
    if chosen != 1 {
        return Err(format!(
            "choose exactly one of --tls-cert/--tls-key, --tls-from-tailscale or --tls-self-signed ({chosen} given)"
        ));
    }
    Ok(matches)
}

fn check_proxy(
    workload: &Workload<'_>,
    container: &Value,
    args: &[String],
    here: &str,
    problems: &mut Vec<String>,
) {
    let known: BTreeSet<String> = kube_auth_proxy::Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    check_env_names(container, "KUBE_AUTH_PROXY_", &known, here, problems);
    let matches = match parse_proxy_args(args) {
        Ok(matches) => matches,
        Err(error) => {
            problems.push(format!("{here}: kube-auth-proxy refuses its args: {error}"));
            return;
        }
    };
    if let Some(metrics) = matches.get_one::<SocketAddr>("metrics_listen") {
        if metrics.ip().is_loopback() {
            problems.push(format!(
                "{here}: --metrics-listen {metrics} is loopback: the kubelet's probes cannot reach it"
            ));
        }
        check_http_probes(
            container,
            metrics.port(),
            &PROXY_PROBE_PATHS,
            here,
            problems,
        );
    }
    if let Some(listen) = matches.get_one::<SocketAddr>("listen") {
        let port = Value::Number(listen.port().into());
        if !listen.ip().is_loopback() && !container_has_port(container, &port) {
            problems.push(format!(
                "{here}: --listen {listen} is not declared as a container port"
            ));
        }
    }
    // With a tailscaled sidecar, the proxy's socket is tailscaled's, in a volume both mount.
    let socket = matches
        .get_one::<PathBuf>("localapi_socket")
        .cloned()
        .unwrap_or_default();
    let Some(tailscaled) = workload
        .containers()
        .find(|c| str_at(c, &["name"]) == Some(TAILSCALED))
    else {
        return;
    };
    if env_value(tailscaled, "TS_SOCKET").map(Path::new) != Some(socket.as_path()) {
        problems.push(format!(
            "{here}: --localapi-socket {} is not the {TAILSCALED} sidecar's TS_SOCKET",
            socket.display()
        ));
    }
    let dir = socket.parent().unwrap_or(Path::new("/"));
    let volume_at = |c: &Value| {
        seq_at(c, &["volumeMounts"])
            .iter()
            .find(|m| str_at(m, &["mountPath"]).map(Path::new) == Some(dir))
            .and_then(|m| str_at(m, &["name"]))
            .map(str::to_string)
    };
    match (volume_at(container), volume_at(tailscaled)) {
        (Some(a), Some(b)) if a == b => {}
        _ => problems.push(format!(
            "{here}: {} is not a volume shared with the {TAILSCALED} sidecar",
            dir.display()
        )),
    }
}

fn check_services(documents: &[Value], workloads: &[Workload<'_>], problems: &mut Vec<String>) {
    let mut served = BTreeSet::new();
    for service in documents
        .iter()
        .filter(|d| str_at(d, &["kind"]) == Some("Service"))
    {
        let name = describe(service);
        let selector = labels_at(service, &["spec", "selector"]);
        let namespace = str_at(service, &["metadata", "namespace"]);
        let targets: Vec<&Workload> = workloads
            .iter()
            .filter(|w| w.namespace == namespace && selects(&selector, &w.labels))
            .collect();
        if targets.is_empty() {
            problems.push(format!("{name}: selects no workload"));
        }
        for workload in targets {
            served.insert(workload.name.clone());
            for port in seq_at(service, &["spec", "ports"]) {
                let target = port
                    .get("targetPort")
                    .or_else(|| port.get("port"))
                    .unwrap_or(&Value::Null);
                if !workload.has_port(target) {
                    problems.push(format!(
                        "{name}: targetPort {} is not a port of {}",
                        scalar_string(target),
                        workload.name
                    ));
                }
            }
        }
    }
    for workload in workloads {
        if !served.contains(&workload.name) {
            problems.push(format!("{}: no Service selects it", workload.name));
        }
    }
}

/// The recorder's pods keep off the proxy's node: a pod anti-affinity term (preferred or
/// required) on `kubernetes.io/hostname` whose label selector selects every proxy pod, in the
/// recorder's namespace (the term names no other). While a session is recorded the two each
/// spend about a CPU second per GB of output, and on one node they compete for its cores.
fn check_recorder_placement(
    recorder: &Workload<'_>,
    proxies: &[&Workload<'_>],
    problems: &mut Vec<String>,
) {
    let anti = ["affinity", "podAntiAffinity"];
    let preferred = seq_at(
        recorder.pod,
        &[
            anti[0],
            anti[1],
            "preferredDuringSchedulingIgnoredDuringExecution",
        ],
    )
    .iter()
    .filter_map(|weighted| weighted.get("podAffinityTerm"));
    let required = seq_at(
        recorder.pod,
        &[
            anti[0],
            anti[1],
            "requiredDuringSchedulingIgnoredDuringExecution",
        ],
    )
    .iter();
    let apart = preferred.chain(required).any(|term| {
        let selector = labels_at(term, &["labelSelector", "matchLabels"]);
        str_at(term, &["topologyKey"]) == Some("kubernetes.io/hostname")
            && term.get("namespaces").is_none()
            && term.get("namespaceSelector").is_none()
            && !proxies.is_empty()
            && proxies
                .iter()
                .all(|p| p.namespace == recorder.namespace && selects(&selector, &p.labels))
    });
    if !apart {
        problems.push(format!(
            "{} (the recorder): its pods do not keep off the proxy's node (a podAntiAffinity \
             term on kubernetes.io/hostname selecting the proxy's pods)",
            recorder.name
        ));
    }
}

/// A NetworkPolicy selects the recorder's pods, and every policy that does admits only the
/// proxy's pods, and only to the ingest port.
fn check_recorder_policy(
    documents: &[Value],
    recorder: &Workload<'_>,
    port: u16,
    proxies: &[&Workload<'_>],
    problems: &mut Vec<String>,
) {
    let policies: Vec<&Value> = documents
        .iter()
        .filter(|d| str_at(d, &["kind"]) == Some("NetworkPolicy"))
        .filter(|d| str_at(d, &["metadata", "namespace"]) == recorder.namespace)
        .filter(|d| {
            let selector = labels_at(d, &["spec", "podSelector", "matchLabels"]);
            // An empty selector selects every pod of the namespace.
            selector.is_empty() || selects(&selector, &recorder.labels)
        })
        .collect();
    let here = format!("{} (the recorder)", recorder.name);
    if !policies.iter().any(|p| {
        strings_at(p, &["spec", "policyTypes"])
            .iter()
            .any(|t| t == "Ingress")
    }) {
        problems.push(format!("{here}: no NetworkPolicy restricts its ingress"));
    }
    for policy in policies {
        let name = describe(policy);
        for (i, rule) in seq_at(policy, &["spec", "ingress"]).iter().enumerate() {
            let from = seq_at(rule, &["from"]);
            if from.is_empty() {
                problems.push(format!("{name}: ingress rule {i} admits every source"));
            }
            for peer in from {
                let selector = labels_at(peer, &["podSelector", "matchLabels"]);
                let only_pods = peer.get("namespaceSelector").is_none()
                    && peer.get("ipBlock").is_none()
                    && at(peer, &["podSelector", "matchExpressions"]).is_none();
                if !only_pods
                    || selector.is_empty()
                    || !proxies.iter().all(|p| selects(&selector, &p.labels))
                    || proxies.is_empty()
                    || selects(&selector, &recorder.labels)
                {
                    problems.push(format!(
                        "{name}: ingress rule {i} admits more than the proxy's pods"
                    ));
                }
            }
            let ports = seq_at(rule, &["ports"]);
            if ports.is_empty() {
                problems.push(format!("{name}: ingress rule {i} admits every port"));
            }
            for p in ports {
                let ok = match p.get("port") {
                    Some(Value::Number(n)) => n.as_u64() == Some(u64::from(port)),
                    Some(Value::String(named)) => recorder.containers().any(|c| {
                        port_number(c, &Value::String(named.clone())) == Some(u64::from(port))
                    }),
                    _ => false,
                } && p.get("endPort").is_none();
                if !ok {
                    problems.push(format!(
                        "{name}: ingress rule {i} admits a port other than the ingest port {port}"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(yaml: &str) -> Vec<Value> {
        parse_documents(yaml).expect("valid YAML")
    }

    /// The checked-in tailscale-sidecar overlay, rendered.
    fn rendered_overlay(name: &str) -> String {
        kustomize(&workspace_root().join("deploy/overlays").join(name)).expect("kustomize")
    }

    /// Built once per test run: concurrent builds would replace the binary under a running test.
    fn recorder() -> &'static RecorderCli {
        static RECORDER: std::sync::OnceLock<RecorderCli> = std::sync::OnceLock::new();
        RECORDER.get_or_init(|| RecorderCli::build().expect("kube-recorder builds"))
    }

    fn containerfile() -> String {
        std::fs::read_to_string(workspace_root().join("Containerfile")).expect("Containerfile")
    }

    fn problems_in(yaml: &str) -> Vec<String> {
        check(&docs(yaml), recorder(), &containerfile())
    }

    #[test]
    fn the_overlays_pass() {
        for overlay in REQUIRED_OVERLAYS {
            let problems = problems_in(&rendered_overlay(overlay));
            assert!(problems.is_empty(), "{overlay}: {problems:#?}");
        }
    }

    #[test]
    fn a_policy_file_the_proxy_refuses_fails_the_check() {
        let yaml = rendered_overlay("client-cert-oidc");
        let broken = edit(&yaml, "enforceRecorder: true", "enforceRecorders: true");
        assert_found(
            &problems_in(&broken),
            "is not a policy file the proxy accepts",
        );
    }

    /// Replaces the first occurrence of `from`, which must be there.
    fn edit(yaml: &str, from: &str, to: &str) -> String {
        assert!(yaml.contains(from), "{from:?} not in the rendered overlay");
        yaml.replacen(from, to, 1)
    }

    fn assert_found(problems: &[String], needle: &str) {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "expected a problem containing {needle:?}, got {problems:#?}"
        );
    }

    #[test]
    fn a_recorder_free_to_share_the_proxys_node_fails() {
        let overlay = rendered_overlay("tailscale-sidecar");
        let needle = "do not keep off the proxy's node";
        for (from, to) in [
            ("topologyKey: kubernetes.io/hostname", "topologyKey: topology.kubernetes.io/zone"),
            ("podAntiAffinity:", "podAffinity:"),
            (
                "labelSelector:\n                matchLabels:\n                  app.kubernetes.io/name: kube-auth-proxy",
                "labelSelector:\n                matchLabels:\n                  app.kubernetes.io/name: kube-recorder",
            ),
        ] {
            assert_found(&problems_in(&edit(&overlay, from, to)), needle);
        }
        assert!(!problems_in(&overlay).iter().any(|p| p.contains(needle)));
    }

    #[test]
    fn a_misspelt_proxy_flag_fails() {
        let yaml = edit(
            &rendered_overlay("tailscale-sidecar"),
            "- --metrics-listen=0.0.0.0:9002",
            "- --metrics-listn=0.0.0.0:9002",
        );
        assert_found(&problems_in(&yaml), "kube-auth-proxy refuses its args");
    }

    #[test]
    fn a_bad_proxy_value_or_two_tls_sources_fail() {
        assert!(parse_proxy_args(&["--tls-self-signed".into()]).is_ok());
        assert!(
            parse_proxy_args(&["--tls-self-signed".into(), "--shutdown-grace=soon".into()])
                .is_err()
        );
        assert!(parse_proxy_args(&[]).is_err());
        assert!(
            parse_proxy_args(&["--tls-self-signed".into(), "--tls-from-tailscale".into()]).is_err()
        );
        // clap's `requires`: --proxy-protocol without --proxy-protocol-from.
        assert!(
            parse_proxy_args(&["--tls-self-signed".into(), "--proxy-protocol".into()]).is_err()
        );
    }

    #[test]
    fn a_misspelt_recorder_flag_fails() {
        let yaml = edit(
            &rendered_overlay("proxy-protocol"),
            "- --max-recording-bytes=1073741824",
            "- --max-recordings-bytes=1073741824",
        );
        assert_found(&problems_in(&yaml), "kube-recorder refuses its args");
        let yaml = edit(
            &rendered_overlay("proxy-protocol"),
            "- --dir=/var/lib/kube-recorder",
            "- --v1-only",
        );
        assert_found(&problems_in(&yaml), "kube-recorder serve needs --dir");
    }

    #[test]
    fn unknown_environment_variables_fail() {
        let container = docs("env: [{name: KUBE_AUTH_PROXY_LISTN, value: x}]");
        let mut problems = Vec::new();
        check_env_names(
            &container[0],
            "KUBE_AUTH_PROXY_",
            &BTreeSet::from(["KUBE_AUTH_PROXY_LISTEN".to_string()]),
            "c",
            &mut problems,
        );
        assert_found(&problems, "KUBE_AUTH_PROXY_LISTN");
    }

    #[test]
    fn wildcards_and_broad_rights_fail() {
        let yaml = edit(
            &rendered_overlay("tailscale-sidecar"),
            "  - impersonate\n",
            "  - '*'\n",
        );
        let problems = problems_in(&yaml);
        assert_found(&problems, "has `*` in verbs");
        assert_found(&problems, "may only impersonate");
        let yaml = edit(
            &rendered_overlay("tailscale-sidecar"),
            "  resourceNames:\n  - kube-auth-proxy-tailscale-state\n",
            "",
        );
        assert_found(&problems_in(&yaml), "Secrets only by name");
    }

    #[test]
    fn a_weakened_security_context_fails() {
        let overlay = rendered_overlay("proxy-protocol");
        let yaml = edit(
            &overlay,
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
        );
        assert_found(&problems_in(&yaml), "needs readOnlyRootFilesystem: true");
        let yaml = edit(
            &overlay,
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
        );
        assert_found(&problems_in(&yaml), "needs allowPrivilegeEscalation: false");
        let yaml = edit(&overlay, "        - ALL\n", "        - NET_RAW\n");
        assert_found(&problems_in(&yaml), "needs capabilities.drop: [ALL]");
        // The userspace tailscaled has no exception.
        let yaml = edit(&overlay, "runAsUser: 65533", "runAsUser: 0");
        assert_found(&problems_in(&yaml), "runs as uid 0");
        // Kernel mode's capabilities, but only for the tailscaled container.
        let sidecar = rendered_overlay("tailscale-sidecar");
        let yaml = edit(
            &sidecar,
            "          capabilities:\n            drop:\n            - ALL\n          readOnlyRootFilesystem: true\n          runAsNonRoot: true\n",
            "          capabilities:\n            add: [NET_ADMIN]\n            drop:\n            - ALL\n          readOnlyRootFilesystem: true\n          runAsNonRoot: true\n",
        );
        assert_found(&problems_in(&yaml), "adds capability NET_ADMIN");
        let yaml = edit(&sidecar, "value: \"false\"", "value: \"true\"");
        assert_found(&problems_in(&yaml), "adds capability NET_ADMIN");
        let yaml = edit(&sidecar, "memory: 512Mi", "ephemeral-storage: 1Gi");
        assert_found(&problems_in(&yaml), "needs resources.limits.memory");
    }

    #[test]
    fn wrong_probes_fail() {
        let overlay = rendered_overlay("tailscale-sidecar");
        let yaml = edit(&overlay, "path: /readyz", "path: /ready");
        assert_found(&problems_in(&yaml), "path /ready is not one it serves");
        let yaml = edit(
            &overlay,
            "--metrics-listen=0.0.0.0:9002",
            "--metrics-listen=0.0.0.0:9003",
        );
        assert_found(&problems_in(&yaml), "is not the port it listens on (9003)");
        let yaml = edit(
            &overlay,
            "--metrics-listen=0.0.0.0:9002",
            "--metrics-listen=127.0.0.1:9002",
        );
        assert_found(&problems_in(&yaml), "is loopback");
        let yaml = edit(&overlay, "port: metrics\n", "port: metric\n");
        assert_found(
            &problems_in(&yaml),
            "port metric is not a port of the container",
        );
    }

    #[test]
    fn a_socket_the_sidecar_does_not_share_fails() {
        let yaml = edit(
            &rendered_overlay("tailscale-sidecar"),
            "--localapi-socket=/var/run/tailscale/tailscaled.sock",
            "--localapi-socket=/run/tailscaled.sock",
        );
        let problems = problems_in(&yaml);
        assert_found(&problems, "is not the tailscaled sidecar's TS_SOCKET");
        assert_found(
            &problems,
            "is not a volume shared with the tailscaled sidecar",
        );
    }

    #[test]
    fn an_open_recorder_fails() {
        let overlay = rendered_overlay("tailscale-sidecar");
        let yaml = edit(
            &overlay,
            "  - from:\n    - podSelector:\n        matchLabels:\n          app.kubernetes.io/name: kube-auth-proxy\n",
            "  - from:\n    - namespaceSelector: {}\n",
        );
        assert_found(&problems_in(&yaml), "admits more than the proxy's pods");
        let yaml = edit(
            &overlay,
            "    - port: 8080\n      protocol: TCP\n",
            "    - port: 9002\n      protocol: TCP\n",
        );
        assert_found(
            &problems_in(&yaml),
            "admits a port other than the ingest port 8080",
        );
        let yaml = edit(&overlay, "kind: NetworkPolicy", "kind: NetworkPolicyX");
        assert_found(
            &problems_in(&yaml),
            "no NetworkPolicy restricts its ingress",
        );
    }

    #[test]
    fn usage_lines_and_help_are_read() {
        assert_eq!(
            required_flags("kube-recorder serve [OPTIONS] --dir <DIR>"),
            ["--dir"]
        );
        assert_eq!(
            required_flags("x [--a <A>] --b <B> [--c <C> --d] --e"),
            ["--b", "--e"]
        );
        let help = "  --listen\n     [env: KUBE_RECORDER_LISTEN=]\n  [env: X=y]";
        assert_eq!(
            env_names(help).collect::<Vec<_>>(),
            ["KUBE_RECORDER_LISTEN", "X"]
        );
        let args: Vec<String> = ["serve", "--dir=/a", "--listen", "1.2.3.4:5"]
            .map(String::from)
            .to_vec();
        assert_eq!(flag_value(&args, "--dir"), Some("/a"));
        assert_eq!(flag_value(&args, "--listen"), Some("1.2.3.4:5"));
        assert_eq!(flag_value(&args, "--max"), None);
    }
}
