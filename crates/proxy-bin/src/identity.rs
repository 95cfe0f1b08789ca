//! Who is calling: the identity sources asked in `--identity` order, their answer read into the
//! caller's grants. Answers are asked for per request (tailscaled's through `identity_cache`),
//! so a changed grant applies within its TTL even on a connection that stays open.
//!
//! - `tailscale`: tailscaled's whois for the caller's address; grants from the capability
//!   `tailscale.com/cap/kubernetes`, exactly as always.
//! - `client-cert`: the TLS client certificate the connection's handshake verified against
//!   `--client-ca`, re-verified per request (`client_cert`); user = CN, groups = O values;
//!   grants from the policy file (`policy_store`).
//! - `oidc`: an `Authorization: Bearer` JWT verified against the OIDC issuer's keys (`oidc`,
//!   `jwt`, `jwks`); user and groups from its claims as kube-apiserver maps them; grants from the
//!   policy file. The router hands each request's bearer token to this module
//!   ([`with_request_credentials`]) for the request's identification.
//!
//! A source that does not know the caller (whois: unknown address; client-cert: no certificate;
//! oidc: no bearer token) passes it on to the next one; any other answer, an identity or a refusal, is final, so a
//! caller is never identified by a later source because an earlier one was unavailable. A caller
//! no source knows gets 401.

mod client_cert;
mod jwks;
mod jwt;
mod oidc;
mod policy_store;
mod reloadable;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use capmodel::{CallerDescription, CallerPolicy, PolicyRefusal, Principal, WhoIs};
use localapi::{LocalApiClient, LocalApiError};

pub(crate) use client_cert::{load_client_ca, ClientCa, ClientCertificate, ReloadingVerifier};
pub(crate) use jwks::{fetchable, load_jwks_file, Discovery, Jwks};
pub(crate) use oidc::{ClaimMapping, OidcSource};
pub(crate) use policy_store::{load_policy, PolicyStore};

use crate::cli::IdentityArg;
use crate::identity_cache::{Identity, IdentityCache};
use crate::metrics::Metrics;
use crate::status::KubeStatus;

/// A caller the identity source knows.
#[derive(Debug)]
pub(crate) struct Caller {
    /// What the caller's grants allow.
    pub(crate) policy: CallerPolicy,
    /// Who it is, as recordings and events name it.
    pub(crate) description: CallerDescription,
}

/// What the proxy knows about one client connection.
#[derive(Debug)]
pub(crate) struct ConnectionContext {
    /// The client's address as seen by the proxy.
    pub(crate) peer: SocketAddr,
    /// The client certificate the handshake verified, if the client presented one.
    pub(crate) client_cert: Option<ClientCertificate>,
}

impl Caller {
    /// The caller the identity source described, with its grants.
    pub(crate) fn new(whois: &WhoIs, policy: CallerPolicy) -> Caller {
        Caller {
            policy,
            description: whois.describe(),
        }
    }

    /// A caller identified by certificate or OIDC token: recordings and events name its user, and
    /// as its node the address it connected from (it has no tailnet node).
    pub(crate) fn from_principal(
        principal: &Principal,
        peer: SocketAddr,
        policy: CallerPolicy,
    ) -> Caller {
        Caller {
            policy,
            description: CallerDescription {
                node: peer.ip().to_canonical().to_string(),
                node_id: String::new(),
                user: Some(principal.user.clone()),
                user_id: None,
                tags: Vec::new(),
            },
        }
    }

    /// A short name for logs: the login name or the node name.
    pub(crate) fn display_name(&self) -> &str {
        self.description
            .user
            .as_deref()
            .unwrap_or(&self.description.node)
    }
}

/// The client-certificate source: the CA, and the policy file its callers' grants come from.
#[derive(Debug)]
pub(crate) struct CertificateSource {
    /// `--client-ca`.
    pub(crate) ca: Arc<ClientCa>,
    /// `--policy`; without it every caller is unmatched.
    pub(crate) policy: Option<Arc<PolicyStore>>,
    /// `--policy-default-allow`: a caller no rule matches goes upstream as itself, ungranted.
    pub(crate) allow_unmatched: bool,
}

tokio::task_local! {
    /// The bearer token of the request being served, for the `oidc` source.
    static REQUEST_BEARER: Option<Arc<str>>;
}

/// Runs `handler` (a request's handling) with the request's bearer token (read from its headers
/// with [`bearer_token`]) available to [`Identities::identify`].
///
/// A plain function returning the scope, not an `async fn`: an `async fn` would keep `handler`
/// twice in its state (the argument and the scope it is moved into), doubling what every
/// request's future copies.
pub(crate) fn with_request_credentials<F: Future>(
    bearer: Option<Arc<str>>,
    handler: F,
) -> impl Future<Output = F::Output> {
    REQUEST_BEARER.scope(bearer, handler)
}

/// The token of the first `Authorization` header if it is `Bearer <token>` (scheme in any case),
/// as kube-apiserver reads it; an empty token is none.
pub(crate) fn bearer_token(headers: &http::HeaderMap) -> Option<Arc<str>> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| Arc::from(token))
}

/// The identity sources, in the order they are asked.
#[derive(Debug)]
pub(crate) struct Identities {
    order: Vec<IdentityArg>,
    tailscale: IdentityCache,
    certificates: Option<CertificateSource>,
    oidc: Option<OidcSource>,
}

impl Identities {
    /// `order` from `--identity`; `certificates` must be given when it names `client-cert`.
    pub(crate) fn new(
        order: Vec<IdentityArg>,
        tailscale: IdentityCache,
        certificates: Option<CertificateSource>,
    ) -> Identities {
        Identities {
            order,
            tailscale,
            certificates,
            oidc: None,
        }
    }

    /// With the OIDC source; must be given when the order names `oidc`.
    pub(crate) fn with_oidc(mut self, oidc: Option<OidcSource>) -> Identities {
        self.oidc = oidc;
        self
    }

    /// Whether tailscaled is one of the sources (then its LocalAPI must answer for the proxy to
    /// be ready).
    pub(crate) fn uses_tailscale(&self) -> bool {
        self.order.contains(&IdentityArg::Tailscale)
    }

    /// The OIDC source, when configured.
    pub(crate) fn oidc(&self) -> Option<&OidcSource> {
        self.oidc.as_ref()
    }

    /// The policy file the certificate and OIDC sources share, when configured.
    pub(crate) fn policy(&self) -> Option<&Arc<PolicyStore>> {
        self.certificates
            .as_ref()
            .and_then(|source| source.policy.as_ref())
            .or_else(|| self.oidc.as_ref().and_then(|source| source.policy.as_ref()))
    }

    /// The client-certificate source, when configured.
    pub(crate) fn certificates(&self) -> Option<&CertificateSource> {
        self.certificates.as_ref()
    }

    /// The caller of a request on `connection`, asking the sources in order; the request's bearer
    /// token is the one [`with_request_credentials`] was given.
    pub(crate) async fn identify(
        &self,
        metrics: &Metrics,
        connection: &ConnectionContext,
    ) -> Identity {
        let bearer = REQUEST_BEARER.try_with(Clone::clone).ok().flatten();
        self.identify_request(metrics, connection, bearer.as_deref())
            .await
    }

    /// The caller of a request on `connection` with the bearer token `bearer`.
    pub(crate) async fn identify_request(
        &self,
        metrics: &Metrics,
        connection: &ConnectionContext,
        bearer: Option<&str>,
    ) -> Identity {
        let mut unknown: Vec<KubeStatus> = Vec::new();
        for source in &self.order {
            match source {
                IdentityArg::Tailscale => {
                    match self.tailscale.identify(metrics, connection.peer).await {
                        Err(status) if status.code == http::StatusCode::UNAUTHORIZED => {
                            unknown.push(status)
                        }
                        answer => return answer,
                    }
                }
                // A presented certificate decides, whatever the answer: one that is no longer
                // valid gets 401 even if a later source would know the caller.
                IdentityArg::ClientCert => match (&self.certificates, &connection.client_cert) {
                    (Some(source), Some(certificate)) => {
                        return certificate_caller(source, certificate, connection.peer)
                    }
                    _ => unknown.push(KubeStatus::unauthorized(
                        "the caller presented no client certificate",
                    )),
                },
                // A bearer token decides, whatever the answer: one that is not valid gets 401
                // with the reason, never a later source's identity.
                IdentityArg::Oidc => match (&self.oidc, bearer) {
                    (Some(source), Some(token)) => {
                        return oidc_caller(source, token, connection.peer).await
                    }
                    _ => unknown.push(KubeStatus::unauthorized("the caller sent no bearer token")),
                },
            }
        }
        if unknown.len() == 1 {
            if let Some(only) = unknown.pop() {
                return Err(only);
            }
        }
        let reasons: Vec<String> = unknown.into_iter().map(|status| status.message).collect();
        Err(KubeStatus::unauthorized(format!(
            "no identity source knows the caller at {}: {}",
            connection.peer,
            reasons.join("; ")
        ))
        .closing_connection())
    }
}

/// The caller a verified client certificate names, with its grants from the policy file.
fn certificate_caller(
    source: &CertificateSource,
    certificate: &ClientCertificate,
    peer: SocketAddr,
) -> Identity {
    if let Err(error) = source.ca.verify_now(certificate) {
        tracing::info!(%peer, %error, "refusing caller: its client certificate is no longer valid");
        return Err(KubeStatus::unauthorized(format!(
            "the client certificate is not valid: {error}"
        ))
        .closing_connection());
    }
    let principal = certificate.principal().map_err(|why| {
        tracing::info!(%peer, why, "refusing caller: its client certificate names no user");
        KubeStatus::unauthorized(why.to_owned()).closing_connection()
    })?;
    granted_caller(
        source.policy.as_deref(),
        source.allow_unmatched,
        principal,
        peer,
        "certificate",
    )
}

/// The caller an OIDC token names, with its grants from the policy file.
async fn oidc_caller(source: &OidcSource, token: &str, peer: SocketAddr) -> Identity {
    let principal = source.principal(token).await.inspect_err(|status| {
        tracing::info!(%peer, reason = status.message, "refusing bearer token caller");
    })?;
    granted_caller(
        source.policy.as_deref(),
        source.allow_unmatched,
        &principal,
        peer,
        "OIDC",
    )
}

/// `principal` with its grants from the policy file (`policy`, or none), for a caller identified
/// by the `kind` source.
fn granted_caller(
    policy: Option<&PolicyStore>,
    allow_unmatched: bool,
    principal: &Principal,
    peer: SocketAddr,
    kind: &str,
) -> Identity {
    let decision = match policy {
        Some(store) => store
            .current()
            .policy_for(principal, allow_unmatched)
            .map_err(|refusal| (refusal, Some(store.path()))),
        None => capmodel::PolicyFile::default()
            .policy_for(principal, allow_unmatched)
            .map_err(|refusal| (refusal, None)),
    };
    match decision {
        Ok(policy) => {
            tracing::debug!(%peer, user = principal.user, groups = ?principal.groups, kind, "caller identified");
            Ok(Arc::new(Caller::from_principal(principal, peer, policy)))
        }
        Err((refusal, path)) => {
            tracing::info!(%peer, user = principal.user, %refusal, kind, "refusing caller: no grant");
            let policy = match path {
                Some(path) => format!("the policy file {}", path.display()),
                None => "the proxy (no --policy file)".to_owned(),
            };
            Err(KubeStatus::forbidden(match refusal {
                PolicyRefusal::NoMatchingRule { .. } => {
                    format!("{policy} grants the caller nothing: {refusal}")
                }
                _ => format!("{policy} gives the caller a grant that cannot be used: {refusal}"),
            }))
        }
    }
}

/// Asks tailscaled who is at `peer` and reads the caller's grants. A lookup failure becomes the Status
/// to answer with and closes the connection, so the client reconnects rather than keep a connection
/// the proxy cannot serve. A grant that cannot be read is a 403 naming the problem: the proxy
/// never acts on a grant it does not understand.
pub(crate) async fn resolve(
    localapi: &LocalApiClient,
    peer: SocketAddr,
) -> Result<Arc<Caller>, KubeStatus> {
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; tailscaled knows them as IPv4.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let whois = localapi
        .whois(peer)
        .await
        .map_err(|error| status_for(&error, peer).closing_connection())?;
    match CallerPolicy::from_whois(&whois) {
        Ok(policy) => Ok(Arc::new(Caller::new(&whois, policy))),
        Err(error) => {
            tracing::info!(%peer, %error, "refusing caller: unusable capability grant");
            Err(KubeStatus::forbidden(format!(
                "the caller's Kubernetes capability grant cannot be used: {error}"
            )))
        }
    }
}

fn status_for(error: &LocalApiError, peer: SocketAddr) -> KubeStatus {
    match error {
        LocalApiError::UnknownPeer { .. } => KubeStatus::unauthorized(format!(
            "the caller at {peer} is not known to the tailnet identity source"
        )),
        other => KubeStatus::service_unavailable(format!(
            "cannot identify the caller: the identity source (tailscaled LocalAPI) is unavailable: {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::client_cert::tests::{ca, client, utf8};
    use super::*;
    use rcgen::DnType;
    use std::time::Duration;
    use testkit::localapi_standin::{LocalApiStandIn, StandInOptions, WhoIsTable};

    /// An address tailscaled knows (as alice), and one it does not.
    const TAILNET_PEER: &str = "100.64.0.7:50123";
    const OTHER_PEER: &str = "192.0.2.1:40000";

    struct Fixture {
        _dir: tempfile::TempDir,
        _standin: LocalApiStandIn,
        localapi: LocalApiClient,
        ca_path: std::path::PathBuf,
        policy_path: std::path::PathBuf,
        carol: CertificateDer,
        expired: CertificateDer,
    }

    type CertificateDer = rustls::pki_types::CertificateDer<'static>;

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let whois = format!(
            "{}/../../testdata/whois/user-node.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut table = WhoIsTable::new();
        table.insert(
            TAILNET_PEER,
            serde_json::from_slice(&std::fs::read(whois).unwrap()).unwrap(),
        );
        let standin = LocalApiStandIn::start(
            &dir.path().join("tailscaled.sock"),
            table,
            StandInOptions::default(),
        )
        .await
        .unwrap();
        let localapi = LocalApiClient::new(standin.socket());
        let authority = ca("test-ca");
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, authority.cert.pem()).unwrap();
        let policy_path = dir.path().join("policy.yaml");
        std::fs::write(
            &policy_path,
            "rules: [{users: [carol], grant: {impersonate: {groups: [eng]}, enableEvents: true}}]\n",
        )
        .unwrap();
        let subject = [
            (DnType::CommonName, utf8("carol")),
            (DnType::OrganizationName, utf8("team-a")),
        ];
        Fixture {
            carol: client(&authority, &subject, false),
            expired: client(&authority, &subject, true),
            _dir: dir,
            _standin: standin,
            localapi,
            ca_path,
            policy_path,
        }
    }

    impl Fixture {
        fn identities(&self, order: &[IdentityArg], allow_unmatched: bool) -> Identities {
            Identities::new(
                order.to_vec(),
                IdentityCache::new(self.localapi.clone(), Duration::from_secs(60)),
                Some(CertificateSource {
                    ca: Arc::new(client_cert::load_client_ca(self.ca_path.clone()).unwrap()),
                    policy: Some(Arc::new(
                        policy_store::load_policy(self.policy_path.clone()).unwrap(),
                    )),
                    allow_unmatched,
                }),
            )
        }
    }

    fn connection(peer: &str, cert: Option<&CertificateDer>) -> ConnectionContext {
        ConnectionContext {
            peer: peer.parse().unwrap(),
            client_cert: ClientCertificate::from_handshake(cert.map(std::slice::from_ref)),
        }
    }

    #[tokio::test]
    async fn sources_are_asked_in_order_and_only_an_unknown_caller_passes_on() {
        let f = fixture().await;
        let metrics = Metrics::default();
        let cert_first = f.identities(&[IdentityArg::ClientCert, IdentityArg::Tailscale], false);
        let tailscale_first =
            f.identities(&[IdentityArg::Tailscale, IdentityArg::ClientCert], false);

        // A certificate first: the certificate's identity and the policy file's grant.
        let caller = cert_first
            .identify(&metrics, &connection(TAILNET_PEER, Some(&f.carol)))
            .await
            .unwrap();
        assert_eq!(caller.display_name(), "carol");
        assert_eq!(caller.policy.impersonation.groups, ["team-a", "eng"]);
        assert!(caller.policy.recording.events);
        assert_eq!(caller.description.node, "100.64.0.7");
        // No certificate: the next source.
        let caller = cert_first
            .identify(&metrics, &connection(TAILNET_PEER, None))
            .await
            .unwrap();
        assert_eq!(caller.display_name(), "alice@example.com");
        // Tailscale first: a tailnet address is its node's, certificate or not...
        let caller = tailscale_first
            .identify(&metrics, &connection(TAILNET_PEER, Some(&f.carol)))
            .await
            .unwrap();
        assert_eq!(caller.display_name(), "alice@example.com");
        // ... and an address tailscaled does not know goes on to the certificate.
        let caller = tailscale_first
            .identify(&metrics, &connection(OTHER_PEER, Some(&f.carol)))
            .await
            .unwrap();
        assert_eq!(caller.display_name(), "carol");

        // Nobody: 401 naming every source's reason.
        let status = tailscale_first
            .identify(&metrics, &connection(OTHER_PEER, None))
            .await
            .unwrap_err();
        assert_eq!(status.code, http::StatusCode::UNAUTHORIZED);
        assert!(
            status.message.contains("not known to the tailnet"),
            "{}",
            status.message
        );
        assert!(
            status.message.contains("no client certificate"),
            "{}",
            status.message
        );
    }

    #[tokio::test]
    async fn a_certificate_that_no_longer_verifies_is_401_even_if_a_later_source_knows_the_address()
    {
        let f = fixture().await;
        let metrics = Metrics::default();
        let identities = f.identities(&[IdentityArg::ClientCert, IdentityArg::Tailscale], true);
        let status = identities
            .identify(&metrics, &connection(TAILNET_PEER, Some(&f.expired)))
            .await
            .unwrap_err();
        assert_eq!(status.code, http::StatusCode::UNAUTHORIZED);
        assert!(status.message.contains("not valid"), "{}", status.message);
        assert!(status.close_connection);
    }

    #[tokio::test]
    async fn an_unmatched_certificate_caller_is_403_naming_the_policy_unless_allowed() {
        let f = fixture().await;
        let metrics = Metrics::default();
        let policy = f.policy_path.display().to_string();
        std::fs::write(&f.policy_path, "rules: [{users: [dave]}]\n").unwrap();
        let refused = f.identities(&[IdentityArg::ClientCert], false);
        let status = refused
            .identify(&metrics, &connection(OTHER_PEER, Some(&f.carol)))
            .await
            .unwrap_err();
        assert_eq!(status.code, http::StatusCode::FORBIDDEN);
        assert!(status.message.contains(&policy), "{}", status.message);
        assert!(status.message.contains("\"carol\""), "{}", status.message);

        let allowed = f.identities(&[IdentityArg::ClientCert], true);
        let caller = allowed
            .identify(&metrics, &connection(OTHER_PEER, Some(&f.carol)))
            .await
            .unwrap();
        assert_eq!(caller.policy.impersonation.groups, ["team-a"]);
        assert!(!caller.policy.recording.is_recorded() && !caller.policy.recording.events);

        // Only a client-cert source: no certificate is its own 401.
        let status = allowed
            .identify(&metrics, &connection(OTHER_PEER, None))
            .await
            .unwrap_err();
        assert_eq!(status.code, http::StatusCode::UNAUTHORIZED);
        assert_eq!(status.message, "the caller presented no client certificate");
    }

    #[test]
    fn the_bearer_token_is_read_as_kube_apiserver_reads_it() {
        let token = |values: &[&str]| {
            let mut headers = http::HeaderMap::new();
            for value in values {
                headers.append(http::header::AUTHORIZATION, value.parse().unwrap());
            }
            bearer_token(&headers).map(|t| t.to_string())
        };
        assert_eq!(token(&["Bearer abc"]).as_deref(), Some("abc"));
        assert_eq!(token(&["bearer  abc "]).as_deref(), Some("abc"));
        assert_eq!(token(&["Bearer one", "Bearer two"]).as_deref(), Some("one"));
        assert_eq!(token(&["Basic dTpw"]), None);
        assert_eq!(token(&["Bearer "]), None);
        assert_eq!(token(&["Bearer"]), None);
        assert_eq!(token(&[]), None);
    }

    #[tokio::test]
    async fn a_bearer_token_decides_and_only_its_absence_passes_on() {
        use super::jwt::tests::{claims, Signer};
        use super::oidc::tests::file_source;
        let f = fixture().await;
        let metrics = Metrics::default();
        let signer = Signer::es256("k1");
        let policy = Arc::new(policy_store::load_policy(f.policy_path.clone()).unwrap());
        std::fs::write(
            &f.policy_path,
            "rules: [{groups: [team-a], grant: {impersonate: {groups: [eng]}}}]\n",
        )
        .unwrap();
        policy.reload_if_changed().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let source = file_source(
            dir.path(),
            &[&signer],
            ClaimMapping::new(
                "https://issuer.example",
                "email",
                None,
                Some("groups"),
                None,
            ),
            Some(policy),
        );
        let identities = Identities::new(
            vec![IdentityArg::Oidc, IdentityArg::Tailscale],
            IdentityCache::new(f.localapi.clone(), Duration::from_secs(60)),
            None,
        )
        .with_oidc(Some(source));
        assert!(identities.policy().is_some());

        // A valid token: its user and groups, and the policy file's grant.
        let token = signer.sign(&claims());
        let caller = identities
            .identify_request(&metrics, &connection(TAILNET_PEER, None), Some(&token))
            .await
            .unwrap();
        assert_eq!(caller.display_name(), "carol@example.com");
        assert_eq!(
            caller.policy.impersonation.groups,
            ["team-a", "devs", "eng"]
        );
        // Through the request scope, as the router runs a request.
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let caller = with_request_credentials(
            bearer_token(&headers),
            identities.identify(&metrics, &connection(OTHER_PEER, None)),
        )
        .await
        .unwrap();
        assert_eq!(caller.display_name(), "carol@example.com");
        // No token: the next source.
        let caller = identities
            .identify(&metrics, &connection(TAILNET_PEER, None))
            .await
            .unwrap();
        assert_eq!(caller.display_name(), "alice@example.com");
        // A token that is not valid: 401 with the reason, though tailscaled knows the address.
        let mut expired = claims();
        expired["exp"] = serde_json::json!(0);
        let status = identities
            .identify_request(
                &metrics,
                &connection(TAILNET_PEER, None),
                Some(&signer.sign(&expired)),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code, http::StatusCode::UNAUTHORIZED);
        assert!(status.message.contains("expired"), "{}", status.message);
        // A valid token no rule matches: 403 naming the policy file.
        let mut stranger = claims();
        stranger["groups"] = serde_json::json!(["nobody"]);
        let status = identities
            .identify_request(
                &metrics,
                &connection(OTHER_PEER, None),
                Some(&signer.sign(&stranger)),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code, http::StatusCode::FORBIDDEN);
        assert!(
            status.message.contains("grants the caller nothing"),
            "{}",
            status.message
        );
        // Nobody: every source's reason.
        let status = identities
            .identify(&metrics, &connection(OTHER_PEER, None))
            .await
            .unwrap_err();
        assert!(
            status.message.contains("no bearer token"),
            "{}",
            status.message
        );
    }
}
