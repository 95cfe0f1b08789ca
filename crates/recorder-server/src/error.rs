//! Errors of the store and the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A failure to read or write the recording directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file system operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done: `create`, `write`, `sync`, `read`, ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No recording has this ID.
    #[error("no recording {0:?}")]
    NotFound(String),
    /// The string cannot be a recording ID (see [`crate::is_valid_id`]).
    #[error("{0:?} is not a recording ID")]
    InvalidId(String),
    /// An index entry is not valid JSON of the expected shape.
    #[error("index entry {} is corrupt: {source}", path.display())]
    CorruptIndex {
        /// The index file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A storage backend other than the directory (an S3 bucket) failed.
    #[error("cannot read {name} from {location}: {source}")]
    Backend {
        /// The backend ([`crate::RecordingStorage::location`]).
        location: String,
        /// The file asked for.
        name: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// An [`StoreError::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io { op, path, source }
    }
}

/// A failure to start the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The recording directory could not be prepared.
    #[error(transparent)]
    Store(#[from] StoreError),
}
