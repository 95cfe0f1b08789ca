//! Credentials from an AWS shared-credentials file (`~/.aws/credentials` format).

use std::path::{Path, PathBuf};

/// An access key, as written in a credentials file. `Debug` does not show the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// `aws_access_key_id`.
    pub access_key_id: String,
    /// `aws_secret_access_key`.
    pub secret_access_key: String,
    /// `aws_session_token`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A credentials file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// It could not be read.
    #[error("reading S3 credentials file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It has no usable section for the profile.
    #[error("S3 credentials file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Credentials files are small; anything larger is not one.
const MAX_FILE: u64 = 64 * 1024;

impl StaticCredentials {
    /// Reads `profile`'s section (`[default]`, `[name]` or `[profile name]`) of the file.
    pub fn from_file(path: &Path, profile: &str) -> Result<Self, CredentialsError> {
        let read_error = |source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_FILE {
            return Err(CredentialsError::Invalid {
                path: path.to_owned(),
                reason: format!("{size} bytes, more than a credentials file ({MAX_FILE})"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        Self::parse(&text, profile).map_err(|reason| CredentialsError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses a credentials file's text.
    pub fn parse(text: &str, profile: &str) -> Result<Self, String> {
        let mut in_profile = false;
        let mut found = false;
        let (mut key_id, mut secret, mut token) = (None, None, None);
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(section) = line.strip_prefix('[') {
                let name = section
                    .strip_suffix(']')
                    .ok_or_else(|| format!("line {}: unterminated section header", number + 1))?
                    .trim();
                let name = name.strip_prefix("profile ").unwrap_or(name).trim();
                in_profile = name == profile;
                found |= in_profile;
                continue;
            }
            if !in_profile {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected `key = value`", number + 1))?;
            let value = value.trim().to_owned();
            match key.trim() {
                "aws_access_key_id" => key_id = Some(value),
                "aws_secret_access_key" => secret = Some(value),
                "aws_session_token" => token = Some(value),
                _ => {}
            }
        }
        if !found {
            return Err(format!("no [{profile}] section"));
        }
        match (key_id, secret) {
            (Some(access_key_id), Some(secret_access_key))
                if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
            {
                Ok(Self {
                    access_key_id,
                    secret_access_key,
                    session_token: token.filter(|t| !t.is_empty()),
                })
            }
            _ => Err(format!(
                "[{profile}] needs both aws_access_key_id and aws_secret_access_key"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n[default]\naws_access_key_id = AKIDEFAULT\n\
        aws_secret_access_key=secret1\n\n[profile ci]\naws_access_key_id = AKICI\n\
        aws_secret_access_key = secret2\naws_session_token = tok\nregion = eu-west-1\n";

    #[test]
    fn reads_the_named_profile() {
        let default = StaticCredentials::parse(FILE, "default").expect("parses");
        assert_eq!(default.access_key_id, "AKIDEFAULT");
        assert_eq!(default.secret_access_key, "secret1");
        assert_eq!(default.session_token, None);
        let ci = StaticCredentials::parse(FILE, "ci").expect("parses");
        assert_eq!(ci.access_key_id, "AKICI");
        assert_eq!(ci.session_token.as_deref(), Some("tok"));
    }

    #[test]
    fn refuses_missing_profiles_and_half_keys() {
        assert!(StaticCredentials::parse(FILE, "prod")
            .expect_err("must be refused")
            .contains("no [prod] section"));
        let half = "[default]\naws_access_key_id = AKI\n";
        assert!(StaticCredentials::parse(half, "default")
            .expect_err("must be refused")
            .contains("needs both"));
        assert!(StaticCredentials::parse("[default\n", "default")
            .expect_err("must be refused")
            .contains("unterminated"));
    }

    #[test]
    fn debug_hides_the_secrets() {
        let ci = StaticCredentials::parse(FILE, "ci").expect("parses");
        let shown = format!("{ci:?}");
        assert!(shown.contains("AKICI"));
        assert!(
            !shown.contains("secret2") && !shown.contains("tok\""),
            "{shown}"
        );
    }
}
