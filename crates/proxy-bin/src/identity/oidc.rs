//! OpenID Connect ID tokens as an identity source (`--identity oidc`): `Authorization: Bearer
//! <JWT>` verified against the issuer's keys (`jwt`, `jwks`), its claims read into a user and
//! groups the way kube-apiserver's OIDC authenticator reads them:
//!
//! - the user is the `--oidc-username-claim` claim (default `sub`), prefixed with
//!   `--oidc-username-prefix`; without that flag, with `<issuer URL>#` unless the claim is
//!   `email`; `-` disables the prefix. For the `email` claim, an `email_verified` claim that is
//!   present must be `true`;
//! - the groups are the `--oidc-groups-claim` claim (a string or an array of strings; none when
//!   the flag is not given or the token lacks the claim), each prefixed with
//!   `--oidc-groups-prefix`.
//!
//! The token is a caller credential like any other: in auth mode it never reaches upstream
//! (`impersonate::scrub_caller_credentials` removes every `Authorization` header).

use std::sync::Arc;

use capmodel::Principal;
use serde_json::{Map, Value};

use super::jwks::Jwks;
use super::jwt::{self, Expected, JwtError};
use super::PolicyStore;
use crate::status::KubeStatus;

/// How claims become a user and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClaimMapping {
    /// The claim naming the user.
    pub(crate) username_claim: String,
    /// Prepended to the user name (already resolved: empty for none).
    pub(crate) username_prefix: String,
    /// The claim listing the groups, if any.
    pub(crate) groups_claim: Option<String>,
    /// Prepended to each group.
    pub(crate) groups_prefix: String,
}

impl ClaimMapping {
    /// The mapping kube-apiserver's flags of the same names describe: `username_prefix` `None`
    /// is the default (`<issuer>#`, or nothing for the `email` claim), `-` is no prefix.
    pub(crate) fn new(
        issuer: &str,
        username_claim: &str,
        username_prefix: Option<&str>,
        groups_claim: Option<&str>,
        groups_prefix: Option<&str>,
    ) -> ClaimMapping {
        let username_prefix = match username_prefix {
            Some("-") => String::new(),
            Some(prefix) => prefix.to_owned(),
            None if username_claim == "email" => String::new(),
            None => format!("{issuer}#"),
        };
        ClaimMapping {
            username_claim: username_claim.to_owned(),
            username_prefix,
            groups_claim: groups_claim.filter(|c| !c.is_empty()).map(str::to_owned),
            groups_prefix: groups_prefix.unwrap_or_default().to_owned(),
        }
    }

    /// The user and groups of verified `claims`, or why they name nobody.
    pub(crate) fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, String> {
        let claim = &self.username_claim;
        let user = match claims.get(claim) {
            Some(Value::String(user)) if !user.is_empty() => user,
            Some(Value::String(_)) => return Err(format!("the token's {claim:?} claim is empty")),
            Some(_) => return Err(format!("the token's {claim:?} claim is not a string")),
            None => return Err(format!("the token has no {claim:?} claim to name a user")),
        };
        if claim == "email" {
            match claims.get("email_verified") {
                None | Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => {
                    return Err(format!(
                        "the token's email {user:?} is not verified (email_verified is false)"
                    ))
                }
                Some(_) => {
                    return Err("the token's email_verified claim is not a boolean".to_owned())
                }
            }
        }
        let groups = match self
            .groups_claim
            .as_ref()
            .and_then(|c| claims.get(c).map(|v| (c, v)))
        {
            None | Some((_, Value::Null)) => Vec::new(),
            Some((_, Value::String(group))) => vec![group.clone()],
            Some((name, Value::Array(groups))) => groups
                .iter()
                .map(|group| {
                    group.as_str().map(str::to_owned).ok_or_else(|| {
                        format!("the token's {name:?} claim is not a list of strings")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some((name, _)) => {
                return Err(format!(
                    "the token's {name:?} claim is neither a string nor a list of strings"
                ))
            }
        };
        Ok(Principal {
            user: format!("{}{user}", self.username_prefix),
            groups: groups
                .into_iter()
                .map(|group| format!("{}{group}", self.groups_prefix))
                .collect(),
        })
    }
}

/// The OIDC identity source: the issuer, its keys, the mapping, and the policy file its callers'
/// grants come from.
#[derive(Debug)]
pub(crate) struct OidcSource {
    /// `--oidc-issuer-url`: the `iss` tokens must carry.
    pub(crate) issuer: String,
    /// `--oidc-client-id`: the audience tokens must be for.
    pub(crate) client_id: String,
    /// The issuer's keys.
    pub(crate) keys: Jwks,
    /// How claims become a user and groups.
    pub(crate) mapping: ClaimMapping,
    /// `--policy`; without it every caller is unmatched.
    pub(crate) policy: Option<Arc<PolicyStore>>,
    /// `--policy-default-allow`.
    pub(crate) allow_unmatched: bool,
}

impl OidcSource {
    /// Who the token names: 401 with the reason for a token that is not valid, 503 when the
    /// issuer's keys cannot be had.
    pub(crate) async fn principal(&self, token: &str) -> Result<Principal, KubeStatus> {
        let keys = self.keys.keys().await.map_err(|error| {
            KubeStatus::service_unavailable(format!(
                "cannot verify the bearer token: the OIDC issuer's keys are unavailable: {error}"
            ))
        })?;
        let expected = Expected {
            issuer: &self.issuer,
            audience: &self.client_id,
            now: now(),
        };
        let claims = match jwt::verify(token, &keys, &expected) {
            Err(JwtError::UnknownKey(Some(_))) => match self.keys.refetch_for_unknown_kid().await {
                Some(keys) => jwt::verify(token, &keys, &expected),
                None => jwt::verify(token, &keys, &expected),
            },
            verified => verified,
        };
        let claims = claims.map_err(|error| refused(&error.to_string()))?;
        self.mapping.principal(&claims).map_err(|why| refused(&why))
    }
}

fn refused(why: &str) -> KubeStatus {
    KubeStatus::unauthorized(format!("the bearer token is not a valid OIDC token: {why}"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::jwt::tests::{claims, Signer, CLIENT, ISSUER};
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn claims_are_mapped_as_kube_apiserver_maps_them() {
        // Defaults: sub, prefixed with the issuer and '#'.
        let mapping = ClaimMapping::new(ISSUER, "sub", None, None, None);
        let principal = mapping.principal(&object(claims())).unwrap();
        assert_eq!(principal.user, "https://issuer.example#u-1");
        assert!(principal.groups.is_empty());
        // email: no default prefix; groups with a prefix.
        let mapping = ClaimMapping::new(ISSUER, "email", None, Some("groups"), Some("oidc:"));
        let principal = mapping.principal(&object(claims())).unwrap();
        assert_eq!(principal.user, "carol@example.com");
        assert_eq!(principal.groups, ["oidc:team-a", "oidc:devs"]);
        // '-' disables the prefix; a given prefix is used as is; a string group.
        let mut token = claims();
        token["groups"] = json!("solo");
        let mapping = ClaimMapping::new(ISSUER, "sub", Some("-"), Some("groups"), None);
        let principal = mapping.principal(&object(token.clone())).unwrap();
        assert_eq!(
            (principal.user.as_str(), principal.groups),
            ("u-1", vec!["solo".to_owned()])
        );
        let mapping = ClaimMapping::new(ISSUER, "email", Some("corp:"), Some("roles"), None);
        let principal = mapping.principal(&object(token)).unwrap();
        assert_eq!(principal.user, "corp:carol@example.com");
        assert!(
            principal.groups.is_empty(),
            "absent groups claim: no groups"
        );
    }

    #[test]
    fn unusable_claims_name_nobody() {
        let email = ClaimMapping::new(ISSUER, "email", None, Some("groups"), None);
        for (changes, reason) in [
            (json!({"email_verified": false}), "not verified"),
            (json!({"email_verified": "yes"}), "not a boolean"),
            (json!({"email": 7}), "not a string"),
            (json!({"email": ""}), "is empty"),
            (json!({"groups": [1]}), "not a list of strings"),
            (json!({"groups": {"a": 1}}), "neither a string"),
        ] {
            let mut token = claims();
            for (key, value) in changes.as_object().unwrap() {
                token[key] = value.clone();
            }
            let error = email.principal(&object(token)).unwrap_err();
            assert!(error.contains(reason), "{changes}: {error}");
        }
        let mut token = claims();
        token["email_verified"] = json!(true);
        assert!(email.principal(&object(token)).is_ok());
        let name = ClaimMapping::new(ISSUER, "name", None, None, None);
        let error = name.principal(&object(claims())).unwrap_err();
        assert!(error.contains("no \"name\" claim"), "{error}");
    }

    /// A source with the keys of `signers` in a JWK set file.
    pub(crate) fn file_source(
        dir: &std::path::Path,
        signers: &[&Signer],
        mapping: ClaimMapping,
        policy: Option<Arc<PolicyStore>>,
    ) -> OidcSource {
        let path = dir.join("jwks.json");
        let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
        std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
        OidcSource {
            issuer: ISSUER.to_owned(),
            client_id: CLIENT.to_owned(),
            keys: Jwks::File(super::super::jwks::load_jwks_file(path).unwrap()),
            mapping,
            policy,
            allow_unmatched: false,
        }
    }

    #[tokio::test]
    async fn tokens_are_verified_then_mapped_and_refusals_are_401_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (es, rs) = (Signer::es256("ec-1"), Signer::rs256("rsa-1"));
        let source = file_source(
            dir.path(),
            &[&es, &rs],
            ClaimMapping::new(ISSUER, "email", None, Some("groups"), None),
            None,
        );
        for signer in [&es, &rs] {
            let principal = source.principal(&signer.sign(&claims())).await.unwrap();
            assert_eq!(principal.user, "carol@example.com");
        }
        let mut unverified = claims();
        unverified["email_verified"] = json!(false);
        let mut expired = claims();
        expired["exp"] = json!(jwt::tests::now() - 3600);
        for (token, reason) in [
            (es.sign(&unverified), "not verified"),
            (es.sign(&expired), "expired"),
            (
                Signer::es256("ec-9").sign(&claims()),
                "no signing key with kid \"ec-9\"",
            ),
            ("not-a-jwt".to_owned(), "not a valid JWT"),
        ] {
            let status = source.principal(&token).await.unwrap_err();
            assert_eq!(status.code, http::StatusCode::UNAUTHORIZED);
            assert!(status.message.contains(reason), "{}", status.message);
            assert!(status
                .message
                .starts_with("the bearer token is not a valid OIDC token"));
        }
    }
}
