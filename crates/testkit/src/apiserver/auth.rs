//! Authentication in the apiserver's order: client certificate, then bearer token, then anonymous.
//!
//! Mirrors `k8s.io/apiserver/pkg/authentication` (`request/x509`, `request/bearertoken`,
//! `request/anonymous`, `group.AuthenticatedGroupAdder`): a certificate verified against the client
//! CA wins; a bearer token that is not known is a `401` even when anonymous access is on (the
//! anonymous authenticator is only consulted when no authenticator found credentials at all).

use std::collections::{BTreeSet, HashMap};

use http::HeaderMap;

use super::config::{ApiServerConfig, TokenConfig};
use super::identity::{UserInfo, MASTERS};
use super::status::Status;
use super::x509_subject::CertSubject;

/// The caller before impersonation, and whether RBAC would let it impersonate.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) user: UserInfo,
    pub(crate) may_impersonate: bool,
}

/// Authenticates requests against the configured tokens and certificate users.
#[derive(Debug)]
pub(crate) struct Authenticator {
    tokens: HashMap<String, TokenConfig>,
    cert_impersonators: BTreeSet<String>,
    anonymous: bool,
}

impl Authenticator {
    pub(crate) fn new(config: &ApiServerConfig) -> Self {
        Authenticator {
            tokens: config
                .tokens
                .iter()
                .map(|t| (t.token.clone(), t.clone()))
                .collect(),
            cert_impersonators: config
                .client_certs
                .iter()
                .filter(|c| c.impersonate)
                .map(|c| c.user.clone())
                .collect(),
            anonymous: config.anonymous_auth,
        }
    }

    /// Who sent the request, or the `401` the apiserver answers.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        client_cert: Option<&CertSubject>,
    ) -> Result<Authenticated, Status> {
        // x509.CommonNameUserConversion: a certificate without a CN has no opinion.
        if let Some(cert) = client_cert.filter(|c| !c.common_name.is_empty()) {
            let user = UserInfo::authenticated(&cert.common_name, None, &cert.organizations);
            let may_impersonate =
                self.cert_impersonators.contains(&cert.common_name) || user.in_group(MASTERS);
            return Ok(Authenticated {
                user,
                may_impersonate,
            });
        }
        if let Some(token) = bearer_token(headers) {
            let Some(entry) = self.tokens.get(token) else {
                return Err(Status::unauthorized());
            };
            let user = UserInfo::authenticated(&entry.user, entry.uid.as_deref(), &entry.groups);
            let may_impersonate = entry.impersonate || user.in_group(MASTERS);
            return Ok(Authenticated {
                user,
                may_impersonate,
            });
        }
        if self.anonymous {
            Ok(Authenticated {
                user: UserInfo::anonymous(),
                may_impersonate: false,
            })
        } else {
            Err(Status::unauthorized())
        }
    }
}

/// The token of `Authorization: Bearer <token>`, parsed as `bearertoken.Authenticator` does: the
/// scheme is case-insensitive, anything else (Basic, an empty token) is "no credentials".
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(auth).expect("valid"),
        );
        h
    }

    #[test]
    fn token_anonymous_and_unknown() {
        let a = Authenticator::new(&ApiServerConfig::default());
        let alice = a
            .authenticate(&headers("bearer alice-token"), None)
            .expect("known token");
        assert_eq!(alice.user.username, "alice");
        assert_eq!(alice.user.groups, ["devs", "system:authenticated"]);
        assert!(!alice.may_impersonate);
        let anon = a.authenticate(&HeaderMap::new(), None).expect("anonymous");
        assert_eq!(anon.user.groups, ["system:unauthenticated"]);
        assert_eq!(
            a.authenticate(&headers("Basic eDp5"), None)
                .expect("basic")
                .user
                .username,
            "system:anonymous"
        );
        let err = a
            .authenticate(&headers("Bearer nope"), None)
            .expect_err("unknown");
        assert_eq!(err.code, http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn certificate_wins_over_token() {
        let a = Authenticator::new(&ApiServerConfig::default());
        let cert = CertSubject {
            common_name: "bob".into(),
            organizations: vec!["system:masters".into()],
        };
        let who = a
            .authenticate(&headers("Bearer nope"), Some(&cert))
            .expect("cert");
        assert_eq!(who.user.username, "bob");
        assert!(who.may_impersonate);
    }
}
