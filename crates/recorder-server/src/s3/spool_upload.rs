//! A growing local file uploaded to one object as it grows, one multipart part at a time.

use std::path::Path;

use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::PutPayload;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::{S3Archive, S3Error};

/// The smallest part S3 accepts (all parts but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// What has been uploaded so far: kept beside the local file (in its index entry), so a
/// recorder restarted mid-upload goes on from here ([`SpoolUpload::resume`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadJournal {
    /// The object's key below the archive's prefix.
    pub key: String,
    /// Bytes per part (all parts but the last).
    pub part_size: u64,
    /// The multipart upload, once the first whole part was uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// The ETag of each part uploaded, in order: part `n` holds bytes
    /// `n * part_size .. (n + 1) * part_size` of the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
}

impl UploadJournal {
    /// Bytes of the file already in the bucket (in parts not yet assembled).
    pub fn uploaded(&self) -> u64 {
        self.parts.len() as u64 * self.part_size
    }
}

/// Uploads a file that is still being written: call [`advance`](Self::advance) as it grows
/// and [`finish`](Self::finish) once it is complete. At most one part is in memory at a time.
/// A file that ends before reaching one part is stored with a single request.
#[derive(Debug)]
pub struct SpoolUpload {
    archive: S3Archive,
    journal: UploadJournal,
}

impl SpoolUpload {
    /// Starts the upload of the object `key`, in parts of `part_size` bytes (at least
    /// [`MIN_PART_SIZE`]). Nothing is sent until the first whole part is there.
    pub fn new(archive: &S3Archive, key: &str, part_size: u64) -> Result<Self, S3Error> {
        if part_size < MIN_PART_SIZE {
            return Err(S3Error::Config(format!(
                "part size {part_size} is below S3's minimum of {MIN_PART_SIZE} bytes"
            )));
        }
        Ok(Self {
            archive: archive.clone(),
            journal: UploadJournal {
                key: key.to_owned(),
                part_size,
                upload_id: None,
                parts: Vec::new(),
            },
        })
    }

    /// Goes on with an upload an earlier run began.
    pub fn resume(archive: &S3Archive, journal: UploadJournal) -> Result<Self, S3Error> {
        let mut upload = Self::new(archive, &journal.key, journal.part_size)?;
        upload.journal = journal;
        Ok(upload)
    }

    /// Where the upload stands; save it after each [`advance`](Self::advance) that uploaded.
    pub fn journal(&self) -> &UploadJournal {
        &self.journal
    }

    /// Uploads each whole part of the first `len` bytes of `file` that is not uploaded yet.
    /// Returns whether it uploaded any (the journal changed).
    pub async fn advance(&mut self, file: &Path, len: u64) -> Result<bool, S3Error> {
        let mut progressed = false;
        while self.journal.uploaded() + self.journal.part_size <= len {
            let start = self.journal.uploaded();
            let part = read_range(file, start, self.journal.part_size).await?;
            self.upload_part(part).await?;
            progressed = true;
        }
        Ok(progressed)
    }

    /// Uploads what is left of the first `len` bytes of `file` and assembles the object, which
    /// then holds exactly those bytes (checked). When a resumed multipart upload fails (the
    /// bucket may no longer know it: aborted by a lifecycle rule while the recorder was down),
    /// the file is uploaded once more in a new one.
    pub async fn finish(mut self, file: &Path, len: u64) -> Result<(), S3Error> {
        if len < self.journal.uploaded() {
            // The file came back shorter than the parts uploaded (a power loss took what was not
            // yet synced, and recovery sealed what is there): those parts are not this file's.
            tracing::warn!(
                key = self.journal.key,
                len,
                uploaded = self.journal.uploaded(),
                "the file is shorter than the parts uploaded; uploading it again"
            );
            self.restart().await;
        }
        match self.assemble(file, len).await {
            // The bucket may no longer know the upload (a lifecycle rule aborts old ones while
            // the recorder is down; S3 answers 404 NoSuchUpload, other services 500): the file is
            // all there, so upload it once more from its start, in a new upload.
            Err(S3Error::Request { op, source, .. }) if self.journal.upload_id.is_some() => {
                tracing::warn!(
                    key = self.journal.key,
                    op,
                    %source,
                    "the multipart upload failed; uploading the file again in a new one"
                );
                self.restart().await;
                self.assemble(file, len).await?;
            }
            other => other?,
        }
        let stored = self.archive.size(&self.journal.key).await?.unwrap_or(0);
        if stored != len {
            return Err(S3Error::SizeMismatch {
                key: self.journal.key.clone(),
                stored,
                expected: len,
            });
        }
        Ok(())
    }

    /// Forgets the multipart upload (aborting it, best effort: its parts would otherwise wait for
    /// the bucket's lifecycle rule), so the file is uploaded from its start in a new one.
    async fn restart(&mut self) {
        let fresh = UploadJournal {
            upload_id: None,
            parts: Vec::new(),
            ..self.journal.clone()
        };
        let stale = std::mem::replace(&mut self.journal, fresh);
        if let Ok(old) = Self::resume(&self.archive, stale) {
            let _ = old.abort().await;
        }
    }

    /// Removes the parts uploaded so far; nothing is stored.
    pub async fn abort(self) -> Result<(), S3Error> {
        let Some(id) = &self.journal.upload_id else {
            return Ok(());
        };
        let path = self.archive.path(&self.journal.key)?;
        self.archive
            .store
            .abort_multipart(&path, id)
            .await
            .map_err(|source| {
                self.archive
                    .error("abort upload", &self.journal.key, source)
            })
    }

    async fn assemble(&mut self, file: &Path, len: u64) -> Result<(), S3Error> {
        self.advance(file, len).await?;
        let start = self.journal.uploaded();
        let tail = read_range(file, start, len - start).await?;
        let Some(id) = self.journal.upload_id.clone() else {
            // Smaller than one part: one PUT.
            return self.archive.put(&self.journal.key, tail).await;
        };
        if !tail.is_empty() {
            self.upload_part(tail).await?;
        }
        let path = self.archive.path(&self.journal.key)?;
        let parts = self
            .journal
            .parts
            .iter()
            .map(|etag| PartId {
                content_id: etag.clone(),
            })
            .collect();
        self.archive
            .store
            .complete_multipart(&path, &id, parts)
            .await
            .map(drop)
            .map_err(|source| {
                self.archive
                    .error("complete upload", &self.journal.key, source)
            })
    }

    async fn upload_part(&mut self, part: Bytes) -> Result<(), S3Error> {
        let path = self.archive.path(&self.journal.key)?;
        let id = match &self.journal.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .archive
                    .store
                    .create_multipart(&path)
                    .await
                    .map_err(|source| {
                        self.archive
                            .error("start upload", &self.journal.key, source)
                    })?;
                self.journal.upload_id = Some(id.clone());
                id
            }
        };
        let index = self.journal.parts.len();
        let part_id = self
            .archive
            .store
            .put_part(&path, &id, index, PutPayload::from(part))
            .await
            .map_err(|source| self.archive.error("upload part", &self.journal.key, source))?;
        self.journal.parts.push(part_id.content_id);
        Ok(())
    }
}

/// `len` bytes of `file` from `start`; the file must have them.
async fn read_range(file: &Path, start: u64, len: u64) -> Result<Bytes, S3Error> {
    let local = |source| S3Error::Local {
        path: file.to_owned(),
        source,
    };
    let size = usize::try_from(len).map_err(|_| {
        local(std::io::Error::other(format!(
            "a part of {len} bytes does not fit in memory"
        )))
    })?;
    let mut handle = tokio::fs::File::open(file).await.map_err(local)?;
    handle
        .seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(local)?;
    let mut buffer = vec![0; size];
    handle.read_exact(&mut buffer).await.map_err(local)?;
    Ok(Bytes::from(buffer))
}
