//! State shared by every handler, and what the server and middleware attach to each request.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Value};

use super::auth::Authenticator;
use super::config::{parse_version, ApiServerConfig};
use super::identity::UserInfo;
use super::pods::object::manifest_from_config;
use super::pods::store::Store;
use super::portforward::PortForwards;
use super::remotecommand::RemoteCommands;
use super::request_log::RequestLog;
use super::x509_subject::CertSubject;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) log: RequestLog,
    pub(crate) authenticator: Authenticator,
    /// The `/version` body.
    pub(crate) version: Value,
    /// Exec and attach sessions and the pods' main processes.
    pub(crate) remote: RemoteCommands,
    /// Port-forward targets and connections.
    pub(crate) port_forward: PortForwards,
}

/// The state as handlers receive it.
pub(crate) type SharedState = Arc<AppState>;

impl AppState {
    /// Validates the configuration and creates the initial namespaces and pods.
    pub(crate) fn new(config: &ApiServerConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let store = Store::new();
        for ns in &config.namespaces {
            store.ensure_namespace(ns);
        }
        for pod in config.initial_pods() {
            store.ensure_namespace(&pod.namespace);
            store
                .create_pod(&pod.namespace, manifest_from_config(&pod))
                .map_err(|e| anyhow::anyhow!("config pod {}/{}: {e}", pod.namespace, pod.name))?;
        }
        Ok(AppState {
            store,
            log: RequestLog::default(),
            authenticator: Authenticator::new(config),
            version: version_info(&config.version),
            remote: RemoteCommands::new()
                .map_err(|e| anyhow::anyhow!("creating a directory for exec processes: {e}"))?,
            port_forward: PortForwards::new(config),
        })
    }
}

/// `version.Info` for a git version (already validated).
fn version_info(git_version: &str) -> Value {
    let (major, minor) = parse_version(git_version).unwrap_or((1, 32));
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "major": major.to_string(),
        "minor": minor.to_string(),
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-22T16:00:00Z",
        "goVersion": "go1.23.8",
        "compiler": "gc",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    })
}

/// What the server knows about a request's connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionInfo {
    /// The subject of a verified client certificate.
    pub(crate) client_cert: Option<CertSubject>,
    /// The address the connection was accepted on.
    pub(crate) local_addr: Option<SocketAddr>,
    /// The client's address: which connection a request came on.
    pub(crate) peer_addr: Option<SocketAddr>,
}

/// Who a request acts as (after impersonation), set by the authentication middleware.
#[derive(Debug, Clone)]
pub(crate) struct RequestUser {
    pub(crate) effective: UserInfo,
}
