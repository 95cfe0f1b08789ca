//! A file the proxy reads at start and again when it changes (the policy file, the client CA, an
//! OIDC key set): a file that cannot be used at start is a start-up error; a changed file that
//! cannot be used later is reported once per change and the last good contents stay in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::upstream::token::FileStamp;

/// A file's usable contents, re-read when the file changes.
pub(crate) struct ReloadableFile<T: ?Sized> {
    path: PathBuf,
    read: fn(&Path) -> anyhow::Result<Arc<T>>,
    current: RwLock<Arc<T>>,
    seen: Mutex<Option<FileStamp>>,
}

impl<T: ?Sized> std::fmt::Debug for ReloadableFile<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized> ReloadableFile<T> {
    /// Reads `path` now with `read`; errors name the flag that gave the path.
    pub(crate) fn load(
        flag: &str,
        path: PathBuf,
        read: fn(&Path) -> anyhow::Result<Arc<T>>,
    ) -> anyhow::Result<ReloadableFile<T>> {
        let stamp =
            FileStamp::of(&path).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
        let contents =
            read(&path).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
        Ok(ReloadableFile {
            path,
            read,
            current: RwLock::new(contents),
            seen: Mutex::new(Some(stamp)),
        })
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The contents in force.
    pub(crate) fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the file if it changed; whether new contents are now in force. A file that
    /// cannot be read or used is an error, reported once per change, and keeps the current
    /// contents.
    pub(crate) fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let stamp = FileStamp::of(&self.path).ok();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == stamp {
            return Ok(false);
        }
        *seen = stamp;
        if stamp.is_none() {
            anyhow::bail!("cannot read {}", self.path.display());
        }
        let contents = (self.read)(&self.path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = contents;
        Ok(true)
    }
}
