//! Reading a kubeconfig file the way client-go does for the parts the proxy needs.
//!
//! Supported: cluster `server`, `certificate-authority(-data)`, `insecure-skip-tls-verify`,
//! `tls-server-name`; user `token`, `tokenFile`, `client-certificate(-data)`, `client-key(-data)`.
//! Relative file paths are resolved against the kubeconfig's own directory (client-go
//! `ResolvePaths`). `$KUBECONFIG` may list several files separated by `:`; as in client-go, the first
//! file that defines a name wins and the first `current-context` set wins. Credential plugins
//! (`exec`, `auth-provider`) and basic auth are refused with a clear error rather than ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::{ClientIdentity, Credential, PemSource, UpstreamConfig, UpstreamTls};

#[derive(Debug, Default, Deserialize)]
struct KubeConfigFile {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Debug, Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Debug, Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct Cluster {
    server: Option<String>,
    #[serde(rename = "certificate-authority")]
    certificate_authority: Option<PathBuf>,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify", default)]
    insecure_skip_tls_verify: bool,
    #[serde(rename = "tls-server-name")]
    tls_server_name: Option<String>,
    #[serde(skip)]
    base_dir: PathBuf,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct User {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(rename = "client-certificate")]
    client_certificate: Option<PathBuf>,
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-key")]
    client_key: Option<PathBuf>,
    #[serde(rename = "client-key-data")]
    client_key_data: Option<String>,
    username: Option<String>,
    exec: Option<serde_yaml::Value>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<serde_yaml::Value>,
    #[serde(skip)]
    base_dir: PathBuf,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: String,
}

/// A problem with the kubeconfig, naming the file and the field.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KubeconfigError {
    /// The file could not be read.
    #[error("cannot read kubeconfig {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a kubeconfig.
    #[error("kubeconfig {path} is not valid YAML: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_yaml::Error,
    },
    /// The file does not say what to use, or says something unsupported.
    #[error("kubeconfig {path}: {message}")]
    Invalid {
        /// The file(s).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Loads the upstream from the kubeconfig files (merged in order) and the named or current context.
pub(crate) fn load(
    paths: &[PathBuf],
    context: Option<&str>,
) -> Result<UpstreamConfig, KubeconfigError> {
    let mut clusters: BTreeMap<String, Cluster> = BTreeMap::new();
    let mut users: BTreeMap<String, User> = BTreeMap::new();
    let mut contexts: BTreeMap<String, Context> = BTreeMap::new();
    let mut current: Option<String> = None;
    let described = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
            path: path.clone(),
            source,
        })?;
        // An empty file is a valid, empty kubeconfig for client-go.
        let file: KubeConfigFile = if text.trim().is_empty() {
            KubeConfigFile::default()
        } else {
            serde_yaml::from_str(&text).map_err(|source| KubeconfigError::Parse {
                path: path.clone(),
                source,
            })?
        };
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for named in file.clusters {
            let mut cluster = named.cluster;
            cluster.base_dir = base_dir.clone();
            clusters.entry(named.name).or_insert(cluster);
        }
        for named in file.users {
            let mut user = named.user;
            user.base_dir = base_dir.clone();
            users.entry(named.name).or_insert(user);
        }
        for named in file.contexts {
            contexts.entry(named.name).or_insert(named.context);
        }
        if current.is_none() {
            current = file.current_context.filter(|c| !c.is_empty());
        }
    }
    let invalid = |message: String| KubeconfigError::Invalid {
        path: described.clone(),
        message,
    };
    let context_name = match context {
        Some(name) => name.to_string(),
        None => current.ok_or_else(|| {
            invalid("no current-context is set; pass --upstream-context".to_string())
        })?,
    };
    let ctx = contexts
        .get(&context_name)
        .ok_or_else(|| invalid(format!("context {context_name:?} not found")))?;
    let cluster = clusters.get(&ctx.cluster).ok_or_else(|| {
        invalid(format!(
            "cluster {:?} of context {context_name:?} not found",
            ctx.cluster
        ))
    })?;
    let user = if ctx.user.is_empty() {
        User::default()
    } else {
        users.get(&ctx.user).cloned().ok_or_else(|| {
            invalid(format!(
                "user {:?} of context {context_name:?} not found",
                ctx.user
            ))
        })?
    };
    build(cluster, &user, &context_name).map_err(invalid)
}

fn build(cluster: &Cluster, user: &User, context: &str) -> Result<UpstreamConfig, String> {
    let server = cluster
        .server
        .as_deref()
        .ok_or_else(|| format!("cluster of context {context:?} has no server"))?;
    let server = url::Url::parse(server).map_err(|e| format!("server {server:?}: {e}"))?;
    if !matches!(server.scheme(), "https" | "http") {
        return Err(format!("server {server}: scheme must be https or http"));
    }
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(format!(
            "context {context:?}: credential plugins (exec, auth-provider) are not supported; use a token, token file or client certificate"
        ));
    }
    if user.username.is_some() {
        return Err(format!(
            "context {context:?}: basic authentication is not supported; use a token, token file or client certificate"
        ));
    }
    let ca = pem_source(
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
        &cluster.base_dir,
        "certificate-authority-data",
    )?;
    let cert = pem_source(
        &user.client_certificate_data,
        &user.client_certificate,
        &user.base_dir,
        "client-certificate-data",
    )?;
    let key = pem_source(
        &user.client_key_data,
        &user.client_key,
        &user.base_dir,
        "client-key-data",
    )?;
    let client_identity = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientIdentity { cert, key }),
        (None, None) => None,
        _ => {
            return Err(format!(
                "context {context:?}: a client certificate needs both a certificate and a key"
            ))
        }
    };
    let credential = match (&user.token, &user.token_file) {
        (Some(token), _) if !token.is_empty() => Credential::Token(token.clone()),
        (_, Some(file)) => Credential::TokenFile(resolve(&user.base_dir, file)),
        _ => Credential::None,
    };
    Ok(UpstreamConfig {
        server,
        tls: UpstreamTls {
            ca,
            insecure_skip_verify: cluster.insecure_skip_tls_verify,
            server_name: cluster.tls_server_name.clone(),
            client_identity,
        },
        credential,
        source: format!("kubeconfig context {context:?}"),
    })
}

fn pem_source(
    data: &Option<String>,
    file: &Option<PathBuf>,
    base_dir: &Path,
    field: &str,
) -> Result<Option<PemSource>, String> {
    use base64::Engine as _;
    if let Some(data) = data.as_deref().filter(|d| !d.is_empty()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("{field} is not valid base64: {e}"))?;
        return Ok(Some(PemSource::Inline(bytes)));
    }
    Ok(file
        .as_ref()
        .filter(|f| !f.as_os_str().is_empty())
        .map(|f| PemSource::File(resolve(base_dir, f))))
}

fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority: certs/ca.crt
- name: dev
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
users:
- name: robot
  user:
    tokenFile: token
- name: certs
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
contexts:
- name: prod
  context: {cluster: prod, user: robot}
- name: dev
  context: {cluster: dev, user: certs}
"#;

    #[test]
    fn current_context_with_relative_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "config", TWO_CONTEXTS);
        let cfg = load(&[path], None).expect("loads");
        assert_eq!(cfg.server.as_str(), "https://10.0.0.1:6443/");
        assert_eq!(
            cfg.tls.ca,
            Some(PemSource::File(dir.path().join("certs/ca.crt")))
        );
        assert_eq!(
            cfg.credential,
            Credential::TokenFile(dir.path().join("token"))
        );
        assert!(cfg.tls.client_identity.is_none());
    }

    #[test]
    fn named_context_with_inline_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "config", TWO_CONTEXTS);
        let cfg = load(&[path], Some("dev")).expect("loads");
        assert_eq!(cfg.server.scheme(), "http");
        assert!(cfg.tls.insecure_skip_verify);
        let identity = cfg.tls.client_identity.expect("client identity");
        assert_eq!(identity.cert, PemSource::Inline(b"cert".to_vec()));
        assert_eq!(identity.key, PemSource::Inline(b"key".to_vec()));
        assert_eq!(cfg.credential, Credential::None);
    }

    #[test]
    fn first_file_wins_when_merging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write(
            dir.path(),
            "a",
            "current-context: dev\nclusters:\n- name: dev\n  cluster: {server: 'https://first:6443'}\n",
        );
        let second = write(dir.path(), "b", TWO_CONTEXTS);
        let cfg = load(&[first, second], None).expect("loads");
        assert_eq!(cfg.server.host_str(), Some("first"));
    }

    #[test]
    fn errors_name_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "config", TWO_CONTEXTS);
        let err = load(std::slice::from_ref(&path), Some("staging")).expect_err("missing context");
        assert!(err.to_string().contains("\"staging\""), "{err}");

        let exec = write(
            dir.path(),
            "exec",
            "current-context: c\nclusters: [{name: c, cluster: {server: 'https://x'}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n",
        );
        let err = load(&[exec], None).expect_err("exec refused");
        assert!(err.to_string().contains("credential plugins"), "{err}");

        let missing = dir.path().join("nope");
        let err = load(&[missing], None).expect_err("missing file");
        assert!(err.to_string().contains("nope"), "{err}");

        let garbage = write(dir.path(), "garbage", "clusters: 7\n");
        assert!(load(&[garbage], None).is_err());
    }
}
