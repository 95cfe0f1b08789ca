//! What a viewer may see: namespaces and users, and who the viewer is.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::recording_meta::RecordingMeta;

/// A set of names, or all of them (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Names {
    /// Every name, and also no name at all.
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

impl Names {
    /// Reads `*` or `a,b,c` (a token file's namespace column).
    pub(crate) fn from_list(text: &str) -> Result<Names, String> {
        if text == "*" {
            return Ok(Names::All);
        }
        let mut names = BTreeSet::new();
        for name in text.split(',') {
            if name.is_empty() {
                return Err(format!("{text:?}: an empty name (expected `*` or a,b,c)"));
            }
            if name == "*" {
                return Err(format!("{text:?}: `*` must stand alone"));
            }
            names.insert(name.to_owned());
        }
        Ok(Names::Only(names))
    }

    fn allows(&self, name: Option<&str>) -> bool {
        match self {
            Names::All => true,
            Names::Only(names) => name.is_some_and(|name| names.contains(name)),
        }
    }

    fn allows_any<'a>(&self, mut names: impl Iterator<Item = &'a str>) -> bool {
        match self {
            Names::All => true,
            Names::Only(allowed) => names.any(|name| allowed.contains(name)),
        }
    }
}

/// One grant of viewing: recordings and events in one of `namespaces` by one of `users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewGrant {
    pub(crate) namespaces: Names,
    pub(crate) users: Names,
}

impl ViewGrant {
    /// Everything.
    pub(crate) fn all() -> Self {
        ViewGrant {
            namespaces: Names::All,
            users: Names::All,
        }
    }
}

/// How a viewer was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// A bearer token from `--viewer-tokens`.
    Token,
    /// The tailnet (whois and the `tailscale.com/cap/kube-recorder` capability).
    Tailnet,
    /// Not at all: `--read-anonymous`.
    Anonymous,
}

impl Via {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Via::Token => "token",
            Via::Tailnet => "tailnet",
            Via::Anonymous => "anonymous",
        }
    }
}

/// A caller allowed on the read surface, and what it may see: the union of its grants.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The token's NAME, the tailnet login name (or node name of a tagged node), or `anonymous`.
    pub(crate) name: String,
    pub(crate) via: Via,
    pub(crate) peer: SocketAddr,
    /// A tailnet viewer's node and tags, for the audit event's `source`.
    pub(crate) node: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) grants: Vec<ViewGrant>,
}

impl Viewer {
    /// Whether nothing is hidden from this viewer.
    pub(crate) fn sees_all(&self) -> bool {
        self.grants
            .iter()
            .any(|g| g.namespaces == Names::All && g.users == Names::All)
    }

    /// The one namespace all of the viewer's grants are limited to, if there is one.
    pub(crate) fn only_namespace(&self) -> Option<&str> {
        let mut only = None;
        for grant in &self.grants {
            let Names::Only(names) = &grant.namespaces else {
                return None;
            };
            if names.len() != 1 {
                return None;
            }
            let name = names.iter().next().map(String::as_str);
            if only.is_some() && only != name {
                return None;
            }
            only = name;
        }
        only
    }

    fn may_see(&self, namespace: Option<&str>, users: &[&str]) -> bool {
        self.grants.iter().any(|grant| {
            grant.namespaces.allows(namespace) && grant.users.allows_any(users.iter().copied())
        })
    }

    /// Whether the viewer may see this recording: its header's namespace, and its caller's login
    /// name, tags or node.
    pub(crate) fn may_see_recording(&self, meta: &RecordingMeta) -> bool {
        let mut users: Vec<&str> = meta.src_node_tags.iter().map(String::as_str).collect();
        users.extend(meta.src_node_user.as_deref());
        users.extend(meta.src_node.as_deref());
        self.may_see(meta.namespace.as_deref(), &users)
    }

    /// Whether the viewer may see this stored event: `kubernetes.Namespace`, and
    /// `source.nodeUser`, `source.nodeTags` or `source.node`. An event without a namespace
    /// (cluster-scoped requests, the recorder's own view events) is seen only by viewers of all
    /// namespaces.
    pub(crate) fn may_see_event(&self, raw: &RawValue) -> bool {
        if self.sees_all() {
            return true;
        }
        let Ok(Value::Object(event)) = serde_json::from_str::<Value>(raw.get()) else {
            return false;
        };
        let field = |object: Option<&Value>, key: &str| -> Option<String> {
            let object = object?.as_object()?;
            object
                .get(key)
                .or_else(|| {
                    object
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                })
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let namespace = field(event.get("kubernetes"), "Namespace").filter(|n| !n.is_empty());
        let source = event.get("source");
        let mut users: Vec<String> = source
            .and_then(|s| s.get("nodeTags"))
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        users.extend(field(source, "nodeUser"));
        users.extend(field(source, "node"));
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        self.may_see(namespace.as_deref(), &users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(grants: Vec<ViewGrant>) -> Viewer {
        Viewer {
            name: "v".into(),
            via: Via::Token,
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            node: None,
            tags: Vec::new(),
            grants,
        }
    }

    fn only(names: &[&str]) -> Names {
        Names::Only(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn grants_are_unions_of_namespace_and_user_conditions() {
        let v = viewer(vec![
            ViewGrant {
                namespaces: only(&["a"]),
                users: Names::All,
            },
            ViewGrant {
                namespaces: Names::All,
                users: only(&["bob@example.com"]),
            },
        ]);
        assert!(!v.sees_all());
        assert_eq!(v.only_namespace(), None);
        assert!(v.may_see(Some("a"), &[]));
        assert!(!v.may_see(Some("b"), &["alice@example.com"]));
        assert!(v.may_see(Some("b"), &["bob@example.com"]));
        assert!(v.may_see(None, &["bob@example.com"]));
        assert!(!v.may_see(None, &[]));
        let event = |text: &str| RawValue::from_string(text.to_owned()).expect("json");
        assert!(v.may_see_event(&event(r#"{"kubernetes":{"Namespace":"a"}}"#)));
        assert!(!v.may_see_event(&event(
            r#"{"kubernetes":{"Namespace":"b"},"source":{"nodeUser":"alice@example.com"}}"#
        )));
        assert!(v.may_see_event(&event(
            r#"{"kubernetes":{"namespace":"b"},"source":{"nodeTags":["bob@example.com"]}}"#
        )));
        assert!(!v.may_see_event(&event(r#"{"type":"kube-recorder-view"}"#)));
        let a = viewer(vec![ViewGrant {
            namespaces: only(&["a"]),
            users: Names::All,
        }]);
        assert_eq!(a.only_namespace(), Some("a"));
        assert!(viewer(vec![ViewGrant::all()]).sees_all());
    }

    #[test]
    fn reads_namespace_lists() {
        assert_eq!(Names::from_list("*"), Ok(Names::All));
        assert_eq!(Names::from_list("a,b"), Ok(only(&["a", "b"])));
        assert!(Names::from_list("a,,b").is_err());
        assert!(Names::from_list("a,*").is_err());
    }
}
