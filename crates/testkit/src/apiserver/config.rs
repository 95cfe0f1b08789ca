//! The stand-in's configuration: one typed struct, read from YAML or built in code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::names::{is_dns1123_label, is_dns1123_subdomain};

/// Everything the stand-in serves: its version, who may call it, and the objects it starts with.
///
/// ```yaml
/// version: v1.32.4
/// anonymousAuth: true
/// tokens:
///   - {token: proxy-token, user: "system:serviceaccount:tailscale:kube-auth-proxy",
///      groups: ["system:serviceaccounts"], impersonate: true}
///   - {token: alice-token, user: alice, groups: [devs]}
/// clientCerts:
///   - {name: proxy, user: kube-auth-proxy, groups: [proxies], impersonate: true}
/// namespaces: [default]
/// pods:
///   - {namespace: default, name: demo, containers: [main], phase: Running, labels: {app: demo}}
///   # `kubectl attach` connects to the first container's main process, run on the host:
///   - {name: shell, attachCommand: [sh], tty: true, stdin: true}
///   # `kubectl port-forward pod/web 8080` reaches this TCP listener on the host:
///   - {name: web, portForward: {"8080": "127.0.0.1:18080"}}
/// generatedPods:
///   - {namespace: bulk, prefix: pod-, count: 5000}
/// # Container ports of every pod (a pod's own `portForward` entry wins):
/// portForward: {"9090": "127.0.0.1:19090"}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ApiServerConfig {
    /// `gitVersion` reported by `/version`, e.g. `v1.32.4`; `major` and `minor` are derived from it.
    /// The kubectl dispatcher on the development machines picks its kubectl by this minor version.
    pub version: String,
    /// Whether requests without credentials are served as `system:anonymous` (the apiserver's
    /// `--anonymous-auth`, on by default). When false they get `401 Unauthorized`.
    pub anonymous_auth: bool,
    /// Bearer tokens and the identities they authenticate as (the apiserver's `--token-auth-file`).
    pub tokens: Vec<TokenConfig>,
    /// Client certificates to issue when serving TLS; the certificate's CN is the user and its O
    /// attributes are the groups, as the apiserver's x509 authenticator reads them.
    pub client_certs: Vec<ClientCertConfig>,
    /// Namespaces that exist at start. Namespaces named by `pods` and `generatedPods` are added.
    pub namespaces: Vec<String>,
    /// Pods that exist at start.
    pub pods: Vec<PodConfig>,
    /// Families of identical pods, for large lists.
    pub generated_pods: Vec<GeneratedPodsConfig>,
    /// Where `pods/portforward` connects for a container port, for every pod: container port
    /// (`"8080"`) to a host TCP address (`"127.0.0.1:18080"`). A pod's own
    /// [`PodConfig::port_forward`] entry for the same port wins. A port mapped nowhere is
    /// refused as a container runtime refuses a port nothing listens on.
    pub port_forward: BTreeMap<String, String>,
}

/// A bearer token and the identity it authenticates as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenConfig {
    /// The token as sent in `Authorization: Bearer <token>`.
    pub token: String,
    /// User name.
    pub user: String,
    /// User UID, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Groups; `system:authenticated` is added as the apiserver does.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether this identity may impersonate users, groups, UIDs and extras (what an RBAC
    /// `impersonate` rule would grant).
    #[serde(default)]
    pub impersonate: bool,
}

/// A client certificate to issue (and trust) when serving TLS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientCertConfig {
    /// File stem: the certificate and key are written as `NAME.crt` and `NAME.key`.
    pub name: String,
    /// The certificate's common name, which is the user name.
    pub user: String,
    /// The certificate's organisations, which are the groups (at most two, a limit of the
    /// certificate generator).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether a caller presenting this certificate may impersonate.
    #[serde(default)]
    pub impersonate: bool,
}

/// A pod that exists at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodConfig {
    /// Namespace, `default` when omitted.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Container names, `[main]` when omitted.
    #[serde(default = "default_containers")]
    pub containers: Vec<String>,
    /// `status.phase`: Pending, Running, Succeeded or Failed (Running when omitted).
    #[serde(default = "default_phase")]
    pub phase: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Container image, the same for every container.
    #[serde(default = "default_image")]
    pub image: String,
    /// The main process of the pod's first container, which `kubectl attach` connects to: a
    /// program and its arguments, run on the host (written to the container's `command`). Empty:
    /// the container has no main process and attach is refused. The process is started by the
    /// first attach and keeps running across attaches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_command: Vec<String>,
    /// Whether the main process runs on a pseudo-terminal (the container's `tty`).
    #[serde(default)]
    pub tty: bool,
    /// Whether the main process reads standard input from attached sessions (the container's
    /// `stdin`). True when omitted, as `kubectl run -i` sets it.
    #[serde(default = "default_true")]
    pub stdin: bool,
    /// Where `pods/portforward` connects for this pod's container ports: container port
    /// (`"8080"`) to a host TCP address (`"127.0.0.1:18080"`); see
    /// [`ApiServerConfig::port_forward`]. Only read for the pods configured at start (not for
    /// pods added later).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_forward: BTreeMap<String, String>,
}

/// `count` pods named `PREFIX0`, `PREFIX1`, ... in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratedPodsConfig {
    /// Namespace of every generated pod.
    pub namespace: String,
    /// Name prefix; the index follows it.
    pub prefix: String,
    /// How many pods.
    pub count: usize,
    /// Labels of every generated pod.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_namespace() -> String {
    "default".to_owned()
}

fn default_containers() -> Vec<String> {
    vec!["main".to_owned()]
}

fn default_phase() -> String {
    "Running".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_image() -> String {
    "busybox:stable".to_owned()
}

impl PodConfig {
    /// A running pod with one container named `main` and no labels.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodConfig {
            namespace: namespace.into(),
            name: name.into(),
            containers: default_containers(),
            phase: default_phase(),
            labels: BTreeMap::new(),
            image: default_image(),
            attach_command: Vec::new(),
            tty: false,
            stdin: true,
            port_forward: BTreeMap::new(),
        }
    }

    /// The same pod with a main process for `kubectl attach` (see [`PodConfig::attach_command`]).
    pub fn with_attach_command<S: Into<String>>(
        mut self,
        command: impl IntoIterator<Item = S>,
        tty: bool,
    ) -> Self {
        self.attach_command = command.into_iter().map(Into::into).collect();
        self.tty = tty;
        self
    }

    /// The same pod with container port `port` forwarded to the host address `target` (see
    /// [`PodConfig::port_forward`]).
    pub fn with_port_forward(mut self, port: u16, target: std::net::SocketAddr) -> Self {
        self.port_forward
            .insert(port.to_string(), target.to_string());
        self
    }
}

impl Default for ApiServerConfig {
    /// A demo cluster: v1.32.4, a proxy token that may impersonate, a user token, and one running
    /// pod `default/demo`.
    fn default() -> Self {
        let mut demo = PodConfig::new("default", "demo");
        demo.labels.insert("app".to_owned(), "demo".to_owned());
        ApiServerConfig {
            version: "v1.32.4".to_owned(),
            anonymous_auth: true,
            tokens: vec![
                TokenConfig {
                    token: "proxy-token".to_owned(),
                    user: "system:serviceaccount:tailscale:kube-auth-proxy".to_owned(),
                    uid: None,
                    groups: vec!["system:serviceaccounts".to_owned()],
                    impersonate: true,
                },
                TokenConfig {
                    token: "alice-token".to_owned(),
                    user: "alice".to_owned(),
                    uid: None,
                    groups: vec!["devs".to_owned()],
                    impersonate: false,
                },
            ],
            client_certs: Vec::new(),
            namespaces: vec!["default".to_owned()],
            pods: vec![demo],
            generated_pods: Vec::new(),
            port_forward: BTreeMap::new(),
        }
    }
}

/// A configuration value that cannot be used, naming the field and the bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the value is, e.g. `tokens[1].token`.
    pub field: String,
    /// The offending value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config `{}` = {:?}: {}",
            self.field, self.value, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

fn invalid(
    field: impl Into<String>,
    value: impl Into<String>,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError {
        field: field.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// `major` and `minor` of a `vMAJOR.MINOR.PATCH[-suffix]` git version.
pub(crate) fn parse_version(version: &str) -> Option<(u32, u32)> {
    let rest = version.strip_prefix('v')?;
    let mut parts = rest.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?;
    let patch_digits = patch.split(['-', '+']).next()?;
    if patch_digits.is_empty() || !patch_digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((major, minor))
}

/// A container port as the kubelet reads the `port` header (`strconv.ParseUint(s, 10, 16)`, then
/// `> 0`): decimal digits only, 1 to 65535.
pub(crate) fn parse_container_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&port| port > 0)
}

/// Checks a `portForward` map: container ports to `IP:PORT` host addresses.
fn check_port_forward(field: &str, map: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (port, target) in map {
        if parse_container_port(port).is_none() {
            return Err(invalid(
                format!("{field}.{port}"),
                port,
                "the key must be a container port, 1 to 65535",
            ));
        }
        if target.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                format!("{field}.{port}"),
                target,
                "expected a host TCP address IP:PORT, e.g. 127.0.0.1:18080",
            ));
        }
    }
    Ok(())
}

const PHASES: [&str; 4] = ["Pending", "Running", "Succeeded", "Failed"];

impl ApiServerConfig {
    /// Reads and validates a YAML configuration file.
    pub fn from_yaml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config file {}: {e}", path.display()))?;
        Self::from_yaml_str(&text)
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }

    /// Parses and validates YAML configuration text. Omitted fields take the [`Default`] values.
    pub fn from_yaml_str(text: &str) -> anyhow::Result<Self> {
        let config: ApiServerConfig = serde_yaml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value the server relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if parse_version(&self.version).is_none() {
            return Err(invalid(
                "version",
                &self.version,
                "expected vMAJOR.MINOR.PATCH, e.g. v1.32.4",
            ));
        }
        let mut tokens = BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if t.token.is_empty() || t.token.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(invalid(
                    format!("tokens[{i}].token"),
                    &t.token,
                    "must be non-empty without spaces",
                ));
            }
            if !tokens.insert(t.token.as_str()) {
                return Err(invalid(
                    format!("tokens[{i}].token"),
                    &t.token,
                    "duplicate token",
                ));
            }
            if t.user.is_empty() {
                return Err(invalid(
                    format!("tokens[{i}].user"),
                    &t.user,
                    "must be non-empty",
                ));
            }
        }
        let mut cert_names = BTreeSet::new();
        for (i, c) in self.client_certs.iter().enumerate() {
            let safe = !c.name.is_empty()
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !safe {
                return Err(invalid(
                    format!("clientCerts[{i}].name"),
                    &c.name,
                    "must be letters, digits, - or _",
                ));
            }
            if !cert_names.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("clientCerts[{i}].name"),
                    &c.name,
                    "duplicate name",
                ));
            }
            if c.user.is_empty() {
                return Err(invalid(
                    format!("clientCerts[{i}].user"),
                    &c.user,
                    "must be non-empty",
                ));
            }
            // rcgen 0.13 keeps one value per attribute type; two spellings of O give two groups.
            if c.groups.len() > 2 {
                return Err(invalid(
                    format!("clientCerts[{i}].groups"),
                    c.groups.join(","),
                    "at most two groups can be put in a generated certificate",
                ));
            }
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            if !is_dns1123_label(ns) {
                return Err(invalid(
                    format!("namespaces[{i}]"),
                    ns,
                    "not a DNS-1123 label",
                ));
            }
        }
        let mut pods = BTreeSet::new();
        for (i, p) in self.pods.iter().enumerate() {
            if !is_dns1123_label(&p.namespace) {
                return Err(invalid(
                    format!("pods[{i}].namespace"),
                    &p.namespace,
                    "not a DNS-1123 label",
                ));
            }
            if !is_dns1123_subdomain(&p.name) {
                return Err(invalid(
                    format!("pods[{i}].name"),
                    &p.name,
                    "not a DNS-1123 subdomain",
                ));
            }
            if !pods.insert((p.namespace.as_str(), p.name.as_str())) {
                return Err(invalid(format!("pods[{i}].name"), &p.name, "duplicate pod"));
            }
            if p.containers.is_empty() || p.containers.iter().any(|c| !is_dns1123_label(c)) {
                return Err(invalid(
                    format!("pods[{i}].containers"),
                    p.containers.join(","),
                    "need at least one container, each a DNS-1123 label",
                ));
            }
            if p.attach_command.first().is_some_and(String::is_empty) {
                return Err(invalid(
                    format!("pods[{i}].attachCommand"),
                    p.attach_command.join(" "),
                    "the program (first element) must be non-empty",
                ));
            }
            check_port_forward(&format!("pods[{i}].portForward"), &p.port_forward)?;
            if !PHASES.contains(&p.phase.as_str()) {
                return Err(invalid(
                    format!("pods[{i}].phase"),
                    &p.phase,
                    "expected Pending, Running, Succeeded or Failed",
                ));
            }
        }
        check_port_forward("portForward", &self.port_forward)?;
        for (i, g) in self.generated_pods.iter().enumerate() {
            if !is_dns1123_label(&g.namespace) {
                return Err(invalid(
                    format!("generatedPods[{i}].namespace"),
                    &g.namespace,
                    "not a DNS-1123 label",
                ));
            }
            if !is_dns1123_subdomain(&format!("{}0", g.prefix)) {
                return Err(invalid(
                    format!("generatedPods[{i}].prefix"),
                    &g.prefix,
                    "PREFIX0 is not a DNS-1123 subdomain",
                ));
            }
        }
        Ok(())
    }

    /// The configured pods followed by the generated ones.
    pub(crate) fn initial_pods(&self) -> impl Iterator<Item = PodConfig> + '_ {
        let generated = self.generated_pods.iter().flat_map(|g| {
            (0..g.count).map(move |i| PodConfig {
                labels: g.labels.clone(),
                ..PodConfig::new(g.namespace.clone(), format!("{}{i}", g.prefix))
            })
        });
        self.pods.iter().cloned().chain(generated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(ApiServerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn yaml_fills_defaults() {
        let c =
            ApiServerConfig::from_yaml_str("version: v1.30.2\npods: [{name: x}]\n").expect("valid");
        assert_eq!(c.version, "v1.30.2");
        assert_eq!(c.pods[0].namespace, "default");
        assert_eq!(c.pods[0].containers, ["main"]);
        assert!(c.anonymous_auth);
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut c = ApiServerConfig {
            version: "1.32".into(),
            ..Default::default()
        };
        assert_eq!(c.validate().map_err(|e| e.field), Err("version".to_owned()));
        c.version = "v1.32.0-gke.1".into();
        assert_eq!(c.validate(), Ok(()));
        c.pods[0].phase = "Sleeping".into();
        assert_eq!(
            c.validate().map_err(|e| e.field),
            Err("pods[0].phase".to_owned())
        );
    }

    #[test]
    fn attach_command() {
        let c = ApiServerConfig::from_yaml_str(
            "pods: [{name: sh, attachCommand: [sh, -c, 'echo hi'], tty: true}, {name: plain}]\n",
        )
        .expect("valid");
        assert_eq!(c.pods[0].attach_command, ["sh", "-c", "echo hi"]);
        assert!(c.pods[0].tty && c.pods[0].stdin);
        assert!(c.pods[1].attach_command.is_empty() && !c.pods[1].tty);
        let err = ApiServerConfig::from_yaml_str("pods: [{name: x, attachCommand: ['']}]\n")
            .expect_err("empty program");
        assert!(err.to_string().contains("pods[0].attachCommand"), "{err}");
    }

    #[test]
    fn port_forward() {
        let c = ApiServerConfig::from_yaml_str(
            "portForward: {\"9090\": \"127.0.0.1:19090\"}\n\
             pods: [{name: web, portForward: {\"8080\": \"[::1]:18080\"}}]\n",
        )
        .expect("valid");
        assert_eq!(c.port_forward["9090"], "127.0.0.1:19090");
        assert_eq!(c.pods[0].port_forward["8080"], "[::1]:18080");
        for (yaml, field) in [
            ("portForward: {\"0\": \"127.0.0.1:1\"}", "portForward.0"),
            ("portForward: {\"+80\": \"127.0.0.1:1\"}", "portForward.+80"),
            (
                "pods: [{name: x, portForward: {\"80\": \"localhost\"}}]",
                "pods[0].portForward.80",
            ),
        ] {
            let err = ApiServerConfig::from_yaml_str(yaml).expect_err(yaml);
            assert!(err.to_string().contains(field), "{err}");
        }
        assert_eq!(parse_container_port("08080"), Some(8080));
        assert_eq!(parse_container_port("65536"), None);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("v1.32.4"), Some((1, 32)));
        assert_eq!(parse_version("v1.27.0+k3s1"), Some((1, 27)));
        assert_eq!(parse_version("v1.27"), None);
    }
}
