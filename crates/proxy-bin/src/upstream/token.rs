//! The proxy's bearer token, re-read from its file when the file changes.
//!
//! Projected service account tokens are rotated by the kubelet (by default hourly, valid for longer);
//! client-go re-reads the file at most once a minute. Here the file's metadata is checked on use at
//! most once a second ([`RECHECK_AFTER`]) and the token re-read only when its modification time, size
//! or inode changed: a rotation takes effect within a second, and requests in between cost no system
//! call (a `stat` per request was 3 % of the proxy's CPU on the default path).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;

/// A bearer token as an `Authorization` header value.
#[derive(Debug)]
pub(crate) enum BearerToken {
    /// A fixed token.
    Fixed(HeaderValue),
    /// A token file and what was read from it last.
    File {
        /// The file.
        path: PathBuf,
        /// The last value read, the metadata it was read with, and when that metadata was read.
        cached: Mutex<Option<CachedToken>>,
        /// How long a checked file is trusted unchanged.
        recheck_after: Duration,
    },
}

/// How long the token file's metadata is trusted before it is read again. A kubelet rotates a
/// projected token at 80 % of its lifetime (an hour or more), so the old one stays valid for far
/// longer than this.
pub(crate) const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// The token as last read from its file.
#[derive(Debug)]
pub(crate) struct CachedToken {
    stamp: FileStamp,
    value: HeaderValue,
    checked: Instant,
}

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// Reads the stamp of `path`.
    pub(crate) fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

/// The token cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    /// The file cannot be read.
    #[error("cannot read token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token has characters that cannot go in a header.
    #[error("token {0} is not a valid header value")]
    Invalid(String),
}

impl BearerToken {
    /// A fixed token.
    pub(crate) fn fixed(token: &str) -> Result<Self, TokenError> {
        Ok(BearerToken::Fixed(bearer(token.trim()).ok_or_else(
            || TokenError::Invalid("from the kubeconfig".into()),
        )?))
    }

    /// A token file; it is read now so a missing file is a start-up error.
    pub(crate) fn file(path: PathBuf) -> Result<Self, TokenError> {
        Self::file_checked_every(path, RECHECK_AFTER)
    }

    /// A token file whose metadata is trusted for `recheck_after` once read.
    fn file_checked_every(path: PathBuf, recheck_after: Duration) -> Result<Self, TokenError> {
        let token = BearerToken::File {
            path,
            cached: Mutex::new(None),
            recheck_after,
        };
        token.header()?;
        Ok(token)
    }

    /// The `Authorization` value to send now.
    pub(crate) fn header(&self) -> Result<HeaderValue, TokenError> {
        match self {
            BearerToken::Fixed(value) => Ok(value.clone()),
            BearerToken::File {
                path,
                cached,
                recheck_after,
            } => {
                // A poisoned lock only means another request panicked mid-update; the cache is
                // still a valid Option, so carry on with it.
                let lock = || cached.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                if let Some(token) = lock().as_ref() {
                    if now.saturating_duration_since(token.checked) < *recheck_after {
                        return Ok(token.value.clone());
                    }
                }
                // The file is read without the lock held, so a slow disk holds up only the
                // requests that find the cache due, not every request.
                let read_err = |source| TokenError::Read {
                    path: path.clone(),
                    source,
                };
                let stamp = FileStamp::of(path).map_err(read_err)?;
                if let Some(token) = lock().as_mut() {
                    if token.stamp == stamp {
                        token.checked = now;
                        return Ok(token.value.clone());
                    }
                }
                let text = std::fs::read_to_string(path).map_err(read_err)?;
                let value = bearer(text.trim())
                    .ok_or_else(|| TokenError::Invalid(format!("in {}", path.display())))?;
                let mut cached = lock();
                // A request that read the file after this one did keeps its newer read: a slow
                // reader must not put back a token the file no longer holds.
                if cached.as_ref().is_none_or(|token| token.checked <= now) {
                    *cached = Some(CachedToken {
                        stamp,
                        value: value.clone(),
                        checked: now,
                    });
                }
                Ok(value)
            }
        }
    }
}

fn bearer(token: &str) -> Option<HeaderValue> {
    if token.is_empty() {
        return None;
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_token_follows_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").expect("write");
        // Checked on every use, so the test need not wait out the interval.
        let token = BearerToken::file_checked_every(path.clone(), Duration::ZERO).expect("token");
        assert_eq!(token.header().expect("header"), "Bearer first");
        // Rotation the way the kubelet does it: a new file renamed over the old one (new inode).
        let next = dir.path().join("token.new");
        std::fs::write(&next, "second-token\n").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        assert_eq!(token.header().expect("header"), "Bearer second-token");
    }

    #[test]
    fn a_checked_token_file_is_trusted_until_the_interval_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").expect("write");
        let token = BearerToken::file_checked_every(path.clone(), Duration::from_secs(3600))
            .expect("token");
        // Within the interval the file is not looked at: gone or rotated, the token stays.
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(token.header().expect("header"), "Bearer first");
        std::fs::write(&path, "second\n").expect("write");
        assert_eq!(token.header().expect("header"), "Bearer first");

        let due = BearerToken::file_checked_every(path.clone(), Duration::ZERO).expect("token");
        std::fs::remove_file(&path).expect("remove");
        assert!(due.header().is_err(), "a due check reads the file again");
    }

    #[test]
    fn missing_or_bad_token_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = BearerToken::file(dir.path().join("absent")).expect_err("missing");
        assert!(missing.to_string().contains("absent"), "{missing}");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "a\u{7}b").expect("write");
        assert!(BearerToken::file(bad).is_err());
        assert!(BearerToken::fixed("").is_err());
    }
}
