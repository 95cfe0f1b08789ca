//! One rule of the Kubernetes capability (Go: `kubetypes.KubernetesCapRule`).

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::rule_decode::{decode_impersonate, decode_rule};

/// One element of the `tailscale.com/cap/kubernetes` capability: what a grant says about a
/// caller's access to the Kubernetes API (Go: `kubetypes.KubernetesCapRule`).
///
/// Every field is optional. Decoding follows Go's `encoding/json`, which Tailscale uses: unknown
/// keys are ignored, keys match case-insensitively, and `null` is the zero value (see
/// [`RuleError`](crate::RuleError) for what is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesCapRule {
    /// How to impersonate the caller (`impersonate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonate: Option<ImpersonateRule>,
    /// Tags of the recorders to use (`recorder`). Control resolves them into
    /// [`recorder_addrs`](Self::recorder_addrs); on their own they select no recorder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recorder: Vec<String>,
    /// Recorder addresses, `ip:port` or `[ipv6]:port` (`recorderAddrs`). Any address makes
    /// exec/attach sessions of the caller recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recorder_addrs: Vec<SocketAddr>,
    /// Refuse sessions that cannot be recorded (`enforceRecorder`); the default fails open.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enforce_recorder: bool,
    /// Send API request events to the recorders (`enableEvents`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_events: bool,
    /// Record what the caller sends on stdin as `i` events (`recordInput`; our extension, off by
    /// default). Tailscale's proxy never records input.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub record_input: bool,
    /// Store the bytes of each port-forward connection, not only its audit events
    /// (`recordPortForwardData`; our extension, off by default).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub record_port_forward_data: bool,
}

/// How to impersonate a caller (Go: `kubetypes.ImpersonateRule`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImpersonateRule {
    /// Kubernetes groups to impersonate the caller as, in order (`groups`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl<'de> Deserialize<'de> for KubernetesCapRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        decode_rule(&value).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ImpersonateRule {
    /// A `null` reads as the empty rule.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        decode_impersonate(&value, String::new())
            .map(Option::unwrap_or_default)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serde_round_trip_uses_camel_case() {
        let rule = KubernetesCapRule {
            impersonate: Some(ImpersonateRule {
                groups: vec!["g".into()],
            }),
            recorder: vec!["tag:rec".into()],
            recorder_addrs: vec!["[fd7a::1]:80".parse().unwrap()],
            enforce_recorder: true,
            enable_events: true,
            record_input: true,
            record_port_forward_data: false,
        };
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(
            json,
            r#"{"impersonate":{"groups":["g"]},"recorder":["tag:rec"],"recorderAddrs":["[fd7a::1]:80"],"enforceRecorder":true,"enableEvents":true,"recordInput":true}"#
        );
        assert_eq!(
            serde_json::from_str::<KubernetesCapRule>(&json).unwrap(),
            rule
        );
        assert_eq!(
            serde_json::to_string(&KubernetesCapRule::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn serde_errors_keep_the_reason() {
        let err = serde_json::from_str::<KubernetesCapRule>(r#"{"impersonate":[]}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected an object at impersonate"),
            "{err}"
        );
        let rule: ImpersonateRule = serde_json::from_str("null").unwrap();
        assert_eq!(rule, ImpersonateRule::default());
    }
}
