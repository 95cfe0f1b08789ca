//! A bucket's recordings copied into a local directory laid out as the recording directory, so
//! the directory's tools (`verify`) read it: `kube-recorder verify --s3-bucket ...`.

use std::path::Path;

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::{local, S3Archive, S3Error};
use crate::seal::CHAIN_FILE;

/// What [`S3Archive::download_recordings`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadReport {
    /// Objects under `recordings/` copied.
    pub objects: usize,
    /// Bytes copied, chain included.
    pub bytes: u64,
}

impl S3Archive {
    /// Copies `recordings/*` into `to/recordings/` and the chain's objects, concatenated in key
    /// order, into `to/chain.jsonl`, each object streamed to its file (memory stays bounded).
    /// Keys that are not plain file names below `recordings/` are skipped and reported by the
    /// verifier as missing, never written outside `to`.
    pub async fn download_recordings(&self, to: &Path) -> Result<DownloadReport, S3Error> {
        let recordings = to.join("recordings");
        tokio::fs::create_dir_all(&recordings)
            .await
            .map_err(local(&recordings))?;
        let mut report = DownloadReport::default();
        for object in self.list("recordings/").await? {
            let Some(name) = object.key.strip_prefix("recordings/") else {
                continue;
            };
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                tracing::warn!(key = object.key, "skipping an unexpected key");
                continue;
            }
            let path = recordings.join(name);
            let mut file = tokio::fs::File::create(&path).await.map_err(local(&path))?;
            report.bytes += self.copy_into(&object.key, &mut file, &path).await?;
            file.sync_all().await.map_err(local(&path))?;
            report.objects += 1;
        }
        let chain_path = to.join(CHAIN_FILE);
        let mut chain = tokio::fs::File::create(&chain_path)
            .await
            .map_err(local(&chain_path))?;
        for object in self.list("chain/").await? {
            report.bytes += self.copy_into(&object.key, &mut chain, &chain_path).await?;
        }
        chain.sync_all().await.map_err(local(&chain_path))?;
        Ok(report)
    }

    async fn copy_into(
        &self,
        key: &str,
        file: &mut tokio::fs::File,
        path: &Path,
    ) -> Result<u64, S3Error> {
        let Some((_, mut stream)) = self.get_stream(key).await? else {
            // Listed, then gone: removed meanwhile; the verifier reports what is missing.
            return Ok(0);
        };
        let mut copied = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await.map_err(local(path))?;
            copied += chunk.len() as u64;
        }
        Ok(copied)
    }
}
