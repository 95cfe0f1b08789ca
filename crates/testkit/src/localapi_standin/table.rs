//! The whois table: which WhoIs document answers which caller address.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

/// The whois answers the stand-in gives, by caller address.
///
/// Keys are `"ip:port"` (IPv6 as `"[ip]:port"`), `"ip"`, or `"*"`; a lookup tries the exact
/// address, then the IP, then `"*"`. Values are served as they are (pretty-printed with tabs, like
/// tailscaled's `json.MarshalIndent`), so a test controls exactly what the client gets, including
/// values that are not a valid WhoIs at all.
#[derive(Clone, Debug, Default)]
pub struct WhoIsTable {
    entries: HashMap<String, Value>,
}

impl WhoIsTable {
    /// An empty table: every lookup answers 404.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the answer for `key` (`"ip:port"`, `"ip"` or `"*"`).
    ///
    /// Addresses are normalised (`"[FD7A::1]:443"` is `"[fd7a::1]:443"`); a key that is no address
    /// is kept as given and never matches.
    pub fn insert(&mut self, key: impl Into<String>, whois: Value) {
        let key = key.into();
        self.entries
            .insert(normalize_key(&key).unwrap_or(key), whois);
    }

    /// Reads a table from a YAML or JSON file (JSON when the name ends in `.json`): a map from key
    /// to either an inline WhoIs object or a string, the path of a JSON file holding the WhoIs
    /// (relative paths are relative to the table file's directory).
    ///
    /// In YAML, quote `"*"` (a bare `*` is an alias) and IPv6 keys (a bare `[` starts a list).
    pub fn from_file(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading whois table {}", path.display()))?;
        let raw: BTreeMap<String, Value> = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        } else {
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut table = Self::new();
        for (key, value) in raw {
            let normalized = normalize_key(&key).with_context(|| {
                format!(
                    "{}: key {key:?} is not \"ip:port\", \"ip\" or \"*\"",
                    path.display()
                )
            })?;
            let whois = match value {
                Value::String(file) => {
                    let file = dir.join(file);
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("reading whois for {key:?}"))?;
                    serde_json::from_slice(&bytes)
                        .with_context(|| format!("parsing {} for {key:?}", file.display()))?
                }
                inline => inline,
            };
            table.entries.insert(normalized, whois);
        }
        Ok(table)
    }

    /// The answer for a caller at `addr` (port 0 means "by IP only", as in tailscaled).
    pub fn lookup(&self, addr: SocketAddr) -> Option<&Value> {
        let exact = (addr.port() != 0)
            .then(|| self.entries.get(&addr.to_string()))
            .flatten();
        exact
            .or_else(|| self.entries.get(&addr.ip().to_string()))
            .or_else(|| self.entries.get("*"))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn normalize_key(key: &str) -> Option<String> {
    if key == "*" {
        return Some(key.to_owned());
    }
    key.parse::<SocketAddr>()
        .map(|a| a.to_string())
        .or_else(|_| key.parse::<IpAddr>().map(|ip| ip.to_string()))
        .ok()
}
