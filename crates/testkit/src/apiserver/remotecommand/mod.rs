//! `pods/exec` and `pods/attach` over SPDY/3.1 and WebSocket, backed by real processes on the
//! host, as kubectl sees them from a kube-apiserver (v1.32) in front of a kubelet.
//!
//! A request passes the same authentication and impersonation as any other (and is logged the
//! same way) before anything here runs. Then, in the apiserver's order:
//!
//! 1. the query is read as `PodExecOptions`/`PodAttachOptions` ([`SessionParams`]), the pod is
//!    looked up (`404`) and the container resolved (`400` when unknown or ambiguous); with a tty
//!    stderr is dropped, as the kubelet drops it; at least one of stdin, stdout and stderr is
//!    required;
//! 2. the upgrade is negotiated ([`upgrade`], with the choices in [`negotiate`]):
//!    `Upgrade: SPDY/3.1` (any method) picks a remote command version, `Upgrade: websocket`
//!    (GET) a channel subprotocol; a request without an upgrade gets
//!    `400 Upgrade request required`;
//! 3. for attach, the container's main process is joined, or started if it is not running
//!    ([`attach`]);
//! 4. `101 Switching Protocols`, and the session runs on the upgraded connection: [`spdy`] or
//!    [`websocket`] turns the wire into client events and writes output and the status,
//!    [`exec`] or [`attach`] runs the session.
//!
//! Refusals before the upgrade are `metav1.Status` bodies, which kubectl prints (over WebSocket
//! too: client-go reads a `Status` from a failed handshake instead of falling back to SPDY),
//! except the negotiation's own, which are worded as the kubelet's (plain text, or an empty
//! `403` for a WebSocket subprotocol, which makes kubectl retry over SPDY). After the upgrade,
//! every failure is a status on the error stream, as the kubelet writes it
//! ([`outcome`]). Memory per session is bounded (reads of 32 KiB, a queue of 16 client events,
//! a 256-piece output backlog per attached session, bounded frame and header parsers), and a
//! client that sends what cannot be parsed has its connection closed.

mod attach;
mod exec;
mod negotiate;
mod outcome;
mod process;
mod resize;
mod session;
mod spdy;
mod tasks;
mod upgrade;
mod websocket;

use std::path::PathBuf;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sessiontap::SessionParams;

use self::attach::{Attachment, MainKey, MainProcesses};
use self::process::ProcessSpec;
use self::session::{BoxedRead, BoxedWrite};
use self::tasks::SessionTasks;
use self::upgrade::{handshake, Handshake, Transport};
use super::state::SharedState;
use super::status::Status;

/// Which subresource a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subresource {
    /// `pods/exec`: run a command.
    Exec,
    /// `pods/attach`: connect to the container's main process.
    Attach,
}

/// The server's exec and attach state: session tasks, pods' main processes, and the directory
/// the processes run in (one sub-directory per pod, removed when the server goes).
#[derive(Debug)]
pub(crate) struct RemoteCommands {
    tasks: SessionTasks,
    main: MainProcesses,
    root: tempfile::TempDir,
}

impl RemoteCommands {
    /// Creates the processes' directory.
    pub(crate) fn new() -> std::io::Result<Self> {
        Ok(RemoteCommands {
            tasks: SessionTasks::default(),
            main: MainProcesses::default(),
            root: tempfile::Builder::new()
                .prefix("testkit-apiserver-")
                .tempdir()?,
        })
    }

    /// Ends every session and main process now.
    pub(crate) fn abort_all(&self) {
        self.tasks.abort_all();
    }

    /// Ends every session and main process and waits for them.
    pub(crate) async fn shutdown(&self) {
        self.tasks.shutdown().await;
    }

    /// The working directory of a pod's processes.
    fn pod_dir(&self, namespace: &str, pod: &str) -> std::io::Result<PathBuf> {
        let dir = self.root.path().join(namespace).join(pod);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

/// What the session will run.
#[derive(Debug)]
enum Target {
    Exec(ProcessSpec),
    Attach(Attachment),
}

/// A validated request, before the upgrade.
struct Plan {
    params: SessionParams,
    container: Value,
    /// Whether the container is an ephemeral one (`kubectl debug`).
    ephemeral: bool,
    container_name: String,
    pod_uid: String,
    cwd: PathBuf,
}

/// `GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec|attach`.
pub(crate) async fn serve(
    state: SharedState,
    subresource: Subresource,
    namespace: String,
    name: String,
    mut request: Request,
) -> Response {
    let plan = match plan(
        &state,
        subresource,
        &namespace,
        &name,
        request.uri().query(),
    ) {
        Ok(plan) => plan,
        Err(status) => return status.into_response(),
    };
    let (transport, response) = match handshake(request.method(), request.headers()) {
        Handshake::Accepted(transport, response) => (transport, response),
        Handshake::Refused(refused) => return refused,
    };
    let target = match target(&state, subresource, &namespace, &name, &plan) {
        Ok(target) => target,
        Err(status) => return status.into_response(),
    };
    let params = plan.params;
    let on_upgrade = hyper::upgrade::on(&mut request);
    state.remote.tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "exec/attach upgrade failed");
                return;
            }
        };
        let (read, write) = tokio::io::split(TokioIo::new(upgraded));
        let (read, write): (BoxedRead, BoxedWrite) = (Box::new(read), Box::new(write));
        let session = match transport {
            Transport::Spdy(version) => spdy::start(read, write, params, version).await,
            Transport::WebSocket(protocol) => websocket::start(read, write, params, protocol).await,
        };
        let Some(session) = session else {
            return;
        };
        match target {
            Target::Exec(spec) => exec::run(session, spec).await,
            Target::Attach(attachment) => attach::run(session, attachment).await,
        }
    });
    response
}

/// Validates the request as the apiserver (and kubelet) would before upgrading.
fn plan(
    state: &SharedState,
    subresource: Subresource,
    namespace: &str,
    name: &str,
    query: Option<&str>,
) -> Result<Plan, Status> {
    let mut params = SessionParams::from_query(query.unwrap_or_default())
        .map_err(|e| Status::bad_request(e.to_string()))?;
    let pod = state
        .store
        .pod(namespace, name)
        .ok_or_else(|| Status::not_found("pods", name))?;
    let containers: Vec<Value> = pod
        .object
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    // A named container may also be an init or ephemeral one (`kubectl debug` attaches to its
    // ephemeral container); only regular ones are a default.
    let all_containers: Vec<Value> = ["initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|key| pod.object.get("spec")?.get(key)?.as_array())
        .flatten()
        .chain(&containers)
        .cloned()
        .collect();
    // The apiserver's `validateContainer` (pkg/registry/core/pod/strategy.go).
    let container_name = match params.container.as_deref().filter(|c| !c.is_empty()) {
        Some(wanted)
            if all_containers
                .iter()
                .any(|c| c.get("name").and_then(Value::as_str) == Some(wanted)) =>
        {
            wanted.to_owned()
        }
        Some(wanted) => {
            return Err(Status::bad_request(format!(
                "container {wanted} is not valid for pod {name}"
            )))
        }
        None => match names.as_slice() {
            [only] => (*only).to_owned(),
            _ => {
                return Err(Status::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                )))
            }
        },
    };
    let container = all_containers
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(container_name.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    // Kubelet's `NewOptions`: a tty merges stderr into stdout.
    if params.tty {
        params.stderr = false;
    }
    if !params.stdin && !params.stdout && !params.stderr {
        return Err(Status::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if subresource == Subresource::Exec && params.command.is_empty() {
        return Err(Status::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let cwd = state
        .remote
        .pod_dir(namespace, name)
        .map_err(|e| internal_error(format!("creating the pod's directory: {e}")))?;
    let ephemeral = super::pods::ephemeral::is_ephemeral(&pod.object, &container_name);
    Ok(Plan {
        params,
        ephemeral,
        container,
        container_name,
        pod_uid: pod
            .object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        cwd,
    })
}

/// The process the session runs: the exec's command, or the container's main process (started
/// now if it is not running, so that this session sees all of its output).
fn target(
    state: &SharedState,
    subresource: Subresource,
    namespace: &str,
    name: &str,
    plan: &Plan,
) -> Result<Target, Status> {
    let env = vec![("HOSTNAME".to_owned(), name.to_owned())];
    let params = &plan.params;
    if subresource == Subresource::Exec {
        return Ok(Target::Exec(ProcessSpec {
            command: params.command.clone(),
            tty: params.tty,
            stdin: params.stdin,
            stdout: params.stdout,
            stderr: params.stderr,
            env,
            cwd: plan.cwd.clone(),
            size: None,
        }));
    }
    let strings = |key: &str| -> Vec<String> {
        plan.container
            .get(key)
            .and_then(Value::as_array)
            .map(|values| {
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let flag = |key: &str| plan.container.get(key).and_then(Value::as_bool) == Some(true);
    let mut command = strings("command");
    command.extend(strings("args"));
    if plan.ephemeral && strings("command").is_empty() {
        // The image's entrypoint: a shell for the debugging images (busybox, alpine...).
        let image = plan.container.get("image").and_then(Value::as_str);
        if let Some(entrypoint) = image.and_then(super::pods::ephemeral::image_default_command) {
            command.splice(0..0, entrypoint);
        }
    }
    if command.first().is_none_or(String::is_empty) {
        return Err(Status::bad_request(format!(
            "container {} of pod {name} has no main process to attach to: the testkit apiserver \
             runs the container's command (attachCommand in its configuration) on the host",
            plan.container_name
        )));
    }
    let spec = ProcessSpec {
        command,
        tty: flag("tty"),
        stdin: flag("stdin"),
        stdout: true,
        stderr: true,
        env,
        cwd: plan.cwd.clone(),
        size: None,
    };
    let key = MainKey {
        namespace: namespace.to_owned(),
        pod: name.to_owned(),
        uid: plan.pod_uid.clone(),
        container: plan.container_name.clone(),
    };
    state
        .remote
        .main
        .attach(key, &spec, &state.remote.tasks)
        .map(Target::Attach)
        .map_err(|e| {
            internal_error(format!(
                "error attaching to container: failed to start the main process: {e}"
            ))
        })
}

/// `errors.NewInternalError`.
fn internal_error(message: String) -> Status {
    Status::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        format!("Internal error occurred: {message}"),
    )
}
