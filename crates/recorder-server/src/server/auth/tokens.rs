//! `--viewer-tokens FILE`: bearer tokens of viewers, one per line, `TOKEN NAME NAMESPACES`;
//! read again when the file changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::scope::{Names, ViewGrant};

/// Shortest token accepted: a guessable token is no protection.
pub(crate) const MIN_TOKEN_LEN: usize = 16;

/// One line of the file.
#[derive(Debug, Clone)]
pub(crate) struct TokenEntry {
    token: Vec<u8>,
    pub(crate) name: String,
    pub(crate) namespaces: Names,
}

impl TokenEntry {
    pub(crate) fn grant(&self) -> ViewGrant {
        ViewGrant {
            namespaces: self.namespaces.clone(),
            users: Names::All,
        }
    }
}

/// Reads a token file: blank lines and `#` comments are skipped; every other line is exactly
/// `TOKEN NAME NAMESPACES` (whitespace-separated), NAMESPACES `*` or comma-separated names;
/// tokens are at least [`MIN_TOKEN_LEN`] characters and distinct.
pub(crate) fn parse(text: &str) -> Result<Vec<TokenEntry>, String> {
    let mut entries: Vec<TokenEntry> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [token, name, namespaces] = fields[..] else {
            return Err(format!(
                "line {number}: expected TOKEN NAME NAMESPACES, found {} fields",
                fields.len()
            ));
        };
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "line {number}: the token is shorter than {MIN_TOKEN_LEN} characters"
            ));
        }
        if entries.iter().any(|e| e.token == token.as_bytes()) {
            return Err(format!("line {number}: the token of an earlier line again"));
        }
        let namespaces = Names::from_list(namespaces).map_err(|e| format!("line {number}: {e}"))?;
        entries.push(TokenEntry {
            token: token.as_bytes().to_vec(),
            name: name.to_owned(),
            namespaces,
        });
    }
    Ok(entries)
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What tells that the file changed.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// The tokens in force, read again when the file changes.
#[derive(Debug)]
pub(crate) struct ViewerTokens {
    path: PathBuf,
    current: RwLock<Arc<Vec<TokenEntry>>>,
}

impl ViewerTokens {
    /// Reads `path`; a file that cannot be read or parsed is an error.
    pub(crate) fn load(path: &Path) -> Result<Arc<Self>, String> {
        let entries = read(path)?;
        Ok(Arc::new(Self {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(entries)),
        }))
    }

    /// The entry of `token`, if any.
    pub(crate) fn find(&self, token: &str) -> Option<TokenEntry> {
        let entries = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut found = None;
        for entry in entries.iter() {
            if same(&entry.token, token.as_bytes()) && found.is_none() {
                found = Some(entry.clone());
            }
        }
        found
    }

    /// Checks the file every `interval` and reads it again when it changed; a file that cannot
    /// be read or parsed leaves the tokens in force (logged).
    pub(crate) fn watch(
        self: &Arc<Self>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let tokens = self.clone();
        tokio::spawn(async move {
            let mut seen = stamp(&tokens.path);
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                let now = stamp(&tokens.path);
                if now == seen {
                    continue;
                }
                seen = now;
                let path = tokens.path.clone();
                match tokio::task::spawn_blocking(move || read(&path)).await {
                    Ok(Ok(entries)) => {
                        tracing::info!(
                            file = %tokens.path.display(),
                            tokens = entries.len(),
                            "viewer tokens reloaded"
                        );
                        *tokens
                            .current
                            .write()
                            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(entries);
                    }
                    Ok(Err(error)) => tracing::error!(
                        file = %tokens.path.display(),
                        %error,
                        "viewer tokens not reloaded; the earlier tokens stay in force"
                    ),
                    Err(error) => tracing::error!(%error, "viewer tokens not reloaded"),
                }
            }
        })
    }
}

fn read(path: &Path) -> Result<Vec<TokenEntry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_strictly() {
        let entries =
            parse("# viewers\n\n0123456789abcdef alice a,b\n  fedcba9876543210\tops *  \n")
                .expect("parses");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "alice");
        assert_eq!(
            entries[0].namespaces,
            Names::Only(["a".to_owned(), "b".to_owned()].into())
        );
        assert_eq!(entries[1].namespaces, Names::All);
        for bad in [
            "0123456789abcdef alice",
            "0123456789abcdef alice a extra",
            "short alice a",
            "0123456789abcdef alice a\n0123456789abcdef bob b",
            "0123456789abcdef alice a,,b",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compares_whole_tokens() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
