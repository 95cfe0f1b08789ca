//! Who a request is from: the apiserver's `user.Info`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `system:anonymous`, the user of requests without credentials.
pub(crate) const ANONYMOUS: &str = "system:anonymous";
/// Group of every authenticated user.
pub(crate) const ALL_AUTHENTICATED: &str = "system:authenticated";
/// Group of anonymous requests.
pub(crate) const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// Group whose members every RBAC check allows.
pub(crate) const MASTERS: &str = "system:masters";

/// A user as the apiserver sees it, shaped like `authentication.k8s.io/v1` `UserInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// User name.
    pub username: String,
    /// UID, when the authenticator or impersonation supplied one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Groups, in the order the apiserver lists them.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra attributes (from `Impersonate-Extra-*`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The identity of a request without credentials.
    pub(crate) fn anonymous() -> Self {
        UserInfo {
            username: ANONYMOUS.to_owned(),
            uid: None,
            groups: vec![ALL_UNAUTHENTICATED.to_owned()],
            extra: BTreeMap::new(),
        }
    }

    /// An authenticated user: `system:authenticated` is appended unless already present, as the
    /// apiserver's `AuthenticatedGroupAdder` does.
    pub(crate) fn authenticated(username: &str, uid: Option<&str>, groups: &[String]) -> Self {
        let mut groups = groups.to_vec();
        if !groups.iter().any(|g| g == ALL_AUTHENTICATED) {
            groups.push(ALL_AUTHENTICATED.to_owned());
        }
        UserInfo {
            username: username.to_owned(),
            uid: uid.map(str::to_owned),
            groups,
            extra: BTreeMap::new(),
        }
    }

    pub(crate) fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}
