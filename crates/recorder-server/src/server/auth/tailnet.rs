//! Tailnet callers: who they are (tailscaled's whois) and what the capability
//! `tailscale.com/cap/kube-recorder` lets them do.
//!
//! Each element of the capability is a rule, an object with `write` (a boolean) and/or `view`
//! (`{"namespaces": [...], "users": [...]}`, each a list of names or `"*"`; at least one of the
//! two; a missing one does not restrict). A caller may write when some rule has `"write": true`
//! and may view the union of its rules' `view`s. Anything else — another type, an unknown key,
//! an empty list or name — makes the whole capability unreadable, and the caller is refused.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use localapi::{LocalApiClient, LocalApiError};
use serde_json::Value;

use super::scope::{Names, ViewGrant};

/// The capability naming what a tailnet caller may do with the recorder.
pub const RECORDER_CAPABILITY: &str = "tailscale.com/cap/kube-recorder";

/// Most whois answers kept.
const MAX_CACHED: usize = 4096;

/// What the capability grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Grants {
    pub(crate) write: bool,
    pub(crate) view: Vec<ViewGrant>,
}

/// A tailnet caller as whois describes it.
#[derive(Debug, Clone)]
pub(crate) struct TailnetCaller {
    /// The login name, or the node name of a tagged node.
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) tags: Vec<String>,
    /// The capability's grants, or why it cannot be read.
    pub(crate) grants: Result<Grants, String>,
}

/// Reads the capability's rules.
pub(crate) fn parse_rules(rules: &[Value]) -> Result<Grants, String> {
    let mut grants = Grants::default();
    for (index, rule) in rules.iter().enumerate() {
        let at = |what: &str| format!("{RECORDER_CAPABILITY} rule {index}: {what}");
        let Value::Object(rule) = rule else {
            return Err(at(&format!("expected an object, found {rule}")));
        };
        if rule.is_empty() {
            return Err(at("grants nothing (expected \"write\" and/or \"view\")"));
        }
        for (key, value) in rule {
            match (key.as_str(), value) {
                ("write", Value::Bool(write)) => grants.write |= write,
                ("write", other) => {
                    return Err(at(&format!(
                        "\"write\" must be true or false, found {other}"
                    )))
                }
                ("view", Value::Object(view)) => {
                    if view.is_empty() {
                        return Err(at(
                            "\"view\" names nothing (expected \"namespaces\" and/or \"users\")",
                        ));
                    }
                    let mut grant = ViewGrant::all();
                    for (key, value) in view {
                        let names =
                            names(value).map_err(|e| at(&format!("\"view\".\"{key}\": {e}")))?;
                        match key.as_str() {
                            "namespaces" => grant.namespaces = names,
                            "users" => grant.users = names,
                            other => {
                                return Err(at(&format!(
                                    "unknown key \"view\".{other:?} (expected \"namespaces\", \"users\")"
                                )))
                            }
                        }
                    }
                    grants.view.push(grant);
                }
                ("view", other) => {
                    return Err(at(&format!("\"view\" must be an object, found {other}")))
                }
                (other, _) => {
                    return Err(at(&format!(
                        "unknown key {other:?} (expected \"write\", \"view\")"
                    )))
                }
            }
        }
    }
    Ok(grants)
}

/// `"*"`, or a non-empty list of non-empty names (`"*"` among them meaning all).
fn names(value: &Value) -> Result<Names, String> {
    match value {
        Value::String(all) if all == "*" => Ok(Names::All),
        Value::Array(items) if !items.is_empty() => {
            let mut names = BTreeSet::new();
            for item in items {
                match item {
                    Value::String(name) if name == "*" => return Ok(Names::All),
                    Value::String(name) if !name.is_empty() => {
                        names.insert(name.clone());
                    }
                    other => return Err(format!("expected a non-empty name, found {other}")),
                }
            }
            Ok(Names::Only(names))
        }
        other => Err(format!(
            "expected \"*\" or a non-empty list of names, found {other}"
        )),
    }
}

/// The answer of one lookup.
#[derive(Debug)]
pub(crate) enum Lookup {
    Known(Arc<TailnetCaller>),
    /// tailscaled knows no node at that address.
    Unknown,
    /// tailscaled could not be asked.
    Unavailable(String),
}

/// Whois through the LocalAPI, answers kept for a short time per address.
#[derive(Debug)]
pub(crate) struct Tailnet {
    client: LocalApiClient,
    ttl: Duration,
    cache: Mutex<HashMap<SocketAddr, (Instant, Arc<TailnetCaller>)>>,
}

impl Tailnet {
    pub(crate) fn new(client: LocalApiClient, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Who is at `peer`. Answers are reused for the TTL; failures are not kept.
    pub(crate) async fn lookup(&self, peer: SocketAddr) -> Lookup {
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, caller)) = cache.get(&peer) {
                if at.elapsed() < self.ttl {
                    return Lookup::Known(caller.clone());
                }
            }
        }
        let whois = match self.client.whois(peer).await {
            Ok(whois) => whois,
            Err(LocalApiError::UnknownPeer { .. }) => return Lookup::Unknown,
            Err(error) => return Lookup::Unavailable(error.to_string()),
        };
        let description = whois.describe();
        let rules = whois
            .cap_map
            .get(RECORDER_CAPABILITY)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let caller = Arc::new(TailnetCaller {
            name: description
                .user
                .clone()
                .unwrap_or_else(|| description.node.clone()),
            node: description.node,
            tags: description.tags,
            grants: parse_rules(rules),
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            let ttl = self.ttl;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(peer, (Instant::now(), caller.clone()));
        Lookup::Known(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(value: Value) -> Result<Grants, String> {
        parse_rules(value.as_array().expect("array"))
    }

    #[test]
    fn reads_write_and_view_rules() {
        let grants = rules(json!([
            {"write": true},
            {"view": {"namespaces": ["a", "b"]}},
            {"view": {"namespaces": "*", "users": ["bob@example.com"]}},
            {"write": false, "view": {"users": ["*"]}}
        ]))
        .expect("parses");
        assert!(grants.write);
        assert_eq!(grants.view.len(), 3);
        assert_eq!(
            grants.view[0],
            ViewGrant {
                namespaces: Names::Only(["a".to_owned(), "b".to_owned()].into()),
                users: Names::All
            }
        );
        assert_eq!(grants.view[2], ViewGrant::all());
        assert_eq!(rules(json!([])), Ok(Grants::default()));
    }

    #[test]
    fn refuses_unknown_shapes() {
        for bad in [
            json!(["write"]),
            json!([{}]),
            json!([{"write": "true"}]),
            json!([{"writer": true}]),
            json!([{"view": true}]),
            json!([{"view": {}}]),
            json!([{"view": {"namespace": ["a"]}}]),
            json!([{"view": {"namespaces": []}}]),
            json!([{"view": {"namespaces": [""]}}]),
            json!([{"view": {"namespaces": [1]}}]),
            json!([{"view": {"namespaces": "a"}}]),
            json!([{"write": true}, {"view": {"users": "all"}}]),
        ] {
            assert!(rules(bad.clone()).is_err(), "{bad}");
        }
    }
}
