//! Where the upstream API server is and how the proxy authenticates to it.

use std::path::{Path, PathBuf};

use url::Url;

use super::kubeconfig::{self, KubeconfigError};

/// Where the service account's files are mounted in a pod.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The upstream API server and the proxy's own credentials for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpstreamConfig {
    /// Base URL; request paths are appended to its path.
    pub(crate) server: Url,
    /// TLS settings for https servers.
    pub(crate) tls: UpstreamTls,
    /// Bearer credential sent on every request in auth mode.
    pub(crate) credential: Credential,
    /// Where this came from, for logs.
    pub(crate) source: String,
}

/// TLS settings for the upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UpstreamTls {
    /// CA bundle to trust instead of nothing (there are no default roots: an API server is trusted by
    /// its own CA).
    pub(crate) ca: Option<PemSource>,
    /// Skip certificate verification (kubeconfig `insecure-skip-tls-verify`).
    pub(crate) insecure_skip_verify: bool,
    /// Name to verify the server certificate against instead of the URL's host.
    pub(crate) server_name: Option<String>,
    /// Client certificate and key presented in auth mode.
    pub(crate) client_identity: Option<ClientIdentity>,
}

/// PEM data, inline or in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PemSource {
    /// The bytes themselves.
    Inline(Vec<u8>),
    /// A file to read.
    File(PathBuf),
}

impl PemSource {
    /// The PEM bytes.
    pub(crate) fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            PemSource::Inline(bytes) => Ok(bytes.clone()),
            PemSource::File(path) => std::fs::read(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
}

/// A client certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientIdentity {
    /// Certificate chain PEM.
    pub(crate) cert: PemSource,
    /// Private key PEM.
    pub(crate) key: PemSource,
}

/// The proxy's bearer credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// None (client certificate only, or an unauthenticated server).
    None,
    /// A fixed token.
    Token(String),
    /// A token file, re-read when it changes (projected service account tokens rotate).
    TokenFile(PathBuf),
}

/// Failure to decide on an upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamConfigError {
    /// The kubeconfig is unusable.
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    /// Nothing says where the API server is.
    #[error("no upstream configured: pass --upstream-kubeconfig, set KUBECONFIG, create ~/.kube/config or run in a cluster")]
    Nothing,
    /// The in-cluster environment is inconsistent.
    #[error("in-cluster configuration: {0}")]
    InCluster(String),
}

/// Decides the upstream as documented on `--upstream-kubeconfig`: an explicit kubeconfig; else the
/// in-cluster service account when `KUBERNETES_SERVICE_HOST` is set; else `$KUBECONFIG`; else
/// `~/.kube/config`.
pub(crate) fn discover(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<UpstreamConfig, UpstreamConfigError> {
    if let Some(path) = kubeconfig {
        return Ok(kubeconfig::load(&[path.to_path_buf()], context)?);
    }
    if let Some(host) = env("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty()) {
        let port = env("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".to_string());
        return in_cluster(&host, &port, Path::new(SERVICE_ACCOUNT_DIR));
    }
    if let Some(list) = env("KUBECONFIG").filter(|l| !l.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        return Ok(kubeconfig::load(&paths, context)?);
    }
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        let path = Path::new(&home).join(".kube").join("config");
        if path.exists() {
            return Ok(kubeconfig::load(&[path], context)?);
        }
    }
    Err(UpstreamConfigError::Nothing)
}

/// The in-cluster configuration (client-go `rest.InClusterConfig`).
pub(crate) fn in_cluster(
    host: &str,
    port: &str,
    account_dir: &Path,
) -> Result<UpstreamConfig, UpstreamConfigError> {
    // IPv6 service addresses need brackets in a URL.
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let server = Url::parse(&format!("https://{authority}")).map_err(|e| {
        UpstreamConfigError::InCluster(format!(
            "KUBERNETES_SERVICE_HOST={host:?} KUBERNETES_SERVICE_PORT={port:?}: {e}"
        ))
    })?;
    let token = account_dir.join("token");
    if !token.exists() {
        return Err(UpstreamConfigError::InCluster(format!(
            "service account token {} does not exist",
            token.display()
        )));
    }
    Ok(UpstreamConfig {
        server,
        tls: UpstreamTls {
            ca: Some(PemSource::File(account_dir.join("ca.crt"))),
            ..UpstreamTls::default()
        },
        credential: Credential::TokenFile(token),
        source: "in-cluster service account".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_uses_service_account_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token"), "t").expect("write");
        let cfg = in_cluster("fd00::1", "6443", dir.path()).expect("in-cluster");
        assert_eq!(cfg.server.as_str(), "https://[fd00::1]:6443/");
        assert_eq!(
            cfg.credential,
            Credential::TokenFile(dir.path().join("token"))
        );
        assert_eq!(cfg.tls.ca, Some(PemSource::File(dir.path().join("ca.crt"))));
    }

    #[test]
    fn in_cluster_without_token_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = in_cluster("10.0.0.1", "443", dir.path()).expect_err("no token");
        assert!(err.to_string().contains("token"), "{err}");
    }

    #[test]
    fn discovery_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kube = dir.path().join(".kube");
        std::fs::create_dir(&kube).expect("mkdir");
        std::fs::write(
            kube.join("config"),
            "current-context: c\nclusters: [{name: c, cluster: {server: 'https://home:6443'}}]\ncontexts: [{name: c, context: {cluster: c}}]\n",
        )
        .expect("write");
        let home = dir.path().display().to_string();
        let env = |key: &str| (key == "HOME").then(|| home.clone());
        let cfg = discover(None, None, &env).expect("home config");
        assert_eq!(cfg.server.host_str(), Some("home"));

        let nothing = |_: &str| None;
        assert!(matches!(
            discover(None, None, &nothing),
            Err(UpstreamConfigError::Nothing)
        ));
    }
}
