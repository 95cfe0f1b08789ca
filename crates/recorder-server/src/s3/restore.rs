//! A new recording directory brought in step with its bucket: `kube-recorder serve --storage s3`
//! started on a new host, or on a volume that was lost, serves what the bucket holds.
//!
//! The bucket is the store of record; the directory is the write-ahead spool plus a local index.
//! At start, before the recorder seals anything, and only when the directory has no chain yet
//! (a directory that has one is the recorder's own, and nothing in it is overwritten or brought
//! back: recordings or event days removed from it stay removed), [`S3Archive::restore_index`]:
//! 1. reads the bucket's chain objects into a temporary file, checking that they follow one
//!    another and that every line is signed by the recorder's key, numbered in order and linked
//!    to the line before (a chain that is not this recorder's is refused, rather than continued
//!    with seals no verifier could follow);
//! 2. restores the index entry and manifest of every recording the bucket holds, when its
//!    manifest is signed by the recorder's key for it, the chain seals it and does not record its
//!    removal, its index entry says what its seal says (who, where, when, how it ended, its size)
//!    and the bucket holds its file at the sealed size; its file stays in the bucket, readers
//!    fetch it from there ([`crate::Store::read_through`]), and the shipper's first pass checks
//!    its bytes against the seal and records it as evicted;
//! 3. restores the event log ([`super::restore_events`]);
//! 4. last, renames the chain into place: a restore cut short by a crash runs again at the next
//!    start.
//!
//! Anything else in the bucket (a forged entry, a recording retention removed) is skipped with a
//! warning and never reaches the directory. The event log is not sealed (in the directory
//! either): restored events are as trustworthy as the bucket.

use std::collections::HashSet;
use std::path::Path;

use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::{local, sync_dir, S3Archive, S3Error};
use crate::line_splitter::{Line, LineSplitter};
use crate::recording_id::is_valid_id;
use crate::recording_meta::RecordingMeta;
use crate::seal::{hex_digest, sha256, ChainEntry, EntryType, Manifest, PublicKey, CHAIN_FILE};

/// Longest chain line read back (lines are a few hundred bytes).
const MAX_CHAIN_LINE: usize = 64 * 1024;
/// Index entries and manifests are small; anything larger is not one.
const MAX_SIDECAR: u64 = 1024 * 1024;

/// What [`S3Archive::restore_index`] brought back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexRestoreReport {
    /// Whether the directory was new (no chain) and so was restored; a directory with a chain
    /// is left as it is.
    pub restored: bool,
    /// Bytes of the chain restored.
    pub chain_bytes: u64,
    /// Recordings whose index entry and manifest were restored.
    pub recordings: Vec<String>,
    /// Recordings in the bucket not restored, with why.
    pub skipped: Vec<(String, String)>,
    /// Days of the event log restored.
    pub event_days: usize,
}

impl S3Archive {
    /// Restores the new directory `root` from the bucket as the module docs say, checking what
    /// it restores against `key`, the recorder's public key.
    pub async fn restore_index(
        &self,
        root: &Path,
        key: &PublicKey,
    ) -> Result<IndexRestoreReport, S3Error> {
        let mut report = IndexRestoreReport::default();
        let chain_path = root.join(CHAIN_FILE);
        match tokio::fs::metadata(&chain_path).await {
            Ok(metadata) if metadata.len() > 0 => return Ok(report),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(local(&chain_path)(error)),
        }
        report.restored = true;
        let recordings = root.join("recordings");
        let shipped_dir = root.join("s3").join("shipped");
        for dir in [&recordings, &shipped_dir] {
            tokio::fs::create_dir_all(dir).await.map_err(local(dir))?;
        }
        let tmp = root.join(".chain.jsonl.restore");
        let chain = self.read_chain(&tmp, key).await?;
        report.chain_bytes = chain.bytes;
        for object in self.list("recordings/").await? {
            let Some(id) = object
                .key
                .strip_prefix("recordings/")
                .and_then(|name| name.strip_suffix(".json"))
                .filter(|id| !id.ends_with(".manifest"))
            else {
                continue;
            };
            if !is_valid_id(id) || recordings.join(format!("{id}.json")).exists() {
                continue;
            }
            match self
                .restore_recording(&recordings, &shipped_dir, id, key, &chain)
                .await
            {
                Ok(()) => report.recordings.push(id.to_owned()),
                Err(why) => {
                    tracing::warn!(id, why, "not restoring a recording from S3");
                    report.skipped.push((id.to_owned(), why));
                }
            }
        }
        report.event_days = super::restore_events(self, root).await?.days;
        if chain.bytes > 0 {
            tokio::fs::rename(&tmp, &chain_path)
                .await
                .map_err(local(&chain_path))?;
            sync_dir(root).await?;
            tracing::info!(
                bytes = chain.bytes,
                bucket = self.bucket(),
                "chain restored from S3"
            );
        } else {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        Ok(report)
    }

    /// Concatenates the bucket's chain objects into `tmp` (fsynced), checking that they follow
    /// one another and that every line is `key`'s, in order and linked; what the chain says.
    async fn read_chain(&self, tmp: &Path, key: &PublicKey) -> Result<ChainIds, S3Error> {
        let objects = self.list("chain/").await?;
        let mut ids = ChainIds::default();
        if objects.is_empty() {
            return Ok(ids);
        }
        let mut file = create_new(tmp).await?;
        let mut splitter = LineSplitter::new(MAX_CHAIN_LINE);
        let mut bad_line = None;
        for object in &objects {
            let offset = object
                .key
                .strip_prefix("chain/")
                .and_then(|name| name.strip_suffix(".jsonl"))
                .and_then(|offset| offset.parse::<u64>().ok());
            if offset != Some(ids.bytes) {
                return Err(S3Error::Config(format!(
                    "the bucket's chain is not whole: {:?} where the object at offset {} belongs",
                    object.key, ids.bytes
                )));
            }
            let Some((_, mut stream)) = self.get_stream(&object.key).await? else {
                return Err(S3Error::Config(format!(
                    "chain object {:?} vanished while being read",
                    object.key
                )));
            };
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                splitter.push(&chunk, |line| {
                    if bad_line.is_none() {
                        bad_line = ids.take(line, key).err();
                    }
                });
                file.write_all(&chunk).await.map_err(local(tmp))?;
                ids.bytes += chunk.len() as u64;
            }
        }
        splitter.finish(|_| {
            bad_line = bad_line
                .take()
                .or(Some("a last line without its line break".into()));
        });
        if let Some(why) = bad_line {
            drop(file);
            let _ = tokio::fs::remove_file(tmp).await;
            return Err(S3Error::Config(format!(
                "the bucket's chain is not this recorder's, or not whole ({why}): give serve the \
                 --signing-key that sealed it, or another --s3-prefix"
            )));
        }
        file.sync_all().await.map_err(local(tmp))?;
        Ok(ids)
    }

    /// Restores the index entry and manifest of `id` after checking them; why not, otherwise.
    async fn restore_recording(
        &self,
        recordings: &Path,
        shipped_dir: &Path,
        id: &str,
        key: &PublicKey,
        chain: &ChainIds,
    ) -> Result<(), String> {
        if chain.removed.contains(id) {
            return Err("the chain records its removal".into());
        }
        if !chain.sealed.contains(id) {
            return Err("the chain does not name it".into());
        }
        let fetch = |name: String| async move {
            self.get_small(&format!("recordings/{name}"), MAX_SIDECAR)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("{name} is not in the bucket"))
        };
        let manifest_bytes = fetch(format!("{id}.manifest.json")).await?;
        let entry_bytes = fetch(format!("{id}.json")).await?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|error| format!("unreadable manifest: {error}"))?;
        if manifest.id != id || !manifest.signature_valid(key) {
            return Err("its manifest is not signed by the recorder's key".into());
        }
        if chain.manifests.get(id) != Some(&hex_digest(&sha256(&manifest_bytes))) {
            return Err("its manifest is not the one the chain seals".into());
        }
        if manifest.file.contains('/') || !manifest.file.starts_with(&format!("{id}.")) {
            return Err(format!("its manifest names the file {:?}", manifest.file));
        }
        let entry: RecordingMeta = serde_json::from_slice(&entry_bytes)
            .map_err(|error| format!("unreadable index entry: {error}"))?;
        if entry.id != id {
            return Err(format!("its index entry is for {:?}", entry.id));
        }
        // The index entry is not signed; what viewers are scoped by, what retention decides by
        // and what readers rely on must be what the seal says, or a bucket writer could move a
        // recording into another namespace's view or have it removed as old.
        if let Some(field) = manifest.disagreement(&entry) {
            return Err(format!(
                "its index entry's {field} is not what its seal says"
            ));
        }
        let stored = self
            .size(&format!("recordings/{}", manifest.file))
            .await
            .map_err(|error| error.to_string())?;
        if stored != Some(manifest.size) {
            return Err(format!(
                "the bucket holds {} at {stored:?} bytes, sealed at {}",
                manifest.file, manifest.size
            ));
        }
        // The marker first, then the manifest, then the index entry (last: an index entry
        // means the rest is there), each durable.
        write_durably(&shipped_dir.join(id), b"").await?;
        write_durably(
            &recordings.join(format!("{id}.manifest.json")),
            &manifest_bytes,
        )
        .await?;
        write_durably(&recordings.join(format!("{id}.json")), &entry_bytes).await
    }
}

/// What a chain says of recordings, checked line by line as it is read.
#[derive(Debug, Default)]
struct ChainIds {
    sealed: HashSet<String>,
    removed: HashSet<String>,
    /// The manifest hash each `sealed` entry names.
    manifests: std::collections::HashMap<String, String>,
    bytes: u64,
    /// Lines taken so far.
    lines: u64,
    /// Hex hash of the last line taken (64 zeros before the first).
    head: String,
}

impl ChainIds {
    /// Takes in one chain line, which must be an entry signed by `key`, numbered and linked as
    /// the next one.
    fn take(&mut self, line: Line<'_>, key: &PublicKey) -> Result<(), String> {
        let Line::Whole(line) = line else {
            return Err("a line too long to be a chain entry".into());
        };
        let entry: ChainEntry = serde_json::from_slice(line)
            .map_err(|error| format!("an unreadable chain entry: {error}"))?;
        if !entry.signature_valid(key) {
            return Err(format!(
                "entry {} is not signed by the recorder's key",
                entry.seq
            ));
        }
        let prev = if self.lines == 0 {
            hex_digest(&crate::seal::GENESIS)
        } else {
            std::mem::take(&mut self.head)
        };
        self.lines += 1;
        if entry.seq != self.lines || entry.prev != prev {
            return Err(format!(
                "entry {} is out of order or not linked to the one before it",
                entry.seq
            ));
        }
        self.head = hex_digest(&sha256(line));
        match entry.entry_type {
            EntryType::Removed => {
                self.removed.insert(entry.id);
            }
            EntryType::Sealed => {
                if let Some(manifest) = entry.manifest {
                    self.manifests.insert(entry.id.clone(), manifest);
                }
                self.sealed.insert(entry.id);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Creates `path` afresh (a stale one from a crash removed first): never follows a link put at
/// the name.
async fn create_new(path: &Path) -> Result<tokio::fs::File, S3Error> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(local(path)(error)),
    }
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(local(path))
}

/// Writes `bytes` to `path` through a fresh temporary file beside it: fsync, rename, directory
/// fsync.
async fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.restore"));
    let mut file = create_new(&tmp).await.map_err(|error| error.to_string())?;
    let shown = |error: std::io::Error| format!("{}: {error}", tmp.display());
    file.write_all(bytes).await.map_err(shown)?;
    file.sync_all().await.map_err(shown)?;
    drop(file);
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|error| format!("{}: {error}", path.display()))?;
    match path.parent() {
        Some(dir) => sync_dir(dir).await.map_err(|error| error.to_string()),
        None => Ok(()),
    }
}
