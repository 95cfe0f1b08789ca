//! The identity answer of tailscaled's LocalAPI `whois` (Go: `apitype.WhoIsResponse`).
//!
//! Only the fields the proxy needs are kept; every other field is ignored, so newer tailscaled
//! versions that add fields keep working. Field names are Go's (`"Node"`, `"StableID"`, ...) as
//! tailscaled writes them (`docs/protocols.md` section 4).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::caller::CallerDescription;

/// Capability grants that apply to a caller: capability name to its values, each value one raw
/// JSON document (Go: `tailcfg.PeerCapMap`, `map[PeerCapability][]RawMessage`).
///
/// Values are kept as raw JSON and decoded only when a capability is read, as Go's
/// `tailcfg.UnmarshalCapJSON` does, so an unrelated malformed capability never matters.
pub type CapMap = BTreeMap<String, Vec<serde_json::Value>>;

/// Why a `whois` answer could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhoIsError {
    /// The body is not JSON of the expected shape (for example `Node` is missing or not an
    /// object, or a field has the wrong type).
    #[error("invalid whois response: {0}")]
    Json(#[from] serde_json::Error),
}

/// Who a caller is: the tailnet node it connects from, the node owner's profile and the
/// capability grants that apply to it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WhoIs {
    /// The caller's node.
    #[serde(rename = "Node")]
    pub node: Node,
    /// The profile of the user that owns the node; for a tagged node the `tagged-devices`
    /// pseudo-user.
    #[serde(rename = "UserProfile")]
    pub user_profile: UserProfile,
    /// The capability grants of the caller; `null` or missing reads as empty, and a capability
    /// whose value list is `null` reads as present with no values.
    #[serde(rename = "CapMap", default, deserialize_with = "cap_map_or_empty")]
    pub cap_map: CapMap,
}

/// A tailnet node (Go: `tailcfg.Node`, the fields the proxy needs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Node {
    /// Numeric node id (`"ID"`).
    #[serde(rename = "ID", default)]
    pub id: i64,
    /// Stable node id (`"StableID"`), what recordings and events name the node by.
    #[serde(rename = "StableID", default)]
    pub stable_id: String,
    /// The node's MagicDNS FQDN with its trailing dot (`"Name"`), e.g. `host.tailnet.ts.net.`.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// Numeric id of the owning user (`"User"`).
    #[serde(rename = "User", default)]
    pub user: i64,
    /// ACL tags (`"Tags"`); non-empty means the node is tagged and acts as itself, not as a user.
    #[serde(
        rename = "Tags",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    /// The node's tailnet addresses as prefixes (`"Addresses"`, e.g. `100.64.0.7/32`).
    #[serde(rename = "Addresses", default, deserialize_with = "null_as_default")]
    pub addresses: Vec<String>,
}

impl Node {
    /// Whether the node is tagged (Go: `Node.IsTagged`, `len(Tags) > 0`).
    pub fn is_tagged(&self) -> bool {
        !self.tags.is_empty()
    }

    /// The node's FQDN without its trailing dot, e.g. `host.tailnet.ts.net`.
    pub fn name_without_trailing_dot(&self) -> &str {
        self.name.strip_suffix('.').unwrap_or(&self.name)
    }
}

/// A user's profile (Go: `tailcfg.UserProfile`, the fields the proxy needs). Missing fields read
/// as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserProfile {
    /// Numeric user id (`"ID"`).
    #[serde(rename = "ID", default)]
    pub id: i64,
    /// Login name (`"LoginName"`), e.g. `alice@example.com`; `tagged-devices` for tagged nodes.
    #[serde(rename = "LoginName", default)]
    pub login_name: String,
    /// Display name (`"DisplayName"`).
    #[serde(rename = "DisplayName", default)]
    pub display_name: String,
}

impl WhoIs {
    /// Reads a `whois` answer body. Unknown fields are ignored; `Node` and `UserProfile` must
    /// be objects.
    ///
    /// # Errors
    /// [`WhoIsError::Json`] when the body is not JSON of that shape.
    pub fn from_json(bytes: &[u8]) -> Result<WhoIs, WhoIsError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// The caller as session recordings and API events describe it.
    pub fn describe(&self) -> CallerDescription {
        CallerDescription::of(self)
    }
}

/// Go decodes `null` into a slice as an empty slice; serde would reject it.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `CapMap` may be `null`, and so may each capability's value list.
fn cap_map_or_empty<'de, D>(deserializer: D) -> Result<CapMap, D::Error>
where
    D: Deserializer<'de>,
{
    let raw =
        Option::<BTreeMap<String, Option<Vec<serde_json::Value>>>>::deserialize(deserializer)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(cap, values)| (cap, values.unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn minimal_answer_with_null_cap_map_and_tags() {
        let who = WhoIs::from_json(
            br#"{"Node":{"Name":"n.ts.net.","Tags":null,"Addresses":null},"UserProfile":{},"CapMap":null}"#,
        )
        .unwrap();
        assert!(who.cap_map.is_empty());
        assert!(!who.node.is_tagged());
        assert_eq!(who.node.name_without_trailing_dot(), "n.ts.net");
        assert_eq!(who.user_profile, UserProfile::default());
    }

    #[test]
    fn missing_cap_map_is_empty_and_null_values_are_no_values() {
        let who = WhoIs::from_json(br#"{"Node":{},"UserProfile":{}}"#).unwrap();
        assert!(who.cap_map.is_empty());
        let who = WhoIs::from_json(br#"{"Node":{},"UserProfile":{},"CapMap":{"x":null}}"#).unwrap();
        assert_eq!(who.cap_map.get("x"), Some(&Vec::new()));
    }

    #[test]
    fn node_is_required() {
        let err = WhoIs::from_json(br#"{"UserProfile":{}}"#).unwrap_err();
        assert!(err.to_string().contains("Node"), "{err}");
        let err = WhoIs::from_json(br#"{"Node":null,"UserProfile":{}}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid whois response"),
            "{err}"
        );
    }

    #[test]
    fn name_without_dot_leaves_undotted_names() {
        let node = Node {
            name: "plain".into(),
            ..Node::default()
        };
        assert_eq!(node.name_without_trailing_dot(), "plain");
        let node = Node {
            name: "a.b..".into(),
            ..Node::default()
        };
        assert_eq!(node.name_without_trailing_dot(), "a.b.");
    }

    #[test]
    fn round_trips_through_serde() {
        let who = WhoIs::from_json(
            br#"{"Node":{"ID":1,"StableID":"s","Name":"n.","User":2,"Tags":["tag:a"],"Addresses":["100.64.0.1/32"]},
                 "UserProfile":{"ID":2,"LoginName":"l","DisplayName":"d"},
                 "CapMap":{"c":[{"k":1}]}}"#,
        )
        .unwrap();
        let again = WhoIs::from_json(&serde_json::to_vec(&who).unwrap()).unwrap();
        assert_eq!(who, again);
    }
}
