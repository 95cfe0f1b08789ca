//! The subset of tailscaled's status (Go: `ipnstate.Status`) that a proxy needs.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

/// The daemon's status, as answered by `GET /localapi/v0/status?peers=false`.
///
/// Only the fields a proxy uses are kept; unknown fields are ignored, and absent or `null` fields
/// read as empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node (`Self`); absent before the node has logged in.
    #[serde(rename = "Self", default)]
    pub self_status: Option<SelfStatus>,
    /// The names this node may get TLS certificates for (`CertDomains`, without trailing dots);
    /// empty when HTTPS certificates are not enabled for the tailnet.
    #[serde(rename = "CertDomains", default, deserialize_with = "null_as_default")]
    pub cert_domains: Vec<String>,
    /// The backend state (`BackendState`): `"Running"` when connected, otherwise e.g.
    /// `"NeedsLogin"`, `"Stopped"`, `"Starting"`.
    #[serde(rename = "BackendState", default, deserialize_with = "null_as_default")]
    pub backend_state: String,
}

/// This node's part of [`Status`] (Go: `ipnstate.PeerStatus` for `Self`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfStatus {
    /// The node's stable ID (`ID`, Go: `tailcfg.StableNodeID`).
    #[serde(rename = "ID", default, deserialize_with = "null_as_default")]
    pub id: String,
    /// The node's MagicDNS name, fully qualified with a trailing dot (`DNSName`).
    #[serde(rename = "DNSName", default, deserialize_with = "null_as_default")]
    pub dns_name: String,
    /// The node's tailnet addresses (`TailscaleIPs`).
    #[serde(rename = "TailscaleIPs", default, deserialize_with = "null_as_default")]
    pub tailscale_ips: Vec<IpAddr>,
}

impl Status {
    /// Whether the backend is connected to the tailnet (`BackendState == "Running"`).
    pub fn is_running(&self) -> bool {
        self.backend_state == "Running"
    }
}

/// Go encodes empty slices and strings as `null` when they were never set; read those as empty.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nulls_read_as_empty() {
        let st: Status = serde_json::from_str(
            r#"{"BackendState":"NeedsLogin","Self":{"DNSName":"","TailscaleIPs":null},"CertDomains":null}"#,
        )
        .unwrap();
        assert!(st.cert_domains.is_empty());
        assert!(!st.is_running());
        assert_eq!(st.self_status.unwrap().tailscale_ips, Vec::<IpAddr>::new());
    }

    #[test]
    fn absent_self_is_none() {
        let st: Status = serde_json::from_str(r#"{"BackendState":"Stopped"}"#).unwrap();
        assert_eq!(st.self_status, None);
    }
}
