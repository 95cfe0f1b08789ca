//! Command-line flags and their environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// kube-auth-proxy: an authenticating, session-recording proxy for the Kubernetes API.
///
/// Every caller is identified through tailscaled's LocalAPI and its requests are forwarded to the
/// upstream API server with Kubernetes impersonation headers for that caller.
#[derive(Debug, Parser)]
#[command(name = "kube-auth-proxy", version, about, long_about = None)]
pub struct Cli {
    /// Address to serve the Kubernetes API on (TLS).
    #[arg(long, env = "KUBE_AUTH_PROXY_LISTEN", default_value = "0.0.0.0:443")]
    pub(crate) listen: SocketAddr,

    /// PEM certificate chain to serve (with --tls-key); reloaded when the file changes.
    #[arg(long, env = "KUBE_AUTH_PROXY_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,

    /// PEM private key to serve (with --tls-cert); reloaded when the file changes.
    #[arg(long, env = "KUBE_AUTH_PROXY_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,

    /// Serve the certificate tailscaled issues for this node's name (needs HTTPS enabled in the tailnet).
    #[arg(long, env = "KUBE_AUTH_PROXY_TLS_FROM_TAILSCALE")]
    pub(crate) tls_from_tailscale: bool,

    /// Serve a freshly generated self-signed certificate (development only).
    #[arg(long, env = "KUBE_AUTH_PROXY_TLS_SELF_SIGNED")]
    pub(crate) tls_self_signed: bool,

    /// Kubeconfig for the upstream API server [default: in-cluster service account when
    /// KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG or ~/.kube/config].
    #[arg(long, env = "KUBE_AUTH_PROXY_UPSTREAM_KUBECONFIG")]
    pub(crate) upstream_kubeconfig: Option<PathBuf>,

    /// Context of the upstream kubeconfig to use [default: its current-context].
    #[arg(long, env = "KUBE_AUTH_PROXY_UPSTREAM_CONTEXT")]
    pub(crate) upstream_context: Option<String>,

    /// auth: impersonate each caller with the proxy's credentials; noauth: pass the caller's own
    /// credentials through. [default: auth, or what APISERVER_PROXY / AUTH_PROXY say]
    #[arg(long, env = "KUBE_AUTH_PROXY_MODE", value_enum)]
    pub(crate) mode: Option<ModeArg>,

    /// tailscaled's LocalAPI socket, the identity source.
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_LOCALAPI_SOCKET",
        default_value = localapi::DEFAULT_SOCKET
    )]
    pub(crate) localapi_socket: PathBuf,

    /// Where callers' identities come from, asked in this order (repeated or comma-separated):
    /// tailscale (tailscaled's whois for the caller's address; grants from the tailnet's
    /// capability), client-cert (a TLS client certificate verified against --client-ca; user =
    /// CN, groups = O values; grants from --policy) and oidc (an `Authorization: Bearer` JWT from
    /// --oidc-issuer-url; grants from --policy). A source that does not know the caller (no
    /// certificate, no bearer token) passes it to the next; a caller no source knows gets 401.
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_IDENTITY",
        value_enum,
        value_delimiter = ',',
        default_value = "tailscale"
    )]
    pub(crate) identity: Vec<IdentityArg>,

    /// With --identity client-cert: the PEM CA certificates client certificates must chain to;
    /// reloaded when the file changes. A certificate that fails verification gets a TLS alert.
    #[arg(long, env = "KUBE_AUTH_PROXY_CLIENT_CA", value_name = "FILE")]
    pub(crate) client_ca: Option<PathBuf>,

    /// With --identity oidc: the OIDC issuer; tokens' `iss` must equal it exactly. Its keys are
    /// fetched from <URL>/.well-known/openid-configuration (https, or http to a loopback address)
    /// unless --oidc-jwks-file is given.
    #[arg(long, env = "KUBE_AUTH_PROXY_OIDC_ISSUER_URL", value_name = "URL")]
    pub(crate) oidc_issuer_url: Option<String>,

    /// With --identity oidc: the client id tokens must be issued for (in their `aud`).
    #[arg(long, env = "KUBE_AUTH_PROXY_OIDC_CLIENT_ID", value_name = "ID")]
    pub(crate) oidc_client_id: Option<String>,

    /// With --identity oidc: the issuer's signing keys as a JWK set file, instead of fetching
    /// them (air-gapped clusters); reloaded when the file changes.
    #[arg(long, env = "KUBE_AUTH_PROXY_OIDC_JWKS_FILE", value_name = "FILE")]
    pub(crate) oidc_jwks_file: Option<PathBuf>,

    /// With --identity oidc: PEM CA certificates to verify the issuer's HTTPS certificate with
    /// [default: the system's CA bundle].
    #[arg(long, env = "KUBE_AUTH_PROXY_OIDC_CA_FILE", value_name = "FILE")]
    pub(crate) oidc_ca_file: Option<PathBuf>,

    /// With --identity oidc: the claim naming the user.
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_OIDC_USERNAME_CLAIM",
        value_name = "CLAIM",
        default_value = "sub"
    )]
    pub(crate) oidc_username_claim: String,

    /// With --identity oidc: prepended to user names [default: "<issuer URL>#", or none for the
    /// email claim]; "-" for no prefix.
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_OIDC_USERNAME_PREFIX",
        value_name = "PREFIX"
    )]
    pub(crate) oidc_username_prefix: Option<String>,

    /// With --identity oidc: the claim listing the user's groups (a string or a list of
    /// strings) [default: no groups].
    #[arg(long, env = "KUBE_AUTH_PROXY_OIDC_GROUPS_CLAIM", value_name = "CLAIM")]
    pub(crate) oidc_groups_claim: Option<String>,

    /// With --identity oidc: prepended to each group.
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_OIDC_GROUPS_PREFIX",
        value_name = "PREFIX"
    )]
    pub(crate) oidc_groups_prefix: Option<String>,

    /// The grants of callers not identified by Tailscale (YAML or JSON: rules matched by user or
    /// group, each with a grant of capability rule fields); reloaded when the file changes, a
    /// broken file keeping the last good one. See docs/configuration.md, "Policy file".
    #[arg(long, env = "KUBE_AUTH_PROXY_POLICY", value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,

    /// Let a caller no --policy rule matches through as itself (its own user and groups, no
    /// recording) instead of refusing it with 403.
    #[arg(long, env = "KUBE_AUTH_PROXY_POLICY_DEFAULT_ALLOW")]
    pub(crate) policy_default_allow: bool,

    /// Address for /metrics, /healthz and /readyz (plain HTTP).
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_METRICS_LISTEN",
        default_value = "127.0.0.1:9002"
    )]
    pub(crate) metrics_listen: SocketAddr,

    /// Log format.
    #[arg(long, env = "KUBE_AUTH_PROXY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Colour in text logs: auto (only when stderr is a terminal), always or never.
    #[arg(long, env = "KUBE_AUTH_PROXY_LOG_COLOR", value_enum, default_value_t = LogColor::Auto)]
    pub(crate) log_color: LogColor,

    /// Most client connections served at once; further connections wait to be accepted.
    #[arg(long, env = "KUBE_AUTH_PROXY_MAX_CONNECTIONS", default_value_t = 4096)]
    pub(crate) max_connections: usize,

    /// Most connections served at once from one client address, so that one caller cannot take
    /// every slot of --max-connections; its further connections are closed at once.
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_MAX_CONNECTIONS_PER_CALLER",
        default_value_t = 1024
    )]
    pub(crate) max_connections_per_caller: usize,

    /// Most upstream connections client connections hold of their own at once (with
    /// `--upstream-connections per-client`); client connections beyond it forward through the
    /// shared pool.
    #[arg(long, env = "KUBE_AUTH_PROXY_MAX_UPSTREAM_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_upstream_connections: u32,

    /// Threads serving client connections, each with a single-threaded async runtime of its own;
    /// a connection stays on one. Default: one per CPU the process may use.
    #[arg(long, env = "KUBE_AUTH_PROXY_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,

    /// Most exec/attach sessions one caller (a user, or a tagged node) may have open at once; a
    /// further one is refused with 429 and a message kubectl prints. 0: no limit.
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_MAX_SESSIONS_PER_CALLER",
        default_value_t = 0
    )]
    pub(crate) max_sessions_per_caller: usize,

    /// How long an identity answer from tailscaled is used before it is asked again. Every
    /// request and every upgrade runs on an answer at most this old, so a changed or revoked grant
    /// applies within it, also on kept-alive and long-running connections.
    #[arg(long, env = "KUBE_AUTH_PROXY_IDENTITY_TTL", value_parser = parse_duration, default_value = "5s")]
    pub(crate) identity_ttl: Duration,

    /// How ordinary requests reach the API server: `per-client` (each client connection gets a
    /// kept-alive upstream connection of its own, driven in the client connection's task: the
    /// fastest path, with as many upstream connections as client connections forwarding) or
    /// `pooled` (a shared pool, fewer upstream connections). Upgrades always use the pool.
    #[arg(long, env = "KUBE_AUTH_PROXY_UPSTREAM_CONNECTIONS", value_enum, default_value_t = UpstreamConnections::PerClient)]
    pub(crate) upstream_connections: UpstreamConnections,

    /// Time the upstream API server has to answer an exec/attach upgrade request.
    #[arg(long, env = "KUBE_AUTH_PROXY_UPSTREAM_HANDSHAKE_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub(crate) upstream_handshake_timeout: Duration,

    /// Time a client has to complete the TLS handshake and send a request head.
    #[arg(long, env = "KUBE_AUTH_PROXY_HEADER_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub(crate) header_timeout: Duration,

    /// Request bodies longer than this many bytes are cut in API request events (and marked
    /// `bodyTruncated`); the request itself is always forwarded whole.
    #[arg(long, env = "KUBE_AUTH_PROXY_EVENT_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub(crate) event_body_limit: usize,

    /// After each stored API request event of the default route, also record a response event
    /// (same `id`; status code, duration, bytes) once the response has ended. Off by default: Tailscale's own recorder
    /// knows only request events.
    #[arg(long, env = "KUBE_AUTH_PROXY_API_RESPONSE_EVENTS")]
    pub(crate) api_response_events: bool,

    /// A line shown on the terminal of every recorded exec/attach session with a tty, before
    /// anything the command writes, and recorded with it: so that people know they are recorded.
    #[arg(long, env = "KUBE_AUTH_PROXY_RECORDING_NOTICE", value_name = "TEXT")]
    pub(crate) recording_notice: Option<String>,

    /// End an exec/attach session after this long without input, output or a terminal resize
    /// (keep-alives do not count), with a message kubectl prints and a note in the recording.
    /// Off by default.
    #[arg(long, env = "KUBE_AUTH_PROXY_SESSION_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub(crate) session_idle_timeout: Option<Duration>,

    /// End an exec/attach session this long after it started, however busy, with a message
    /// kubectl prints and a note in the recording. Off by default.
    #[arg(long, env = "KUBE_AUTH_PROXY_SESSION_MAX_DURATION", value_parser = parse_duration)]
    pub(crate) session_max_duration: Option<Duration>,

    /// Expect a PROXY protocol header (v1 or v2) before TLS on every connection, as an L4
    /// forwarder writes it (tailscaled `serve` in TCP mode, a load balancer), and take the
    /// caller's address from it. Only connections from --proxy-protocol-from are accepted; any
    /// other connection, or one without a valid header within --header-timeout, is closed.
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_PROXY_PROTOCOL",
        requires = "proxy_protocol_from"
    )]
    pub(crate) proxy_protocol: bool,

    /// With --proxy-protocol: the forwarders' addresses (CIDRs, or single addresses), repeated or
    /// comma-separated. A connection from anywhere else is closed, since its header could claim
    /// any caller's address.
    #[arg(
        long,
        env = "KUBE_AUTH_PROXY_PROXY_PROTOCOL_FROM",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_cidr,
        requires = "proxy_protocol"
    )]
    pub(crate) proxy_protocol_from: Vec<ipnet::IpNet>,

    /// Time in-flight requests and open exec/attach sessions get to finish after SIGTERM; then
    /// requests are cut, and sessions are ended with a message kubectl prints and their
    /// recordings finished before the proxy exits.
    #[arg(long, env = "KUBE_AUTH_PROXY_SHUTDOWN_GRACE", value_parser = parse_duration, default_value = "30s")]
    pub(crate) shutdown_grace: Duration,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Impersonate callers.
    Auth,
    /// Pass callers' own credentials through.
    Noauth,
}

/// `--identity` values: the identity sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdentityArg {
    /// tailscaled's whois for the caller's address; grants from the tailnet's capability.
    Tailscale,
    /// A TLS client certificate verified against --client-ca; grants from --policy.
    ClientCert,
    /// An OIDC ID token (`Authorization: Bearer`) from --oidc-issuer-url; grants from --policy.
    Oidc,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--log-color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogColor {
    /// Colour only when stderr is a terminal (never in a file or a pipe).
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl LogColor {
    /// Whether to write ANSI colour codes to stderr.
    pub(crate) fn enabled(self) -> bool {
        use std::io::IsTerminal as _;
        match self {
            LogColor::Auto => std::io::stderr().is_terminal(),
            LogColor::Always => true,
            LogColor::Never => false,
        }
    }
}

impl Cli {
    /// The forwarders a PROXY protocol header is accepted from, when --proxy-protocol is on.
    pub(crate) fn proxy_protocol_sources(&self) -> anyhow::Result<Option<Vec<ipnet::IpNet>>> {
        match (self.proxy_protocol, self.proxy_protocol_from.is_empty()) {
            (false, true) => Ok(None),
            (true, false) => Ok(Some(self.proxy_protocol_from.clone())),
            (true, true) => anyhow::bail!(
                "--proxy-protocol needs --proxy-protocol-from: the forwarders whose headers are believed"
            ),
            (false, false) => anyhow::bail!(
                "--proxy-protocol-from is given without --proxy-protocol"
            ),
        }
    }
}

impl Cli {
    /// The identity sources in the order to ask them, checked against the flags they need: a
    /// source named twice, client-cert without --client-ca (or with neither --policy nor
    /// --policy-default-allow, which would refuse every such caller), and the client-cert flags
    /// without client-cert are start-up errors.
    pub(crate) fn identity_sources(&self) -> anyhow::Result<Vec<IdentityArg>> {
        let mut sources = Vec::new();
        for source in &self.identity {
            if sources.contains(source) {
                anyhow::bail!("--identity names {source:?} twice");
            }
            sources.push(*source);
        }
        if sources.is_empty() {
            anyhow::bail!("--identity names no identity source");
        }
        let certificates = sources.contains(&IdentityArg::ClientCert);
        match (certificates, self.client_ca.is_some()) {
            (true, false) => anyhow::bail!(
                "--identity client-cert needs --client-ca: the CA client certificates must chain to"
            ),
            (false, true) => {
                anyhow::bail!("--client-ca is given but --identity does not name client-cert")
            }
            _ => {}
        }
        let oidc = sources.contains(&IdentityArg::Oidc);
        self.check_oidc_flags(oidc)?;
        if !certificates && !oidc && (self.policy.is_some() || self.policy_default_allow) {
            anyhow::bail!(
                "--policy and --policy-default-allow grant callers of --identity client-cert or oidc, neither of which is named"
            );
        }
        if self.policy.is_none() && !self.policy_default_allow {
            if certificates {
                anyhow::bail!(
                    "--identity client-cert needs --policy (the grants of certificate callers) or --policy-default-allow"
                );
            }
            if oidc {
                anyhow::bail!(
                    "--identity oidc needs --policy (the grants of OIDC callers) or --policy-default-allow"
                );
            }
        }
        Ok(sources)
    }

    /// The OIDC flags: the issuer URL and client id with `oidc`, none of them without it.
    fn check_oidc_flags(&self, oidc: bool) -> anyhow::Result<()> {
        if !oidc {
            let given = [
                ("--oidc-issuer-url", self.oidc_issuer_url.is_some()),
                ("--oidc-client-id", self.oidc_client_id.is_some()),
                ("--oidc-jwks-file", self.oidc_jwks_file.is_some()),
                ("--oidc-ca-file", self.oidc_ca_file.is_some()),
                (
                    "--oidc-username-prefix",
                    self.oidc_username_prefix.is_some(),
                ),
                ("--oidc-groups-claim", self.oidc_groups_claim.is_some()),
                ("--oidc-groups-prefix", self.oidc_groups_prefix.is_some()),
                ("--oidc-username-claim", self.oidc_username_claim != "sub"),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
                anyhow::bail!("{flag} is given but --identity does not name oidc");
            }
            return Ok(());
        }
        let Some(issuer) = &self.oidc_issuer_url else {
            anyhow::bail!(
                "--identity oidc needs --oidc-issuer-url: the issuer tokens must come from"
            );
        };
        let parsed = url::Url::parse(issuer)
            .map_err(|e| anyhow::anyhow!("--oidc-issuer-url {issuer:?}: {e}"))?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            anyhow::bail!("--oidc-issuer-url {issuer:?}: an issuer URL has no query or fragment");
        }
        if !crate::identity::fetchable(&parsed) {
            anyhow::bail!(
                "--oidc-issuer-url {issuer:?}: must be https (plain http only to a loopback address)"
            );
        }
        if self
            .oidc_client_id
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            anyhow::bail!(
                "--identity oidc needs --oidc-client-id: the audience tokens must be for"
            );
        }
        if self.oidc_username_claim.is_empty() {
            anyhow::bail!("--oidc-username-claim is empty");
        }
        if self.oidc_jwks_file.is_some() && self.oidc_ca_file.is_some() {
            anyhow::bail!(
                "--oidc-ca-file is for fetching the issuer's keys, which --oidc-jwks-file replaces"
            );
        }
        Ok(())
    }
}

/// A CIDR (`10.0.0.0/8`, `fd7a:115c:a1e0::/48`) or a single address (a /32 or /128).
pub(crate) fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    text.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("invalid CIDR {text:?}: expected e.g. 10.0.0.0/8 or 127.0.0.1"))
}

/// Parses `90s`, `5m`, `1h`, `250ms` or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 30s, 5m, 250ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(value.saturating_mul(3600))),
        _ => Err(format!(
            "invalid duration {text:?}: unknown unit {unit:?} (use ms, s, m or h)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn proxy_protocol_flags() {
        let base = [
            "kube-auth-proxy",
            "--tls-self-signed",
            "--upstream-kubeconfig",
            "x",
        ];
        let parse = |extra: &[&str]| Cli::try_parse_from(base.iter().chain(extra));
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.proxy_protocol_sources().unwrap(), None);
        let cli = parse(&[
            "--proxy-protocol",
            "--proxy-protocol-from",
            "10.0.0.0/8,127.0.0.1",
            "--proxy-protocol-from",
            "fd7a:115c:a1e0::/48",
        ])
        .unwrap();
        let sources: Vec<String> = cli
            .proxy_protocol_sources()
            .unwrap()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            sources,
            ["10.0.0.0/8", "127.0.0.1/32", "fd7a:115c:a1e0::/48"]
        );
        // Either flag alone is a start-up error.
        let error = parse(&["--proxy-protocol"]).unwrap_err().to_string();
        assert!(error.contains("--proxy-protocol-from"), "{error}");
        assert!(parse(&["--proxy-protocol-from", "10.0.0.0/8"]).is_err());
        let error = parse(&["--proxy-protocol", "--proxy-protocol-from", "10.0.0.0/33"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid CIDR"), "{error}");
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn identity_flags() {
        let base = [
            "kube-auth-proxy",
            "--tls-self-signed",
            "--upstream-kubeconfig",
            "x",
        ];
        let parse = |extra: &[&str]| Cli::try_parse_from(base.iter().chain(extra)).unwrap();
        assert_eq!(
            parse(&[]).identity_sources().unwrap(),
            [IdentityArg::Tailscale]
        );
        let cli = parse(&[
            "--identity",
            "client-cert,tailscale",
            "--client-ca",
            "ca.crt",
            "--policy",
            "policy.yaml",
        ]);
        assert_eq!(
            cli.identity_sources().unwrap(),
            [IdentityArg::ClientCert, IdentityArg::Tailscale]
        );
        let cli = parse(&[
            "--identity=client-cert",
            "--client-ca=ca.crt",
            "--policy-default-allow",
        ]);
        assert_eq!(cli.identity_sources().unwrap(), [IdentityArg::ClientCert]);
        for (args, expected) in [
            (&["--identity", "client-cert"][..], "needs --client-ca"),
            (
                &["--identity", "client-cert", "--client-ca", "c"][..],
                "needs --policy",
            ),
            (&["--client-ca", "c"][..], "does not name client-cert"),
            (&["--policy", "p"][..], "neither of which is named"),
            (&["--identity", "tailscale,tailscale"][..], "twice"),
        ] {
            let error = parse(args).identity_sources().unwrap_err().to_string();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
        assert!(Cli::try_parse_from(base.iter().chain(&["--identity", "ldap"])).is_err());
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn oidc_flags() {
        let base = [
            "kube-auth-proxy",
            "--tls-self-signed",
            "--upstream-kubeconfig",
            "x",
        ];
        let parse = |extra: &[&str]| Cli::try_parse_from(base.iter().chain(extra)).unwrap();
        let oidc = [
            "--identity",
            "oidc,tailscale",
            "--oidc-issuer-url",
            "https://issuer.example",
            "--oidc-client-id",
            "kube",
        ];
        let with = |extra: &[&str]| parse(&[&oidc[..], extra].concat());
        let cli = with(&["--policy", "p.yaml", "--oidc-groups-claim", "groups"]);
        assert_eq!(
            cli.identity_sources().unwrap(),
            [IdentityArg::Oidc, IdentityArg::Tailscale]
        );
        assert_eq!(cli.oidc_username_claim, "sub");
        assert!(
            with(&["--policy-default-allow", "--oidc-jwks-file", "k.json"])
                .identity_sources()
                .is_ok()
        );
        // Loopback http is accepted, for test issuers.
        let cli = parse(&[
            "--identity=oidc",
            "--oidc-issuer-url=http://127.0.0.1:5556/dex",
            "--oidc-client-id=kube",
            "--policy=p",
        ]);
        assert!(cli.identity_sources().is_ok());
        for (args, expected) in [
            (&oidc[..], "needs --policy"),
            (
                &["--identity", "oidc", "--policy", "p"][..],
                "needs --oidc-issuer-url",
            ),
            (
                &[
                    "--identity",
                    "oidc",
                    "--policy",
                    "p",
                    "--oidc-issuer-url",
                    "https://i",
                ][..],
                "needs --oidc-client-id",
            ),
            (
                &[
                    "--identity",
                    "oidc",
                    "--policy",
                    "p",
                    "--oidc-client-id",
                    "k",
                    "--oidc-issuer-url",
                    "http://issuer.example",
                ][..],
                "must be https",
            ),
            (
                &[
                    "--identity",
                    "oidc",
                    "--policy",
                    "p",
                    "--oidc-client-id",
                    "k",
                    "--oidc-issuer-url",
                    "https://i/?a=b",
                ][..],
                "no query",
            ),
            (
                &["--oidc-issuer-url", "https://i"][..],
                "does not name oidc",
            ),
            (&["--oidc-groups-claim", "groups"][..], "does not name oidc"),
            (
                &["--oidc-username-claim", "email"][..],
                "does not name oidc",
            ),
        ] {
            let error = parse(args).identity_sources().unwrap_err().to_string();
            assert!(error.contains(expected), "{args:?}: {error}");
        }
        let error = with(&[
            "--policy",
            "p",
            "--oidc-jwks-file",
            "k",
            "--oidc-ca-file",
            "c",
        ])
        .identity_sources()
        .unwrap_err()
        .to_string();
        assert!(error.contains("--oidc-jwks-file replaces"), "{error}");
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// `--upstream-connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum UpstreamConnections {
    /// One upstream connection per client connection, in its task.
    PerClient,
    /// A pool shared by every client connection.
    Pooled,
}
