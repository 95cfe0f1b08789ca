//! Grants for callers that are not Tailscale nodes: the proxy's policy file (`--policy`).
//!
//! A caller identified by something other than tailscaled (a TLS client certificate, later an
//! OIDC token) has a user name and groups but no capability grant. The policy file gives it one:
//! rules matched by user or group, each carrying a grant with exactly the fields of a capability
//! rule ([`KubernetesCapRule`]), decoded by the same Go-semantics decoder, so that
//! `enforceRecorder` or `impersonate.groups` mean the same whichever way a caller came in.
//!
//! ```yaml
//! rules:
//!   - users: [carol]             # the identity's user name, exactly
//!     groups: [team-a]           # or any of the identity's groups
//!     grant:
//!       impersonate: {groups: [eng-admins]}
//!       recorderAddrs: ["10.0.0.5:80"]
//!       enforceRecorder: true
//!       enableEvents: true
//! ```
//!
//! Every matching rule applies, in file order, combined as capability rules are
//! ([`RecordingPolicy::from_rules`]). The caller is impersonated as its own user, with its own
//! groups followed by the matching grants' `impersonate.groups`, each once, in order. A caller no
//! rule matches is refused unless the proxy allows unmatched callers (then it goes upstream as
//! itself, with its own groups, unrecorded).
//!
//! The file's own structure is read strictly (unknown keys, a rule that matches nobody and a
//! grant key that is not a capability rule field are errors), since a typo in a local file should
//! be found when it is loaded rather than quietly grant less, or more, than meant. Pure: this
//! module takes the file already parsed into JSON values (YAML parses into them too).

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::PolicyError;
use crate::header_safe::group_name_problem;
use crate::impersonation::Impersonation;
use crate::policy::CallerPolicy;
use crate::recording::RecordingPolicy;
use crate::rule::KubernetesCapRule;
use crate::rule_decode::{decode_rule, key_names_field};

/// The grant fields a policy file rule may carry: the capability rule's, less `recorder` (tags
/// that Tailscale control resolves into addresses; nothing resolves them here).
const GRANT_FIELDS: [&str; 6] = [
    "impersonate",
    "recorderAddrs",
    "enforceRecorder",
    "enableEvents",
    "recordInput",
    "recordPortForwardData",
];

/// A caller identified by user name and groups (a client certificate's CN and O values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name.
    pub user: String,
    /// The groups, in the order the identity gives them.
    pub groups: Vec<String>,
}

/// One rule of a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRule {
    /// User names the rule matches, exactly.
    pub users: Vec<String>,
    /// Groups the rule matches: a caller in any of them.
    pub groups: Vec<String>,
    /// What the rule grants (`grant`), a capability rule.
    pub grant: KubernetesCapRule,
}

impl PolicyRule {
    /// Whether the rule applies to `principal`: its user is listed, or one of its groups is.
    pub fn matches(&self, principal: &Principal) -> bool {
        self.users.contains(&principal.user)
            || self
                .groups
                .iter()
                .any(|group| principal.groups.contains(group))
    }
}

/// A policy file: its rules, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyFile {
    rules: Vec<PolicyRule>,
}

/// Why a policy file cannot be used, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFileError {
    path: String,
    problem: String,
}

impl PolicyFileError {
    fn new(path: impl Into<String>, problem: impl Into<String>) -> PolicyFileError {
        PolicyFileError {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// Where the problem is, e.g. `rules[1].grant.recorderAddrs[0]`; empty for the whole file.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for PolicyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)?;
        if !self.path.is_empty() {
            write!(f, " at {}", self.path)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyFileError {}

/// Why a caller gets no policy from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyRefusal {
    /// No rule matches the caller and unmatched callers are not allowed.
    NoMatchingRule {
        /// The caller's user name.
        user: String,
        /// The caller's groups.
        groups: Vec<String>,
    },
    /// The rules match but the result cannot be sent upstream (a name HTTP cannot carry).
    Unusable(PolicyError),
}

impl fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyRefusal::NoMatchingRule { user, groups } => write!(
                f,
                "no rule matches user {user:?} or any of its groups {groups:?}"
            ),
            PolicyRefusal::Unusable(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for PolicyRefusal {}

impl PolicyFile {
    /// Reads a policy file from JSON text.
    ///
    /// # Errors
    /// [`PolicyFileError`] for text that is not JSON or a file [`from_value`](Self::from_value)
    /// refuses.
    pub fn from_json(text: &[u8]) -> Result<PolicyFile, PolicyFileError> {
        let value: Value = serde_json::from_slice(text)
            .map_err(|error| PolicyFileError::new("", format!("not JSON: {error}")))?;
        PolicyFile::from_value(&value)
    }

    /// Reads a policy file already parsed (from JSON or YAML): an object with a `rules` list,
    /// each rule an object with `users`, `groups` (lists of names; at least one name in all) and
    /// an optional `grant` (a capability rule, decoded as a grant from Tailscale is).
    ///
    /// # Errors
    /// [`PolicyFileError`] naming the first problem and where it is.
    pub fn from_value(value: &Value) -> Result<PolicyFile, PolicyFileError> {
        let Value::Object(top) = value else {
            return Err(PolicyFileError::new(
                "",
                format!(
                    "the policy file must be an object with a \"rules\" list, not {}",
                    describe(value)
                ),
            ));
        };
        check_keys(top, &["rules"], "")?;
        let rules = match top.get("rules") {
            Some(Value::Array(rules)) => rules,
            Some(other) => {
                return Err(PolicyFileError::new(
                    "rules",
                    format!("expected a list of rules, found {}", describe(other)),
                ))
            }
            None => {
                return Err(PolicyFileError::new(
                    "",
                    "the policy file has no \"rules\" list",
                ))
            }
        };
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| decode_policy_rule(rule, &format!("rules[{index}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PolicyFile { rules })
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    /// The rules that apply to `principal`, in file order.
    pub fn matching<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> impl Iterator<Item = &'a PolicyRule> + 'a {
        self.rules.iter().filter(|rule| rule.matches(principal))
    }

    /// The policy of `principal`: impersonated as its user, with its own groups followed by the
    /// matching grants' groups (each once, in order), recorded as the matching grants combine.
    /// With no matching rule, `allow_unmatched` decides: the caller as itself, unrecorded, or a
    /// refusal.
    ///
    /// # Errors
    /// [`PolicyRefusal::NoMatchingRule`], or [`PolicyRefusal::Unusable`] when a name cannot be
    /// sent as a header value (an empty user above all).
    pub fn policy_for(
        &self,
        principal: &Principal,
        allow_unmatched: bool,
    ) -> Result<CallerPolicy, PolicyRefusal> {
        let grants: Vec<KubernetesCapRule> = self
            .matching(principal)
            .map(|rule| rule.grant.clone())
            .collect();
        if grants.is_empty() && !allow_unmatched {
            return Err(PolicyRefusal::NoMatchingRule {
                user: principal.user.clone(),
                groups: principal.groups.clone(),
            });
        }
        let mut seen = HashSet::new();
        let groups = principal
            .groups
            .iter()
            .chain(
                grants
                    .iter()
                    .filter_map(|grant| grant.impersonate.as_ref())
                    .flat_map(|impersonate| impersonate.groups.iter()),
            )
            .filter(|group| seen.insert(group.as_str()))
            .cloned()
            .collect();
        let impersonation = Impersonation {
            user: principal.user.clone(),
            groups,
        };
        impersonation.validate().map_err(PolicyRefusal::Unusable)?;
        Ok(CallerPolicy {
            impersonation,
            recording: RecordingPolicy::from_rules(&grants),
        })
    }
}

fn decode_policy_rule(value: &Value, path: &str) -> Result<PolicyRule, PolicyFileError> {
    let Value::Object(rule) = value else {
        return Err(PolicyFileError::new(
            path,
            format!("expected a rule object, found {}", describe(value)),
        ));
    };
    check_keys(rule, &["users", "groups", "grant"], path)?;
    let users = names(rule.get("users"), &format!("{path}.users"))?;
    let groups = names(rule.get("groups"), &format!("{path}.groups"))?;
    if users.is_empty() && groups.is_empty() {
        return Err(PolicyFileError::new(
            path,
            "the rule names no user and no group, so it matches nobody",
        ));
    }
    let grant_path = format!("{path}.grant");
    let grant = match rule.get("grant") {
        None | Some(Value::Null) => KubernetesCapRule::default(),
        Some(Value::Object(grant)) => {
            for key in grant.keys() {
                if key_names_field(key, "recorder") {
                    return Err(PolicyFileError::new(
                        format!("{grant_path}.{key}"),
                        "recorder tags are resolved into addresses by Tailscale control and \
                         select no recorder here: list the recorders in recorderAddrs",
                    ));
                }
                if !GRANT_FIELDS.iter().any(|field| key_names_field(key, field)) {
                    return Err(PolicyFileError::new(
                        format!("{grant_path}.{key}"),
                        format!(
                            "unknown grant field {key:?} (a grant carries {})",
                            GRANT_FIELDS.join(", ")
                        ),
                    ));
                }
            }
            let grant = decode_rule(&Value::Object(grant.clone())).map_err(|error| {
                let at = if error.path().is_empty() {
                    grant_path.clone()
                } else {
                    format!("{grant_path}.{}", error.path())
                };
                PolicyFileError::new(at, error.kind().to_string())
            })?;
            for group in grant.impersonate.iter().flat_map(|i| &i.groups) {
                if let Some(problem) = group_name_problem(group) {
                    return Err(PolicyFileError::new(
                        format!("{grant_path}.impersonate.groups"),
                        format!("group {group:?} cannot be sent as a header value: {problem}"),
                    ));
                }
            }
            grant
        }
        Some(other) => {
            return Err(PolicyFileError::new(
                grant_path,
                format!("expected a grant object, found {}", describe(other)),
            ))
        }
    };
    Ok(PolicyRule {
        users,
        groups,
        grant,
    })
}

/// Refuses keys other than `allowed` (exact names: this is the proxy's own file format).
fn check_keys(
    object: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
) -> Result<(), PolicyFileError> {
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => Err(PolicyFileError::new(
            path,
            format!(
                "unknown key {key:?} (expected {})",
                allowed
                    .iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// A list of non-empty names; absent or `null` is none.
fn names(value: Option<&Value>, path: &str) -> Result<Vec<String>, PolicyFileError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(PolicyFileError::new(
                path,
                format!("expected a list of names, found {}", describe(other)),
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(name) if !name.is_empty() => Ok(name.clone()),
            Value::String(_) => Err(PolicyFileError::new(
                format!("{path}[{index}]"),
                "an empty name matches nobody",
            )),
            other => Err(PolicyFileError::new(
                format!("{path}[{index}]"),
                format!("expected a name (a string), found {}", describe(other)),
            )),
        })
        .collect()
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn principal(user: &str, groups: &[&str]) -> Principal {
        Principal {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn file(value: Value) -> PolicyFile {
        PolicyFile::from_value(&value).unwrap()
    }

    fn error(value: Value) -> String {
        PolicyFile::from_value(&value).unwrap_err().to_string()
    }

    #[test]
    fn every_matching_rule_applies_in_file_order_with_groups_distinct() {
        let policy = file(json!({"rules": [
            {"groups": ["team-a"], "grant": {"impersonate": {"groups": ["viewers", "team-a"]}}},
            {"users": ["dave"], "grant": {"impersonate": {"groups": ["nope"]}}},
            {"users": ["carol"], "grant": {
                "impersonate": {"groups": ["eng-admins", "viewers"]},
                "recorderAddrs": ["10.0.0.5:80", "10.0.0.6:80"],
                "enableEvents": true,
            }},
            {"groups": ["devs"], "grant": {"recorderAddrs": ["10.0.0.5:80"], "enforceRecorder": true}},
        ]}));
        let carol = principal("carol", &["team-a", "devs"]);
        assert_eq!(policy.matching(&carol).count(), 3);
        let got = policy.policy_for(&carol, false).unwrap();
        assert_eq!(got.impersonation.user, "carol");
        assert_eq!(
            got.impersonation.groups,
            ["team-a", "devs", "viewers", "eng-admins"]
        );
        assert_eq!(
            got.recording.recorders,
            [
                "10.0.0.5:80".parse().unwrap(),
                "10.0.0.6:80".parse().unwrap()
            ]
        );
        assert!(!got.recording.fail_open && got.recording.events);
        assert!(!got.recording.input && !got.recording.port_forward_data);
    }

    #[test]
    fn a_rule_matches_by_user_or_by_any_group_exactly() {
        let rule = PolicyRule {
            users: vec!["carol".into()],
            groups: vec!["team-a".into()],
            grant: KubernetesCapRule::default(),
        };
        assert!(rule.matches(&principal("carol", &[])));
        assert!(rule.matches(&principal("erin", &["x", "team-a"])));
        assert!(!rule.matches(&principal("Carol", &["Team-A", "team-a-2"])));
        assert!(!rule.matches(&principal("carol@example.com", &[])));
    }

    #[test]
    fn no_match_is_refused_unless_unmatched_callers_are_allowed() {
        let policy = file(json!({"rules": [{"users": ["carol"]}]}));
        let erin = principal("erin", &["ops"]);
        let refusal = policy.policy_for(&erin, false).unwrap_err();
        assert_eq!(
            refusal,
            PolicyRefusal::NoMatchingRule {
                user: "erin".into(),
                groups: vec!["ops".into()]
            }
        );
        assert_eq!(
            refusal.to_string(),
            "no rule matches user \"erin\" or any of its groups [\"ops\"]"
        );
        let allowed = policy.policy_for(&erin, true).unwrap();
        assert_eq!(allowed.impersonation.user, "erin");
        assert_eq!(allowed.impersonation.groups, ["ops"]);
        assert_eq!(allowed.recording, RecordingPolicy::unrecorded());
        // A rule with an empty grant still admits its callers, as themselves.
        let carol = policy.policy_for(&principal("carol", &[]), false).unwrap();
        assert!(carol.impersonation.groups.is_empty());
        assert!(!carol.recording.is_recorded());
    }

    #[test]
    fn names_http_cannot_carry_are_refused() {
        let policy = PolicyFile::default();
        let refusal = policy.policy_for(&principal("", &[]), true).unwrap_err();
        assert!(matches!(
            refusal,
            PolicyRefusal::Unusable(PolicyError::InvalidUser { .. })
        ));
        let refusal = policy
            .policy_for(&principal("u", &["bad\ngroup"]), true)
            .unwrap_err();
        assert!(
            refusal.to_string().contains("control character"),
            "{refusal}"
        );
        let err = error(
            json!({"rules": [{"users": ["u"], "grant": {"impersonate": {"groups": [" x"]}}}]}),
        );
        assert!(
            err.ends_with("at rules[0].grant.impersonate.groups"),
            "{err}"
        );
    }

    #[test]
    fn grants_are_decoded_as_capability_rules_are() {
        // Keys match case-insensitively and null is the zero value, as in a Tailscale grant.
        let policy = file(json!({"rules": [{"users": ["u"], "grant": {
            "EnforceRecorder": true, "recorderaddrs": ["[fd7a::1]:80"], "recordInput": null,
            "recordPortForwardData": true, "impersonate": null,
        }}]}));
        let grant = &policy.rules()[0].grant;
        assert!(grant.enforce_recorder && grant.record_port_forward_data && !grant.record_input);
        assert_eq!(grant.recorder_addrs, ["[fd7a::1]:80".parse().unwrap()]);
        assert_eq!(grant.impersonate, None);
        let err = error(json!({"rules": [{"users": ["u"], "grant": {"recorderAddrs": ["nope"]}}]}));
        assert_eq!(
            err,
            "invalid socket address syntax \"nope\" (expected \"ip:port\" or \"[ipv6]:port\") \
             at rules[0].grant.recorderAddrs[0]"
        );
    }

    #[test]
    fn the_files_structure_is_read_strictly() {
        for (value, expected) in [
            (json!([]), "must be an object"),
            (json!(null), "must be an object"),
            (json!({}), "no \"rules\" list"),
            (
                json!({"rules": {}}),
                "expected a list of rules, found an object at rules",
            ),
            (json!({"rules": [], "extra": 1}), "unknown key \"extra\""),
            (
                json!({"rules": ["x"]}),
                "expected a rule object, found string \"x\" at rules[0]",
            ),
            (json!({"rules": [{}]}), "matches nobody at rules[0]"),
            (json!({"rules": [{"user": ["u"]}]}), "unknown key \"user\""),
            (
                json!({"rules": [{"users": "u"}]}),
                "expected a list of names, found string \"u\" at rules[0].users",
            ),
            (
                json!({"rules": [{"users": [""]}]}),
                "empty name matches nobody at rules[0].users[0]",
            ),
            (
                json!({"rules": [{"groups": [1]}]}),
                "found number 1 at rules[0].groups[0]",
            ),
            (
                json!({"rules": [{"users": ["u"], "grant": []}]}),
                "expected a grant object, found a list at rules[0].grant",
            ),
            (
                json!({"rules": [{"users": ["u"], "grant": {"enforceRecorders": true}}]}),
                "unknown grant field \"enforceRecorders\"",
            ),
            (
                json!({"rules": [{"users": ["u"], "grant": {"recorder": ["tag:rec"]}}]}),
                "list the recorders in recorderAddrs at rules[0].grant.recorder",
            ),
            (
                json!({"rules": [{"users": ["u"], "grant": {"enforceRecorder": "yes"}}]}),
                "at rules[0].grant.enforceRecorder",
            ),
        ] {
            let err = error(value.clone());
            assert!(err.contains(expected), "{value}: {err}");
        }
        assert_eq!(file(json!({"rules": []})).rules().len(), 0);
        assert!(PolicyFile::from_json(b"{")
            .unwrap_err()
            .to_string()
            .starts_with("not JSON"));
        let parsed =
            PolicyFile::from_json(br#"{"rules": [{"groups": ["g"], "grant": null}]}"#).unwrap();
        assert_eq!(parsed.rules()[0].grant, KubernetesCapRule::default());
    }
}
