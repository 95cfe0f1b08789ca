//! Where a recording's files are read from: the storage backends.
//!
//! Recordings are always received into the recording directory (the write-ahead spool: uploads
//! are fsynced and sealed there before they are acknowledged). Finished ones may then live
//! elsewhere too: with `kube-recorder serve --storage s3` they are shipped to a bucket and, after
//! `--s3-keep-local-days`, kept only there. Every reader (the read API, the web UI's player,
//! search and live view, `kube-recorder play`) opens files through [`RecordingStorage`], asking
//! the directory first and then the store's other backend, so it does not matter where a
//! recording's bytes are.

use std::fmt::Debug;
use std::path::PathBuf;
use std::pin::Pin;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::error::StoreError;
use crate::seal::{hex_digest, ChainHasher, Manifest};

/// A recording's file being read from its start: a local file, or an object streamed from a
/// bucket (never whole in memory).
pub type RecordingReader = Pin<Box<dyn AsyncRead + Send>>;

/// A place holding finished recordings' files, each named as in the recording directory's
/// `recordings/` (`<id>.cast`, `<id>.pfcap`, `<id>.cast.age`, ...).
pub trait RecordingStorage: Debug + Send + Sync {
    /// Where it is, for logs and errors (`/var/lib/kube-recorder/recordings`, `s3://b/prefix`).
    fn location(&self) -> String;

    /// Opens the file `name` (a recording file name, never a caller's path) for reading from its
    /// start; `None` when this backend does not hold it.
    fn open<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<RecordingReader>, StoreError>>;
}

/// The recording directory's `recordings/`, as a backend.
#[derive(Debug, Clone)]
pub struct DirStorage {
    recordings: PathBuf,
}

impl DirStorage {
    /// The files in `recordings` (a recording directory's `recordings/`).
    pub fn new(recordings: impl Into<PathBuf>) -> Self {
        Self {
            recordings: recordings.into(),
        }
    }
}

impl RecordingStorage for DirStorage {
    fn location(&self) -> String {
        self.recordings.display().to_string()
    }

    fn open<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<RecordingReader>, StoreError>> {
        Box::pin(async move {
            let path = self.recordings.join(name);
            match tokio::fs::File::open(&path).await {
                Ok(file) => Ok(Some(Box::pin(file) as RecordingReader)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(StoreError::io("open", &path)(error)),
            }
        })
    }
}

/// Whether `backend` holds the file `manifest` seals for recording `id`, byte for byte: its bytes
/// are streamed through the seal's hash chain (never whole in memory) and compared with the
/// manifest's size and hash. Why not, otherwise. Used before a local copy is removed (eviction,
/// retention) and to show the seal status of a recording kept only in the bucket.
pub(crate) async fn matches_seal(
    backend: &dyn RecordingStorage,
    id: &str,
    manifest: &Manifest,
) -> Result<(), String> {
    let location = backend.location();
    let mut reader = backend
        .open(&manifest.file)
        .await
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("{} is missing from {location}", manifest.file))?;
    let mut hasher = ChainHasher::with(manifest.hash_algorithm, id);
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|error| format!("reading {} from {location}: {error}", manifest.file))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hasher.finish();
    if digest.size != manifest.size || hex_digest(&digest.hash) != manifest.hash {
        return Err(format!(
            "{} in {location} does not match its seal ({} bytes stored, {} sealed)",
            manifest.file, digest.size, manifest.size
        ));
    }
    Ok(())
}
