//! Who the API server should see: the impersonated user and groups of a caller.
//!
//! Tailscale: `addImpersonationHeaders` in `cmd/k8s-operator` (API server proxy).

use std::collections::HashSet;

use crate::capability::impersonation_rules;
use crate::error::PolicyError;
use crate::header_safe::{group_name_problem, user_name_problem};
use crate::rule::KubernetesCapRule;
use crate::whois::WhoIs;

/// The identity a caller's requests are sent upstream as (`Impersonate-User` and
/// `Impersonate-Group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonation {
    /// The user: the owner's login name for a user-owned node, the node's FQDN without its
    /// trailing dot for a tagged node.
    pub user: String,
    /// The groups, distinct, in first-seen order.
    pub groups: Vec<String>,
}

impl Impersonation {
    /// The impersonation of a caller, from its [`impersonation_rules`], checked with
    /// [`validate`](Self::validate).
    ///
    /// # Errors
    /// [`PolicyError::MalformedRule`] when a rule cannot be decoded, and
    /// [`PolicyError::InvalidUser`] or [`PolicyError::InvalidGroup`] when a name cannot be
    /// sent as a header value.
    pub fn from_whois(who: &WhoIs) -> Result<Impersonation, PolicyError> {
        let rules = impersonation_rules(&who.cap_map)?;
        let impersonation = Impersonation::from_rules(who, &rules);
        impersonation.validate()?;
        Ok(impersonation)
    }

    /// The impersonation of a caller under `rules`, unchecked.
    ///
    /// - user-owned node: user = `UserProfile.LoginName`;
    /// - tagged node: user = node name without its trailing dot;
    /// - groups: every rule's `impersonate.groups`, each group once, in first-seen order;
    /// - a tagged node whose rules name no group gets its tags as groups (Tailscale's
    ///   behaviour from before capabilities existed); a user-owned node gets none.
    pub fn from_rules(who: &WhoIs, rules: &[KubernetesCapRule]) -> Impersonation {
        let mut groups = distinct_in_order(
            rules
                .iter()
                .filter_map(|rule| rule.impersonate.as_ref())
                .flat_map(|imp| imp.groups.iter()),
        );
        let user = if who.node.is_tagged() {
            if groups.is_empty() {
                groups = distinct_in_order(who.node.tags.iter());
            }
            who.node.name_without_trailing_dot().to_owned()
        } else {
            who.user_profile.login_name.clone()
        };
        Impersonation { user, groups }
    }

    /// Checks that the user and every group can be sent faithfully as header values (see
    /// [`user_name_problem`](crate::user_name_problem)); in particular that the user is not
    /// empty, which the API server would read as "do not impersonate".
    ///
    /// # Errors
    /// [`PolicyError::InvalidUser`] or [`PolicyError::InvalidGroup`] for the first bad name.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Some(problem) = user_name_problem(&self.user) {
            return Err(PolicyError::InvalidUser {
                user: self.user.clone(),
                problem,
            });
        }
        for group in &self.groups {
            if let Some(problem) = group_name_problem(group) {
                return Err(PolicyError::InvalidGroup {
                    group: group.clone(),
                    problem,
                });
            }
        }
        Ok(())
    }
}

/// Each item once, in the order first seen (Go: `set.Slice`).
fn distinct_in_order<'a>(items: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .filter(|item| seen.insert(item.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::rule::ImpersonateRule;
    use crate::whois::{Node, UserProfile};

    fn who(tags: &[&str]) -> WhoIs {
        WhoIs {
            node: Node {
                name: "host.tailnet.ts.net.".into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..Node::default()
            },
            user_profile: UserProfile {
                login_name: "alice@example.com".into(),
                ..UserProfile::default()
            },
            cap_map: Default::default(),
        }
    }

    fn rule(groups: &[&str]) -> KubernetesCapRule {
        KubernetesCapRule {
            impersonate: Some(ImpersonateRule {
                groups: groups.iter().map(|g| g.to_string()).collect(),
            }),
            ..KubernetesCapRule::default()
        }
    }

    #[test]
    fn user_node_without_groups_gets_none() {
        let imp = Impersonation::from_rules(&who(&[]), &[]);
        assert_eq!(imp.user, "alice@example.com");
        assert!(imp.groups.is_empty());
    }

    #[test]
    fn groups_are_distinct_across_rules() {
        let rules = [
            rule(&["a", "b", "a"]),
            KubernetesCapRule::default(),
            rule(&["c", "b"]),
        ];
        let imp = Impersonation::from_rules(&who(&[]), &rules);
        assert_eq!(imp.groups, ["a", "b", "c"]);
    }

    #[test]
    fn tagged_node_uses_name_and_tags_only_without_rule_groups() {
        let tagged = who(&["tag:x", "tag:y"]);
        let imp = Impersonation::from_rules(&tagged, &[KubernetesCapRule::default()]);
        assert_eq!(imp.user, "host.tailnet.ts.net");
        assert_eq!(imp.groups, ["tag:x", "tag:y"]);
        let imp = Impersonation::from_rules(&tagged, &[rule(&["ops"])]);
        assert_eq!(imp.groups, ["ops"]);
    }

    #[test]
    fn validate_refuses_empty_user_and_bad_groups() {
        let mut w = who(&[]);
        w.user_profile.login_name.clear();
        let err = Impersonation::from_whois(&w).unwrap_err();
        assert!(matches!(err, PolicyError::InvalidUser { .. }), "{err}");
        assert!(err.to_string().contains("empty"), "{err}");

        let imp = Impersonation {
            user: "u".into(),
            groups: vec!["ok".into(), "bad\r\nx".into()],
        };
        let err = imp.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot impersonate the caller with group \"bad\\r\\nx\": it holds a control character at byte 3"
        );
    }
}
