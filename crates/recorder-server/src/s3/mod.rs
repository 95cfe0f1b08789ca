//! S3-compatible object storage for finished recordings (`kube-recorder serve --storage s3`).
//!
//! The building blocks, each usable on its own:
//! - [`S3Options`]: where the bucket is and how to sign for it (credentials from the standard
//!   `AWS_*` environment variables, web identity or instance metadata as the AWS SDKs find them,
//!   or an AWS shared-credentials file);
//! - [`S3Archive`]: objects under the bucket's prefix, put, fetched, listed and removed;
//! - [`SpoolUpload`]: a local file that is still growing (a recording being received) uploaded to
//!   one object as it grows, one multipart part at a time, so memory stays bounded by one part and
//!   a recorder that is restarted resumes the upload from its [`UploadJournal`];
//! - [`Shipper`]: a recording directory mirrored into the bucket as recordings arrive and end.
//! - [`EventShipper`]: the event log (`DIR/events/YYYY-MM-DD.jsonl`) mirrored into the bucket as
//!   it grows, whole lines at a time, as objects `events/<day>/<offset>.jsonl`; [`restore_events`]
//!   writes missing day files back from them.
//!
//! Requests are signed with AWS Signature Version 4 by the `object_store` crate (ring underneath,
//! rustls for TLS), which also retries transient failures.

mod archive;
mod credentials;
mod download;
mod events;
mod options;
mod restore;
mod shipper;
mod spool_upload;
mod storage;

pub use archive::{ObjectInfo, S3Archive, MAX_SMALL_OBJECT};
pub use credentials::{CredentialsError, StaticCredentials};
pub use download::DownloadReport;
pub use events::{restore_events, EventRestoreReport, EventShipper};
pub use options::S3Options;
pub use restore::IndexRestoreReport;
pub use shipper::{PassReport, Shipper, ShipperHandle, ShipperOptions};
pub use spool_upload::{SpoolUpload, UploadJournal, MIN_PART_SIZE};

/// An object storage request failed, or its answer was not what the recorder needs.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The options cannot describe a bucket (bad endpoint, unreadable credentials...).
    #[error("S3 storage misconfigured: {0}")]
    Config(String),
    /// A request to the bucket failed.
    #[error("S3 {op} of {key:?} in bucket {bucket:?} failed: {source}")]
    Request {
        /// What was being done: `put`, `get`, `list`, ...
        op: &'static str,
        /// The object's key (or the prefix listed), in the bucket.
        key: String,
        /// The bucket.
        bucket: String,
        /// What the client or the server said (boxed: it is large, and errors are rare).
        #[source]
        source: Box<object_store::Error>,
    },
    /// Reading the local file being uploaded failed.
    #[error("reading {path} for upload: {source}")]
    Local {
        /// The local file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The object is larger than the caller allows to be read into memory.
    #[error("S3 object {key:?} is {size} bytes, more than the {limit} bytes allowed")]
    TooLarge {
        /// The object's key.
        key: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// After an upload, the object's size is not the file's.
    #[error("S3 object {key:?} has {stored} bytes after the upload, but {expected} were sent")]
    SizeMismatch {
        /// The object's key.
        key: String,
        /// What the bucket holds.
        stored: u64,
        /// What was uploaded.
        expected: u64,
    },
}

/// An [`S3Error::Local`] for `path`, as a `map_err` argument.
fn local(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> S3Error + '_ {
    move |source| S3Error::Local {
        path: path.to_owned(),
        source,
    }
}

/// Makes the entries of `dir` durable (fsync of the directory), off the async threads.
async fn sync_dir(dir: &std::path::Path) -> Result<(), S3Error> {
    let owned = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&owned)?.sync_all())
        .await
        .map_err(|error| S3Error::Config(format!("syncing a directory: {error}")))?
        .map_err(local(dir))
}
