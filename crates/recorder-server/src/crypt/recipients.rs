//! `--encrypt-to` and `--encrypt-to-file`: whom recordings are encrypted to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::x25519::Recipient;

use super::{parse_key_file, KeyError};

/// The X25519 public keys recordings are encrypted to: every one of them can decrypt every
/// recording. Parsed once at start-up, so a bad key stops `serve` before it accepts anything.
#[derive(Clone)]
pub struct Recipients {
    keys: Arc<[Recipient]>,
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| k.to_string()))
            .finish()
    }
}

impl Recipients {
    /// The recipients given as `age1...` strings and in recipients files (as `age -R` reads
    /// them: one per line, `#` comments and blank lines ignored). `None` when none is given at
    /// all; an error names the first value or line that is not an X25519 recipient, and a file
    /// naming none.
    pub fn parse(values: &[String], files: &[PathBuf]) -> Result<Option<Self>, KeyError> {
        let mut keys = Vec::new();
        for value in values {
            if value
                .trim()
                .to_ascii_uppercase()
                .starts_with("AGE-SECRET-KEY-")
            {
                return Err(KeyError::SecretKeyGiven);
            }
            keys.push(
                value
                    .trim()
                    .parse::<Recipient>()
                    .map_err(|reason| KeyError::Recipient {
                        value: value.clone(),
                        reason: reason.to_owned(),
                    })?,
            );
        }
        for path in files {
            keys.extend(Self::read_file(path)?);
        }
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self { keys: keys.into() }))
    }

    fn read_file(path: &Path) -> Result<Vec<Recipient>, KeyError> {
        parse_key_file(path, "recipient", |path, line, reason| {
            KeyError::RecipientLine { path, line, reason }
        })
    }

    /// The recipients as `age1...` strings, for the log.
    pub fn to_strings(&self) -> Vec<String> {
        self.keys.iter().map(ToString::to_string).collect()
    }

    /// A fresh encryptor (a new file key) for one file.
    pub(crate) fn encryptor(&self) -> std::io::Result<age::Encryptor> {
        age::Encryptor::with_recipients(self.keys.iter().map(|k| k as &dyn age::Recipient))
            .map_err(|error| std::io::Error::other(format!("cannot encrypt: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_files_add_up_and_the_first_bad_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys: Vec<String> = (0..3)
            .map(|_| age::x25519::Identity::generate().to_public().to_string())
            .collect();
        let file = dir.path().join("recipients");
        std::fs::write(&file, format!("# auditors\n\n{}\n  {}\n", keys[1], keys[2]))
            .expect("write");
        let recipients = Recipients::parse(&keys[..1], std::slice::from_ref(&file))
            .expect("valid")
            .expect("some");
        assert_eq!(recipients.to_strings(), keys);
        assert!(Recipients::parse(&[], &[]).expect("none").is_none());

        let error = Recipients::parse(&["age1typo".to_owned()], &[])
            .expect_err("not a recipient")
            .to_string();
        assert!(
            error.starts_with("--encrypt-to \"age1typo\": not an age X25519 recipient"),
            "{error}"
        );
        // A secret key given by mistake is refused without being repeated (logs keep errors).
        let secret = age::secrecy::ExposeSecret::expose_secret(
            &age::x25519::Identity::generate().to_string(),
        )
        .to_owned();
        let error = Recipients::parse(std::slice::from_ref(&secret), &[])
            .expect_err("a secret key is no recipient")
            .to_string();
        assert!(error.contains("that is an age secret key"), "{error}");
        assert!(!error.contains(&secret[15..]), "{error}");
        let missing = dir.path().join("missing");
        let error = Recipients::parse(&[], &[missing])
            .expect_err("missing")
            .to_string();
        assert!(error.starts_with("cannot read "), "{error}");
    }
}
