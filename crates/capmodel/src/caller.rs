//! The caller as session recordings and API events name it.
//!
//! Tailscale: the `CastHeader` fields `srcNode`, `srcNodeID`, `srcNodeUser`, `srcNodeUserID`,
//! `srcNodeTags` (`sessionrecording`), and the event `source` object (`docs/protocols.md`
//! section 5).

use crate::whois::WhoIs;

/// The caller as recorders describe it: its node and either its owner or its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerDescription {
    /// Node FQDN without its trailing dot (`srcNode`).
    pub node: String,
    /// Node stable id (`srcNodeID`).
    pub node_id: String,
    /// Owner's login name for a user-owned node (`srcNodeUser`); `None` for a tagged node.
    pub user: Option<String>,
    /// Owner's user id, `Node.User`, for a user-owned node (`srcNodeUserID`); `None` for a
    /// tagged node.
    pub user_id: Option<i64>,
    /// The node's tags for a tagged node (`srcNodeTags`); empty for a user-owned node.
    pub tags: Vec<String>,
}

impl CallerDescription {
    pub(crate) fn of(who: &WhoIs) -> CallerDescription {
        let tagged = who.node.is_tagged();
        CallerDescription {
            node: who.node.name_without_trailing_dot().to_owned(),
            node_id: who.node.stable_id.clone(),
            user: (!tagged).then(|| who.user_profile.login_name.clone()),
            user_id: (!tagged).then_some(who.node.user),
            tags: if tagged {
                who.node.tags.clone()
            } else {
                Vec::new()
            },
        }
    }
}
