//! `play --identity FILE`: the auditor's secret keys.

use std::path::Path;

use age::x25519::Identity;

use super::{key_lines, read_key_file, KeyError};

/// The X25519 secret keys of an identity file, as `age-keygen` writes it: `AGE-SECRET-KEY-1...`
/// lines, `#` comments and blank lines ignored.
pub struct Identities {
    keys: Vec<Identity>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret keys themselves.
        write!(f, "Identities({} key(s))", self.keys.len())
    }
}

impl Identities {
    /// Reads the identity file at `path`. An error names the line that is not an identity
    /// (without repeating it), or says the file has none.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let text = read_key_file(path)?;
        let mut keys = Vec::new();
        for (line, value) in key_lines(&text) {
            keys.push(
                value
                    .parse::<Identity>()
                    .map_err(|reason| KeyError::IdentityLine {
                        path: path.to_owned(),
                        line,
                        reason: reason.to_owned(),
                    })?,
            );
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                path: path.to_owned(),
                what: "identity",
            });
        }
        Ok(Self { keys })
    }

    /// The public keys (`age1...`) these identities decrypt for.
    pub fn recipients(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }

    pub(crate) fn as_dyn(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k as &dyn age::Identity)
    }
}
