//! Whether and where a caller's sessions are recorded.
//!
//! Tailscale: `determineRecorderConfig` in `cmd/k8s-operator` (API server proxy), which reads
//! only the current capability name, never the legacy one.

use std::net::SocketAddr;

use crate::capability::kubernetes_rules;
use crate::error::PolicyError;
use crate::rule::KubernetesCapRule;
use crate::whois::CapMap;

/// How a caller's exec/attach sessions and API requests are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingPolicy {
    /// Recorder addresses to try, in order: every rule's `recorderAddrs`, exact duplicates
    /// dropped.
    pub recorders: Vec<SocketAddr>,
    /// Whether a session may go on unrecorded: false when any rule sets `enforceRecorder`.
    pub fail_open: bool,
    /// Whether API requests are sent to the recorders as events: any rule sets `enableEvents`.
    pub events: bool,
    /// Whether stdin is recorded (`i` events): any rule sets `recordInput`.
    pub input: bool,
    /// Whether the bytes of port-forward connections are stored: any rule sets
    /// `recordPortForwardData`.
    pub port_forward_data: bool,
}

impl RecordingPolicy {
    /// The policy of a caller with no recording rules: nothing recorded, fail open.
    pub fn unrecorded() -> RecordingPolicy {
        RecordingPolicy {
            recorders: Vec::new(),
            fail_open: true,
            events: false,
            input: false,
            port_forward_data: false,
        }
    }

    /// The policy under `rules` (the [`kubernetes_rules`] of a caller). Recorder tags
    /// (`recorder`) alone select no recorder: control resolves them into `recorderAddrs`.
    pub fn from_rules(rules: &[KubernetesCapRule]) -> RecordingPolicy {
        let mut recorders: Vec<SocketAddr> = Vec::new();
        for addr in rules.iter().flat_map(|rule| &rule.recorder_addrs) {
            if !recorders.contains(addr) {
                recorders.push(*addr);
            }
        }
        RecordingPolicy {
            recorders,
            fail_open: !rules.iter().any(|rule| rule.enforce_recorder),
            events: rules.iter().any(|rule| rule.enable_events),
            input: rules.iter().any(|rule| rule.record_input),
            port_forward_data: rules.iter().any(|rule| rule.record_port_forward_data),
        }
    }

    /// The policy of a caller with these capability grants.
    ///
    /// # Errors
    /// [`PolicyError::MalformedRule`] when a rule of [`KUBERNETES_CAP`](crate::KUBERNETES_CAP)
    /// cannot be decoded.
    pub fn from_cap_map(cap_map: &CapMap) -> Result<RecordingPolicy, PolicyError> {
        Ok(RecordingPolicy::from_rules(&kubernetes_rules(cap_map)?))
    }

    /// Whether sessions are to be recorded: there is at least one recorder.
    pub fn is_recorded(&self) -> bool {
        !self.recorders.is_empty()
    }

    /// Whether sessions must be refused outright: recording is enforced but no recorder is
    /// known (Tailscale answers 403).
    pub fn refuses_unrecorded(&self) -> bool {
        !self.fail_open && self.recorders.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn no_rules_is_unrecorded_and_fail_open() {
        let policy = RecordingPolicy::from_rules(&[]);
        assert_eq!(policy, RecordingPolicy::unrecorded());
        assert!(!policy.is_recorded() && !policy.refuses_unrecorded());
    }

    #[test]
    fn addresses_concatenate_in_order_without_duplicates() {
        let rules = [
            KubernetesCapRule {
                recorder_addrs: addrs(&["10.0.0.2:80", "10.0.0.1:80"]),
                ..KubernetesCapRule::default()
            },
            KubernetesCapRule {
                recorder_addrs: addrs(&["[fd7a::1]:80", "10.0.0.2:80"]),
                enable_events: true,
                ..KubernetesCapRule::default()
            },
        ];
        let policy = RecordingPolicy::from_rules(&rules);
        assert_eq!(
            policy.recorders,
            addrs(&["10.0.0.2:80", "10.0.0.1:80", "[fd7a::1]:80"])
        );
        assert!(policy.fail_open && policy.events && policy.is_recorded());
        assert!(!policy.input && !policy.port_forward_data);
    }

    #[test]
    fn input_and_port_forward_data_are_recorded_when_any_rule_asks() {
        let rules = [
            KubernetesCapRule {
                record_input: true,
                ..KubernetesCapRule::default()
            },
            KubernetesCapRule {
                record_port_forward_data: true,
                ..KubernetesCapRule::default()
            },
        ];
        let policy = RecordingPolicy::from_rules(&rules);
        assert!(policy.input && policy.port_forward_data);
    }

    #[test]
    fn enforce_without_addresses_refuses() {
        let rules = [
            KubernetesCapRule::default(),
            KubernetesCapRule {
                recorder: vec!["tag:rec".into()],
                enforce_recorder: true,
                ..KubernetesCapRule::default()
            },
        ];
        let policy = RecordingPolicy::from_rules(&rules);
        assert!(!policy.fail_open && !policy.is_recorded() && policy.refuses_unrecorded());
    }
}
