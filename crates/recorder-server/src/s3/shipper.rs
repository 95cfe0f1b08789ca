//! Shipping a recording directory to S3: `kube-recorder serve --storage s3`.
//!
//! The directory stays the recorder's write-ahead spool: uploads are received, fsynced, sealed and
//! acknowledged there exactly as with the directory backend, so a recording cut off by a crash is
//! still on local disk and [`crate::Store::recover`] marks it incomplete at the next start. The
//! shipper mirrors the directory into the bucket:
//!
//! - a recording still being received: its file is uploaded as it grows, one multipart part at a
//!   time ([`SpoolUpload`]), the upload's journal kept in `DIR/s3/uploads/`, so memory stays
//!   bounded by one part and a restart resumes where it was;
//! - a finished recording (complete or incomplete, and then sealed): the rest of its file, then its
//!   manifest, then its index entry, last, so an index entry in the bucket means the rest is there;
//!   then a marker `DIR/s3/shipped/<id>`;
//! - the event log (`events/<day>.jsonl`): its new whole lines, as `events/<day>/<offset>.jsonl`
//!   ([`EventShipper`]);
//! - the chain of seals (`chain.jsonl`): the lines added since the last pass, as one object
//!   `chain/<offset>.jsonl` named by the byte offset it starts at, so the objects concatenated in
//!   key order are the chain; a recording that retention removed (a signed `removed` line) is
//!   deleted from the bucket before its line ships ([`Shipper::trust_key`]).
//!
//! ```text
//! s3://BUCKET/PREFIX/recordings/<id>.cast           as in the directory (also .pfcap, .age)
//! s3://BUCKET/PREFIX/recordings/<id>.manifest.json
//! s3://BUCKET/PREFIX/recordings/<id>.json
//! s3://BUCKET/PREFIX/chain/00000000000000000000.jsonl, ...
//! ```
//!
//! A failed request is logged and tried again at the next pass; nothing local is removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{local, sync_dir, EventShipper, S3Archive, S3Error, SpoolUpload, UploadJournal};
use crate::recording_id::is_valid_id;
use crate::seal::{hash_file, ChainEntry, EntryType, Manifest, PublicKey, Sealer, CHAIN_FILE};

/// Subdirectory of the recording directory holding the shipper's state.
const STATE_DIR: &str = "s3";
/// The names a recording's files can have after `<id>.`, in the order a removal deletes them:
/// its index entry, the recording (cast or port-forward capture, plain or age-encrypted), its
/// manifest.
const RECORDING_SUFFIXES: [&str; 6] = [
    // The index entry first: in the bucket, an index entry means the rest is there, also while
    // a removal is under way.
    "json",
    "cast",
    "pfcap",
    "cast.age",
    "pfcap.age",
    "manifest.json",
];

/// How the shipper works.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShipperOptions {
    /// Bytes per multipart part (at least [`super::MIN_PART_SIZE`]).
    pub part_size: u64,
    /// Time between passes over the directory.
    pub interval: Duration,
    /// How long a shipped recording's file stays in the directory too (`serve
    /// --s3-keep-local-days`); after that only the bucket holds it, and readers fetch it from
    /// there ([`crate::Store::read_through`]). Its index entry and manifest stay: lists, search
    /// filters and seal status need no request to the bucket. `None` (the default): keep it.
    pub keep_local: Option<Duration>,
}

impl Default for ShipperOptions {
    fn default() -> Self {
        Self {
            part_size: 8 * 1024 * 1024,
            interval: Duration::from_secs(2),
            keep_local: None,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Recordings shipped whole in this pass.
    pub shipped: Vec<String>,
    /// Recordings still being received whose upload went on.
    pub advanced: Vec<String>,
    /// Bytes of the chain shipped.
    pub chain_bytes: u64,
    /// Bytes of the event log shipped.
    pub event_bytes: u64,
    /// Recordings whose file was removed from the directory in this pass, kept only in the
    /// bucket from now on ([`ShipperOptions::keep_local`]).
    pub evicted: Vec<String>,
    /// Recordings (or `chain`) that failed, with why; tried again at the next pass.
    pub failed: Vec<(String, String)>,
}

/// Mirrors a recording directory into a bucket; see the module docs.
#[derive(Debug)]
pub struct Shipper {
    root: PathBuf,
    archive: S3Archive,
    options: ShipperOptions,
    /// Recordings shipped whole (the markers in `DIR/s3/shipped`).
    shipped: HashSet<String>,
    /// Uploads of files still growing, by file name.
    uploads: HashMap<String, SpoolUpload>,
    /// Bytes of the chain shipped: read from the bucket at the first pass that reaches it (the
    /// last chain object's offset plus its size), not from a local file that a crash or a hand
    /// could leave behind.
    chain_offset: Option<u64>,
    /// The recorder's public key: seals checked, removals carried out ([`Shipper::trust_key`]).
    recorder_key: Option<PublicKey>,
    /// The event log's shipping state.
    events: EventShipper,
    /// The recorder's sealer: evictions are recorded in its chain ([`Shipper::record_evictions_with`]).
    sealer: Option<Arc<Sealer>>,
}

impl Shipper {
    /// Opens the shipper's state in the recording directory `root` (created when missing).
    pub async fn open(
        root: &Path,
        archive: S3Archive,
        options: ShipperOptions,
    ) -> Result<Self, S3Error> {
        let root = root.to_owned();
        let state = root.join(STATE_DIR);
        for sub in ["uploads", "shipped"] {
            tokio::fs::create_dir_all(state.join(sub))
                .await
                .map_err(local(&state.join(sub)))?;
        }
        let mut shipped = HashSet::new();
        let mut markers = tokio::fs::read_dir(state.join("shipped"))
            .await
            .map_err(local(&state))?;
        while let Some(entry) = markers.next_entry().await.map_err(local(&state))? {
            if let Some(name) = entry.file_name().to_str() {
                shipped.insert(name.to_owned());
            }
        }
        Ok(Self {
            root,
            archive,
            options,
            shipped,
            uploads: HashMap::new(),
            chain_offset: None,
            recorder_key: None,
            events: EventShipper::new(),
            sealer: None,
        })
    }

    /// The recorder's sealer (`Store::shared_sealer`): the key it trusts ([`Shipper::trust_key`]),
    /// and the chain evictions are recorded in. Without it no file leaves the directory
    /// ([`ShipperOptions::keep_local`] is ignored).
    pub fn record_evictions_with(&mut self, sealer: Arc<Sealer>) {
        self.recorder_key = Some(sealer.public_key().clone());
        self.sealer = Some(sealer);
    }

    /// The bucket it ships to.
    pub fn archive(&self) -> &S3Archive {
        &self.archive
    }

    /// The recorder's public key. With it the shipper (1) ships a finished recording only if its
    /// manifest is signed by this key and vouches for the file's bytes, so nothing put in the
    /// directory by hand (a symlink to a secret, a forged recording) leaves the host, and (2)
    /// carries out in the bucket the removals retention records in the chain: when a new chain
    /// line is a `removed` entry signed by this key, the recording's objects are deleted before
    /// the line ships. Without it (library use) files are shipped as found and nothing is
    /// deleted; `kube-recorder serve` always sets it.
    pub fn trust_key(&mut self, key: PublicKey) {
        self.recorder_key = Some(key);
    }

    /// One pass over the directory: ships what finished, uploads what grew, ships new chain
    /// lines. Failures are reported, not returned: each is tried again at the next pass.
    pub async fn pass(&mut self) -> PassReport {
        let mut report = PassReport::default();
        let recordings = self.root.join("recordings");
        let files = match recording_files(&recordings).await {
            Ok(files) => files,
            Err(error) => {
                report.failed.push(("recordings".into(), error.to_string()));
                return report;
            }
        };
        for (id, names) in files {
            // Shipped, or a recording whose file the directory does not hold (restored from
            // the bucket, or an eviction a crash cut short): maybe kept only in the bucket now.
            if self.shipped.contains(&id) || names.data.is_empty() {
                match self.keep_in_bucket_only(&recordings, &id, &names).await {
                    Ok(true) => report.evicted.push(id),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(id, %error, "keeping a shipped recording only in S3 failed; retrying later");
                        report.failed.push((id, error.to_string()));
                    }
                }
                continue;
            }
            match self.ship_recording(&recordings, &id, &names).await {
                Ok(Progress::Shipped) => report.shipped.push(id),
                Ok(Progress::Advanced) => report.advanced.push(id),
                Ok(Progress::Nothing) => {}
                Err(error) => {
                    tracing::warn!(id, %error, "shipping a recording to S3 failed; retrying later");
                    report.failed.push((id, error.to_string()));
                }
            }
        }
        match self.ship_chain().await {
            Ok(bytes) => report.chain_bytes = bytes,
            Err(error) => {
                tracing::warn!(%error, "shipping the chain to S3 failed; retrying later");
                report.failed.push(("chain".into(), error.to_string()));
            }
        }
        match self.events.pass(&self.archive, &self.root).await {
            Ok(bytes) => report.event_bytes = bytes,
            Err(error) => {
                tracing::warn!(%error, "shipping the event log to S3 failed; retrying later");
                report.failed.push(("events".into(), error.to_string()));
            }
        }
        report
    }

    /// Runs passes every [`ShipperOptions::interval`] until stopped; the last pass runs after the
    /// stop is asked for, so what ended at shutdown ships too.
    pub fn spawn(mut self) -> ShipperHandle {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let report = self.pass().await;
                for id in &report.shipped {
                    tracing::info!(
                        id,
                        bucket = self.archive.bucket(),
                        "recording shipped to S3"
                    );
                }
                if *stopped.borrow() {
                    return report;
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.options.interval) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        ShipperHandle { stop, task }
    }

    async fn ship_recording(
        &mut self,
        recordings: &Path,
        id: &str,
        names: &RecordingFiles,
    ) -> Result<Progress, S3Error> {
        let Some(index) = &names.index else {
            return Ok(Progress::Nothing);
        };
        let entry = read_small(&recordings.join(index)).await?;
        let finished = serde_json::from_slice::<serde_json::Value>(&entry)
            .map(|meta| meta["outcome"].as_str() != Some("recording"))
            .map_err(|error| S3Error::Config(format!("index entry {index}: {error}")))?;
        if !finished {
            let mut advanced = false;
            for name in &names.data {
                advanced |= self.advance(recordings, name).await?;
            }
            return Ok(if advanced {
                Progress::Advanced
            } else {
                Progress::Nothing
            });
        }
        // Only what the recorder sealed leaves the host: a file put in the directory by hand (a
        // symlink to a key, say) is not shipped, whatever its name.
        let Some(manifest_name) = &names.manifest else {
            return Err(S3Error::Config(format!(
                "{id} has no seal; not shipped (kube-recorder verify names why)"
            )));
        };
        let manifest = read_small(&recordings.join(manifest_name)).await?;
        let data = match &self.recorder_key {
            Some(key) => vouched_file(recordings, id, &manifest, key).await?,
            None => names.data.clone(),
        };
        let mut found_in_bucket = false;
        for name in &data {
            found_in_bucket |= self.finish_file(recordings, name).await?;
        }
        // An object the bucket already had (shipped before a lost marker, or put there by
        // someone else) stays only if it is the sealed bytes.
        if found_in_bucket && self.recorder_key.is_some() {
            let parsed: Manifest = serde_json::from_slice(&manifest)
                .map_err(|error| S3Error::Config(format!("{id}: unreadable manifest: {error}")))?;
            crate::store::matches_seal(&self.archive, id, &parsed)
                .await
                .map_err(|why| S3Error::Config(format!("{id} not shipped: {why}")))?;
        }
        self.put_once(&format!("recordings/{manifest_name}"), manifest)
            .await?;
        // Last: an index entry in the bucket says the rest of the recording is there.
        self.put_once(&format!("recordings/{index}"), entry).await?;
        write_durably(self.state().join("shipped").join(id), Vec::new()).await?;
        self.shipped.insert(id.to_owned());
        Ok(Progress::Shipped)
    }

    /// Keeps a shipped recording only in the bucket once [`ShipperOptions::keep_local`] has
    /// passed since it shipped; whether it did (now). Before its local file goes, the bucket's
    /// object is read back through the seal's hash chain and must be the sealed bytes (a bucket
    /// writer cannot get the only good copy removed), then an `evicted` entry, signed by the
    /// recorder, is appended to the chain (so `verify --dir` tells it from a deletion, and a
    /// marker file put in the directory by hand means nothing). A recording the directory holds
    /// no file of, and the chain does not name as evicted (a restore or an eviction a crash cut
    /// short), gets the entry once the bucket is seen to hold its file at the sealed size,
    /// whatever `keep_local` says: its file is already only in the bucket. Needs the recorder's sealer
    /// ([`Shipper::record_evictions_with`]); without one nothing is evicted.
    async fn keep_in_bucket_only(
        &mut self,
        recordings: &Path,
        id: &str,
        names: &RecordingFiles,
    ) -> Result<bool, S3Error> {
        let Some(sealer) = self.sealer.clone() else {
            return Ok(false);
        };
        if names.index.is_none() || names.manifest.is_none() || sealer.is_removed(id) {
            return Ok(false);
        }
        let evicted = sealer.is_evicted(id);
        if names.data.is_empty() {
            if evicted {
                self.shipped.insert(id.to_owned());
                return Ok(false);
            }
        } else {
            let Some(keep) = self.options.keep_local else {
                return Ok(false);
            };
            let marker = self.state().join("shipped").join(id);
            let shipped_at = tokio::fs::metadata(&marker)
                .await
                .and_then(|metadata| metadata.modified())
                .map_err(local(&marker))?;
            if shipped_at.elapsed().unwrap_or_default() < keep {
                return Ok(false);
            }
        }
        let manifest = sealed_manifest(recordings, id, sealer.public_key())
            .await
            .map_err(|why| S3Error::Config(format!("{id} kept locally: {why}")))?;
        if !names.data.is_empty() && names.data != [manifest.file.clone()] {
            return Err(S3Error::Config(format!(
                "{id} kept locally: its files {:?} are not the one its seal names",
                names.data
            )));
        }
        if names.data.is_empty() {
            // No local copy to lose: the bucket must hold the file at its sealed size (its bytes
            // are checked by `verify --s3-bucket` and the seal status, not read back here).
            let key = format!("recordings/{}", manifest.file);
            match self.archive.size(&key).await? {
                Some(size) if size == manifest.size => {}
                // Removed from the bucket (retention, its local removal not finished), or never
                // shipped: nothing to adopt.
                None => return Ok(false),
                Some(stored) => {
                    return Err(S3Error::SizeMismatch {
                        key,
                        stored,
                        expected: manifest.size,
                    })
                }
            }
        } else {
            // The only good copy must not go: the bucket's bytes are read back and checked.
            crate::store::matches_seal(&self.archive, id, &manifest)
                .await
                .map_err(|why| S3Error::Config(format!("{id} kept locally: {why}")))?;
        }
        // The marker first (durably): the shipper never ships a recording of the bucket back.
        if !self.shipped.contains(id) {
            write_durably(self.state().join("shipped").join(id), Vec::new()).await?;
            self.shipped.insert(id.to_owned());
        }
        if !evicted {
            let location = crate::store::RecordingStorage::location(&self.archive);
            let (sealer, owned) = (sealer.clone(), id.to_owned());
            tokio::task::spawn_blocking(move || sealer.record_eviction(&owned, &location))
                .await
                .map_err(|error| S3Error::Config(format!("recording an eviction: {error}")))?
                .map_err(|error| S3Error::Config(format!("recording an eviction: {error}")))?;
        }
        for name in &names.data {
            let path = recordings.join(name);
            tokio::fs::remove_file(&path).await.map_err(local(&path))?;
        }
        sync_dir(recordings).await?;
        tracing::info!(
            id,
            bucket = self.archive.bucket(),
            "recording now kept only in S3"
        );
        Ok(true)
    }

    /// Uploads the whole parts of a growing file not uploaded yet; whether it uploaded any.
    async fn advance(&mut self, recordings: &Path, name: &str) -> Result<bool, S3Error> {
        let path = recordings.join(name);
        let len = file_len(&path).await?;
        let upload = self.upload_of(name).await?;
        let progressed = upload.advance(&path, len).await?;
        if progressed {
            let journal = upload.journal().clone();
            self.save_journal(name, &journal).await?;
        }
        Ok(progressed)
    }

    /// Uploads the rest of a file that no longer grows and assembles its object; whether the
    /// bucket had an object of its size already (then kept, and not uploaded again).
    async fn finish_file(&mut self, recordings: &Path, name: &str) -> Result<bool, S3Error> {
        let path = recordings.join(name);
        let len = file_len(&path).await?;
        self.upload_of(name).await?;
        let Some(upload) = self.uploads.remove(name) else {
            return Ok(false);
        };
        let key = format!("recordings/{name}");
        let mut found = false;
        match self.archive.size(&key).await? {
            None => upload.finish(&path, len).await?,
            // Shipped before (the local marker was lost): the bucket's copy stays, once the
            // caller has checked it against the seal.
            Some(stored) if stored == len => {
                let _ = upload.abort().await;
                found = true;
            }
            Some(stored) => {
                let _ = upload.abort().await;
                return Err(S3Error::SizeMismatch {
                    key,
                    stored,
                    expected: len,
                });
            }
        }
        let journal = self.journal_path(name);
        match tokio::fs::remove_file(&journal).await {
            Ok(()) => Ok(found),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(found),
            Err(error) => Err(local(&journal)(error)),
        }
    }

    /// The upload of `name`: in memory, resumed from its journal, or new.
    async fn upload_of(&mut self, name: &str) -> Result<&mut SpoolUpload, S3Error> {
        if !self.uploads.contains_key(name) {
            let journal_path = self.journal_path(name);
            let upload = match tokio::fs::read(&journal_path).await {
                Ok(bytes) => match serde_json::from_slice::<UploadJournal>(&bytes) {
                    Ok(journal) => SpoolUpload::resume(&self.archive, journal)?,
                    // Cut by a crash: the parts it named are lost to this upload (a lifecycle
                    // rule for incomplete uploads removes them); the file is uploaded again.
                    Err(error) => {
                        tracing::warn!(
                            journal = %journal_path.display(),
                            %error,
                            "unreadable upload journal; uploading the file again"
                        );
                        SpoolUpload::new(
                            &self.archive,
                            &format!("recordings/{name}"),
                            self.options.part_size,
                        )?
                    }
                },
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => SpoolUpload::new(
                    &self.archive,
                    &format!("recordings/{name}"),
                    self.options.part_size,
                )?,
                Err(error) => return Err(local(&journal_path)(error)),
            };
            self.uploads.insert(name.to_owned(), upload);
        }
        self.uploads
            .get_mut(name)
            .ok_or_else(|| S3Error::Config(format!("upload of {name} vanished")))
    }

    /// Puts `bytes` as `key` unless the bucket has it: what was shipped is never overwritten
    /// (someone who can write the directory could otherwise replace the bucket's copy, the one
    /// kept off the host). An object of the same size is taken as shipped before; another size
    /// is an error.
    async fn put_once(&self, key: &str, bytes: Bytes) -> Result<(), S3Error> {
        match self.archive.size(key).await? {
            None => self.archive.put(key, bytes).await,
            Some(stored) if stored == bytes.len() as u64 => Ok(()),
            Some(stored) => Err(S3Error::SizeMismatch {
                key: key.to_owned(),
                stored,
                expected: bytes.len() as u64,
            }),
        }
    }

    /// Writes the journal durably (temporary file, fsync, rename, directory fsync): after a
    /// power loss it is the old one or the new one, never empty.
    async fn save_journal(&self, name: &str, journal: &UploadJournal) -> Result<(), S3Error> {
        let path = self.journal_path(name);
        let bytes = serde_json::to_vec(journal)
            .map_err(|error| S3Error::Config(format!("journal of {name}: {error}")))?;
        write_durably(path, bytes).await
    }

    /// Ships the chain's lines added since the last pass; the bytes shipped.
    async fn ship_chain(&mut self) -> Result<u64, S3Error> {
        let shipped = match self.chain_offset {
            Some(offset) => offset,
            None => {
                let offset = self.shipped_chain_bytes().await?;
                self.chain_offset = Some(offset);
                offset
            }
        };
        let path = self.root.join(CHAIN_FILE);
        let len = match tokio::fs::metadata(&path).await {
            Ok(metadata) => metadata.len(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(local(&path)(error)),
        };
        if len < shipped {
            return Err(S3Error::Config(format!(
                "{} is {len} bytes, shorter than the {} already shipped: it was cut",
                path.display(),
                shipped
            )));
        }
        if len == shipped {
            return Ok(0);
        }
        let new = read_from(&path, shipped, len).await?;
        // Only whole lines: a line being appended is shipped at the next pass.
        let Some(end) = new.iter().rposition(|&b| b == b'\n').map(|i| i + 1) else {
            return Ok(0);
        };
        let lines = new.slice(..end);
        // Removals first: a removal the bucket did not carry out is tried again with its line.
        self.remove_in_bucket(&lines).await?;
        let key = format!("chain/{shipped:020}.jsonl");
        self.put_once(&key, lines).await?;
        self.chain_offset = Some(shipped + end as u64);
        Ok(end as u64)
    }

    /// Bytes of the chain the bucket holds: the last chain object's offset plus its size.
    async fn shipped_chain_bytes(&self) -> Result<u64, S3Error> {
        let Some(last) = self.archive.list("chain/").await?.pop() else {
            return Ok(0);
        };
        last.key
            .strip_prefix("chain/")
            .and_then(|name| name.strip_suffix(".jsonl"))
            .and_then(|offset| offset.parse::<u64>().ok())
            .and_then(|offset| offset.checked_add(last.size))
            .ok_or_else(|| {
                S3Error::Config(format!(
                    "unexpected chain object {:?} in the bucket",
                    last.key
                ))
            })
    }

    /// Deletes the objects of each recording a signed `removed` entry in `lines` names.
    async fn remove_in_bucket(&mut self, lines: &[u8]) -> Result<(), S3Error> {
        let Some(key) = &self.recorder_key else {
            return Ok(());
        };
        let mut removed = Vec::new();
        for line in lines.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            let Ok(entry) = serde_json::from_slice::<ChainEntry>(line) else {
                continue;
            };
            if entry.entry_type != EntryType::Removed || !is_valid_id(&entry.id) {
                continue;
            }
            if !entry.signature_valid(key) {
                tracing::warn!(
                    id = entry.id,
                    "a removed chain entry without the recorder's signature: not removed from S3"
                );
                continue;
            }
            removed.push(entry.id);
        }
        for id in removed {
            // Every name a recording's files can have (deleting a missing object is no error);
            // listing would mean listing the whole bucket, as S3 lists by whole path segments here.
            for suffix in RECORDING_SUFFIXES {
                self.archive
                    .delete(&format!("recordings/{id}.{suffix}"))
                    .await?;
            }
            tracing::info!(id, "recording removed from S3 (retention)");
            // Its shipped marker stays: files a crash left behind mid-removal are not shipped
            // again before the next sweep deletes them.
            if self.shipped.insert(id.clone()) {
                let marker = self.state().join("shipped").join(&id);
                tokio::fs::write(&marker, b"")
                    .await
                    .map_err(local(&marker))?;
            }
        }
        Ok(())
    }

    fn state(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    fn journal_path(&self, name: &str) -> PathBuf {
        self.state().join("uploads").join(format!("{name}.json"))
    }
}

/// A running [`Shipper`].
#[derive(Debug)]
pub struct ShipperHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<PassReport>,
}

impl ShipperHandle {
    /// Runs a last pass (what ended at shutdown ships too) and stops; the last pass's report.
    /// A pass that takes longer than `grace` is abandoned: what it did not ship ships at the
    /// next start.
    pub async fn stop(self, grace: Duration) -> Option<PassReport> {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(report)) => Some(report),
            Ok(Err(_)) => None,
            Err(_) => {
                abort.abort();
                None
            }
        }
    }
}

enum Progress {
    Shipped,
    Advanced,
    Nothing,
}

/// The files of one recording in the directory.
#[derive(Debug, Default)]
struct RecordingFiles {
    /// `<id>.json`.
    index: Option<String>,
    /// `<id>.manifest.json`.
    manifest: Option<String>,
    /// The recording itself: `<id>.cast`, `.pfcap`, `.cast.age`, ...
    data: Vec<String>,
}

/// The recordings in `recordings/`, by ID, in ID order (oldest first).
async fn recording_files(recordings: &Path) -> Result<BTreeMap<String, RecordingFiles>, S3Error> {
    let mut files: BTreeMap<String, RecordingFiles> = BTreeMap::new();
    let mut entries = tokio::fs::read_dir(recordings)
        .await
        .map_err(local(recordings))?;
    while let Some(entry) = entries.next_entry().await.map_err(local(recordings))? {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // Regular files only: a symlink (to a key, say) is never followed out of the directory.
        if !entry
            .file_type()
            .await
            .map_err(local(recordings))?
            .is_file()
        {
            continue;
        }
        // Hidden files are temporary index entries being replaced.
        if name.starts_with('.') {
            continue;
        }
        let Some((id, rest)) = name.split_once('.') else {
            continue;
        };
        if !is_valid_id(id) {
            continue;
        }
        let slot = files.entry(id.to_owned()).or_default();
        match rest {
            "json" => slot.index = Some(name),
            "manifest.json" => slot.manifest = Some(name),
            "cast" | "pfcap" | "cast.age" | "pfcap.age" => slot.data.push(name),
            _ => {}
        }
    }
    Ok(files)
}

/// Index entries and manifests are small; anything larger is not one.
const MAX_SIDECAR: u64 = 1024 * 1024;

async fn read_small(path: &Path) -> Result<Bytes, S3Error> {
    let len = file_len(path).await?;
    if len > MAX_SIDECAR {
        return Err(S3Error::TooLarge {
            key: path.display().to_string(),
            size: len,
            limit: MAX_SIDECAR,
        });
    }
    tokio::fs::read(path)
        .await
        .map(Bytes::from)
        .map_err(local(path))
}

async fn read_from(path: &Path, start: u64, end: u64) -> Result<Bytes, S3Error> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let mut file = tokio::fs::File::open(path).await.map_err(local(path))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(local(path))?;
    let len = usize::try_from(end - start)
        .map_err(|_| S3Error::Config(format!("{} grew too much at once", path.display())))?;
    let mut buffer = vec![0; len];
    file.read_exact(&mut buffer).await.map_err(local(path))?;
    Ok(Bytes::from(buffer))
}

async fn file_len(path: &Path) -> Result<u64, S3Error> {
    tokio::fs::metadata(path)
        .await
        .map(|metadata| metadata.len())
        .map_err(local(path))
}

/// The data file the recording's manifest vouches for, checked: the manifest is signed by `key`,
/// names this recording, and its hash chain is that of the file's bytes (a regular file).
async fn vouched_file(
    recordings: &Path,
    id: &str,
    manifest_bytes: &[u8],
    key: &PublicKey,
) -> Result<Vec<String>, S3Error> {
    let refused = |why: String| S3Error::Config(format!("{id} not shipped: {why}"));
    let manifest: Manifest = serde_json::from_slice(manifest_bytes)
        .map_err(|error| refused(format!("unreadable manifest: {error}")))?;
    if manifest.id != id || !manifest.signature_valid(key) {
        return Err(refused(
            "its manifest is not signed by the recorder's key".into(),
        ));
    }
    if manifest.file.contains('/') || !manifest.file.starts_with(&format!("{id}.")) {
        return Err(refused(format!(
            "its manifest names the file {:?}",
            manifest.file
        )));
    }
    let path = recordings.join(&manifest.file);
    let metadata = tokio::fs::symlink_metadata(&path)
        .await
        .map_err(local(&path))?;
    if !metadata.is_file() {
        return Err(refused(format!("{} is not a regular file", manifest.file)));
    }
    let (owned_id, owned_path, algorithm) = (id.to_owned(), path.clone(), manifest.hash_algorithm);
    let digest = tokio::task::spawn_blocking(move || hash_file(&owned_id, &owned_path, algorithm))
        .await
        .map_err(|error| refused(format!("hashing failed: {error}")))?
        .map_err(local(&path))?;
    let hash: String = digest.hash.iter().map(|b| format!("{b:02x}")).collect();
    if digest.size != manifest.size || hash != manifest.hash {
        return Err(refused(format!(
            "{} no longer matches its seal (kube-recorder verify names why)",
            manifest.file
        )));
    }
    Ok(vec![manifest.file])
}

/// The recording's manifest in the directory, signed by `key` for `id`; why not, otherwise.
async fn sealed_manifest(recordings: &Path, id: &str, key: &PublicKey) -> Result<Manifest, String> {
    let (dir, owned) = (recordings.to_owned(), id.to_owned());
    let manifest = tokio::task::spawn_blocking(move || crate::seal::read_manifest(&dir, &owned))
        .await
        .ok()
        .flatten()
        .ok_or("no readable manifest")?;
    if manifest.id != id || !manifest.signature_valid(key) {
        return Err("its manifest is not signed by the recorder's key".into());
    }
    if manifest.file.contains('/') || !manifest.file.starts_with(&format!("{id}.")) {
        return Err(format!("its manifest names the file {:?}", manifest.file));
    }
    Ok(manifest)
}

/// Writes `bytes` to `path` durably: a temporary file beside it, fsynced, renamed over it, and the
/// directory fsynced.
async fn write_durably(path: PathBuf, bytes: Vec<u8>) -> Result<(), S3Error> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(local(&tmp))?;
        file.write_all(&bytes).map_err(local(&tmp))?;
        file.sync_all().map_err(local(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(local(&path))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(local(dir))?;
        }
        Ok(())
    })
    .await
    .map_err(|error| S3Error::Config(format!("writing a journal: {error}")))?
}
