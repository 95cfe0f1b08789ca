//! Reading the Kubernetes capability's rules out of a caller's [`CapMap`].
//!
//! Tailscale: `tailcfg.PeerCapabilityKubernetes` and `tailcfg.UnmarshalCapJSON`; the legacy
//! name is read by `addImpersonationHeaders` in `cmd/k8s-operator` only when the current name
//! yields no rules.

use crate::error::PolicyError;
use crate::rule::KubernetesCapRule;
use crate::rule_decode::decode_rule;
use crate::whois::CapMap;

/// The capability that carries [`KubernetesCapRule`]s (Go: `tailcfg.PeerCapabilityKubernetes`).
pub const KUBERNETES_CAP: &str = "tailscale.com/cap/kubernetes";

/// The capability's earlier name, still read for impersonation (never for recording) when
/// [`KUBERNETES_CAP`] yields no rules.
pub const LEGACY_KUBERNETES_CAP: &str = "https://tailscale.com/cap/kubernetes";

/// The rules under `capability`, in order; none when the capability is absent.
///
/// # Errors
/// [`PolicyError::MalformedRule`] naming the first rule that cannot be decoded. One bad rule
/// fails the whole capability, as in Go, so a grant is never half applied.
pub fn rules_of(cap_map: &CapMap, capability: &str) -> Result<Vec<KubernetesCapRule>, PolicyError> {
    let Some(values) = cap_map.get(capability) else {
        return Ok(Vec::new());
    };
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            decode_rule(value).map_err(|reason| PolicyError::MalformedRule {
                capability: capability.to_owned(),
                index,
                reason,
            })
        })
        .collect()
}

/// The rules under [`KUBERNETES_CAP`], in order. These alone decide recording.
///
/// # Errors
/// [`PolicyError::MalformedRule`] when a rule cannot be decoded.
pub fn kubernetes_rules(cap_map: &CapMap) -> Result<Vec<KubernetesCapRule>, PolicyError> {
    rules_of(cap_map, KUBERNETES_CAP)
}

/// The rules that decide impersonation: those under [`KUBERNETES_CAP`] or, if it yields no
/// rules (absent or an empty list), those under [`LEGACY_KUBERNETES_CAP`].
///
/// # Errors
/// [`PolicyError::MalformedRule`] when a rule of the capability read cannot be decoded. A
/// malformed current capability is an error, not a reason to fall back; a malformed legacy
/// capability is never looked at when the current one has rules.
pub fn impersonation_rules(cap_map: &CapMap) -> Result<Vec<KubernetesCapRule>, PolicyError> {
    let rules = kubernetes_rules(cap_map)?;
    if rules.is_empty() {
        return rules_of(cap_map, LEGACY_KUBERNETES_CAP);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn cap_map(value: serde_json::Value) -> CapMap {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn absent_capability_has_no_rules() {
        assert!(kubernetes_rules(&CapMap::new()).unwrap().is_empty());
        assert!(impersonation_rules(&CapMap::new()).unwrap().is_empty());
    }

    #[test]
    fn empty_current_list_falls_back_to_legacy() {
        let map = cap_map(json!({
            KUBERNETES_CAP: [],
            LEGACY_KUBERNETES_CAP: [{"impersonate": {"groups": ["old"]}}],
        }));
        let rules = impersonation_rules(&map).unwrap();
        assert_eq!(rules.len(), 1);
        assert!(kubernetes_rules(&map).unwrap().is_empty());
    }

    #[test]
    fn malformed_current_capability_does_not_fall_back() {
        let map = cap_map(json!({
            KUBERNETES_CAP: [{"impersonate": 1}],
            LEGACY_KUBERNETES_CAP: [{"impersonate": {"groups": ["old"]}}],
        }));
        let err = impersonation_rules(&map).unwrap_err();
        assert!(
            matches!(err, PolicyError::MalformedRule { index: 0, ref capability, .. } if capability == KUBERNETES_CAP)
        );
    }

    #[test]
    fn malformed_legacy_is_ignored_when_current_has_rules() {
        let map = cap_map(json!({
            KUBERNETES_CAP: [{}],
            LEGACY_KUBERNETES_CAP: ["garbage"],
        }));
        assert_eq!(
            impersonation_rules(&map).unwrap(),
            vec![KubernetesCapRule::default()]
        );
    }

    #[test]
    fn error_names_capability_rule_and_reason() {
        let map = cap_map(json!({ KUBERNETES_CAP: [{}, {}, {"recorderAddrs": ["nope"]}] }));
        let err = kubernetes_rules(&map).unwrap_err();
        assert_eq!(
            err.to_string(),
            "capability \"tailscale.com/cap/kubernetes\" rule 2 is malformed: invalid socket \
             address syntax \"nope\" (expected \"ip:port\" or \"[ipv6]:port\") at recorderAddrs[0]"
        );
    }
}
