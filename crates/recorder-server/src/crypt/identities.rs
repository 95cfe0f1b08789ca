//! `play --identity FILE`: the auditor's secret keys.

use std::path::Path;

use age::x25519::Identity;

use super::{parse_key_file, KeyError};

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
        let keys = parse_key_file(path, "identity", |path, line, reason| {
            KeyError::IdentityLine { path, line, reason }
        })?;
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

#[cfg(test)]
mod tests {
    use age::secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn reads_age_keygen_files_and_never_shows_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = Identity::generate();
        let secret = key.to_string().expose_secret().to_owned();
        let path = dir.path().join("key");
        // As age-keygen writes it, with Windows line ends and indentation tolerated.
        std::fs::write(
            &path,
            format!("# created: now\r\n# public key: x\r\n\r\n  {secret}  \r\n"),
        )
        .expect("write");
        let identities = Identities::read(&path).expect("an identity file");
        assert_eq!(identities.recipients(), [key.to_public().to_string()]);
        assert!(!format!("{identities:?}").contains(&secret[15..]));

        std::fs::write(&path, "# only comments\n").expect("write");
        let error = Identities::read(&path).expect_err("no key").to_string();
        assert!(error.ends_with(": no identity in it"), "{error}");

        // A public key where the secret belongs: named by line, the line not repeated.
        std::fs::write(&path, format!("{}\n", key.to_public())).expect("write");
        let error = Identities::read(&path)
            .expect_err("a recipient")
            .to_string();
        assert!(
            error.contains("line 1: not an age X25519 identity"),
            "{error}"
        );
        assert!(!error.contains("age1"), "{error}");
    }
}
