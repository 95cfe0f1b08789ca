//! Objects under the bucket's prefix.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use super::{S3Error, S3Options};

/// The most [`S3Archive::get_small`] reads into memory: index entries, manifests and the like
/// are a few KiB; a larger object there is not what it claims to be.
pub const MAX_SMALL_OBJECT: u64 = 4 * 1024 * 1024;

/// One object, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key below the archive's prefix (`recordings/ID.cast`).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A bucket (and a prefix in it) holding recordings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct S3Archive {
    pub(super) store: Arc<AmazonS3>,
    bucket: Arc<str>,
    /// The prefix, without leading or trailing `/`; empty for the bucket's root.
    prefix: Arc<str>,
}

impl S3Archive {
    /// A client for the bucket of `options`. Nothing is sent yet: see [`S3Archive::check`].
    pub fn new(options: &S3Options) -> Result<Self, S3Error> {
        Ok(Self {
            store: Arc::new(options.client()?),
            bucket: options.bucket.as_str().into(),
            prefix: options.normalized_prefix().into(),
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix in the bucket, without leading or trailing `/`; empty for the bucket's root.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Asks the bucket for one key under the prefix, so a wrong bucket, endpoint or credential is
    /// found at start rather than when the first recording ends.
    pub async fn check(&self) -> Result<(), S3Error> {
        let prefix = self.path("")?;
        let mut listing = self.store.list(Some(&prefix));
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(source)) => Err(self.error("list", "", source)),
        }
    }

    /// Stores `bytes` as the object `key` (replacing it): one request.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), S3Error> {
        let path = self.path(key)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|source| self.error("put", key, source))
    }

    /// The object `key`, read whole: for objects of at most `limit` bytes (index entries,
    /// manifests); larger ones are refused before they are read. `None` when it does not exist.
    pub async fn get_small(&self, key: &str, limit: u64) -> Result<Option<Bytes>, S3Error> {
        let path = self.path(key)?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(self.error("get", key, source)),
        };
        let size = result.meta.size;
        if size > limit {
            return Err(S3Error::TooLarge {
                key: key.to_owned(),
                size,
                limit,
            });
        }
        let bytes = result
            .bytes()
            .await
            .map_err(|source| self.error("get", key, source))?;
        Ok(Some(bytes))
    }

    /// The object `key` as a stream of chunks (casts: any size, never whole in memory), with its
    /// size. `None` when it does not exist.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<(u64, BoxStream<'static, Result<Bytes, S3Error>>)>, S3Error> {
        let path = self.path(key)?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(self.error("get", key, source)),
        };
        let size = result.meta.size;
        let archive = self.clone();
        let owned_key = key.to_owned();
        let stream = result
            .into_stream()
            .map_err(move |source| archive.error("get", &owned_key, source))
            .boxed();
        Ok(Some((size, stream)))
    }

    /// The objects whose keys start with `prefix` (below the archive's prefix), in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, S3Error> {
        let path = self.path(prefix)?;
        let base = self.path("")?;
        let base_len = if base.as_ref().is_empty() {
            0
        } else {
            base.as_ref().len() + 1
        };
        let mut objects: Vec<ObjectInfo> = self
            .store
            .list(Some(&path))
            .map_ok(|meta| ObjectInfo {
                key: meta
                    .location
                    .as_ref()
                    .get(base_len..)
                    .unwrap_or("")
                    .to_owned(),
                size: meta.size,
            })
            .try_collect()
            .await
            .map_err(|source| self.error("list", prefix, source))?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Removes the object `key`; removing one that does not exist is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(self.error("delete", key, source)),
        }
    }

    /// The size of the object `key`, `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, S3Error> {
        let path = self.path(key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(self.error("head", key, source)),
        }
    }

    /// The object path of `key` under the prefix. Keys are the recorder's own (recording IDs
    /// and fixed names), never a caller's: a key that is not a clean relative path is a bug, and
    /// refused rather than mapped somewhere else.
    pub(super) fn path(&self, key: &str) -> Result<ObjectPath, S3Error> {
        let joined = match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => self.prefix.to_string(),
            (false, false) => format!("{}/{key}", self.prefix),
        };
        ObjectPath::parse(&joined)
            .map_err(|error| S3Error::Config(format!("object key {joined:?}: {error}")))
    }

    pub(super) fn error(
        &self,
        op: &'static str,
        key: &str,
        source: object_store::Error,
    ) -> S3Error {
        S3Error::Request {
            op,
            key: key.to_owned(),
            bucket: self.bucket.to_string(),
            source: Box::new(source),
        }
    }
}
