//! The recording directory: casts, their index entries and the event log.
//!
//! ```text
//! DIR/
//!   recordings/
//!     <id>.cast     the asciicast v2 stream exactly as received, fsynced when the upload ends
//!     <id>.pfcap    a port-forward capture (kap-port-forward/1) exactly as received, instead
//!                   of a cast (index entry kind `port-forward-capture`)
//!     <id>.cast.age, <id>.pfcap.age  instead, when the store encrypts (`serve --encrypt-to`):
//!                   the same bytes as an age v1 file (see [`crate::crypt`])
//!     <id>.json     its index entry (RecordingMeta), replaced atomically
//!     <id>.manifest.json  its seal, when the store seals (see [`crate::seal`])
//!   events/
//!     YYYY-MM-DD.jsonl   API events received that UTC day, one JSON object per line
//!   chain.jsonl          the hash-chained index of seals; signing-key.pem(.pub) by default
//!   holds.json           recordings retention keeps regardless (see `Store::hold`)
//! ```
//!
//! Several readers (the server, `kube-recorder ls --dir`) may use one directory at once; only one
//! server should write to it.

mod backend;
mod index_file;
mod recording_writer;
mod retention;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use castfmt::{Outcome, Protocol};
use serde_json::value::RawValue;
use tokio::io::AsyncReadExt as _;

pub(crate) use backend::matches_seal;
pub use backend::{DirStorage, RecordingReader, RecordingStorage};
pub(crate) use index_file::{recording_of, sync_dir};
pub(crate) use recording_writer::write_notifications;
pub use recording_writer::{RecordingEnd, RecordingWriter};
pub use retention::{Hold, SweepReport, HOLDS_FILE};

use crate::civil_time::unix_now;
use crate::crypt::{EncryptingFile, Recipients};
use crate::error::StoreError;
use crate::events::{self, EventFilter};
use crate::recording_id::{is_valid_id, new_id};
use crate::recording_meta::{RecordingKind, RecordingMeta};
use crate::seal::{self, Sealer};

/// Subdirectory holding casts and index entries.
const RECORDINGS: &str = "recordings";
/// Subdirectory holding the event log.
const EVENTS: &str = "events";

/// A recording directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    root: Arc<Path>,
    /// Seals recordings as they end, when set ([`Store::seal_with`]).
    sealer: Option<Arc<Sealer>>,
    /// Encrypts new recordings to these keys, when set ([`Store::encrypt_to`]).
    encrypt_to: Option<Recipients>,
    /// Where finished recordings are read from when the directory no longer holds them
    /// ([`Store::read_through`]).
    backend: Option<Arc<dyn RecordingStorage>>,
}

impl Store {
    /// Opens an existing recording directory for reading.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root: PathBuf = dir.into();
        let metadata = tokio::fs::metadata(&root)
            .await
            .map_err(StoreError::io("open", &root))?;
        if !metadata.is_dir() {
            return Err(StoreError::Io {
                op: "open",
                path: root,
                source: std::io::Error::other("not a directory"),
            });
        }
        Ok(Self {
            root: root.into(),
            sealer: None,
            encrypt_to: None,
            backend: None,
        })
    }

    /// Opens a recording directory for writing, creating it and its subdirectories if needed.
    /// Recordings that end are sealed ([`crate::seal`]) with the directory's own key,
    /// `DIR/signing-key.pem`, created when missing.
    pub async fn create(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::create_sealed_with(dir, None).await
    }

    /// [`Store::create`], sealing with the key at `key` (created when missing) instead of the
    /// directory's own when one is given: `kube-recorder serve --signing-key`.
    pub async fn create_sealed_with(
        dir: impl Into<PathBuf>,
        key: Option<&Path>,
    ) -> Result<Self, StoreError> {
        let root: PathBuf = dir.into();
        for sub in [RECORDINGS, EVENTS] {
            let path = root.join(sub);
            tokio::fs::create_dir_all(&path)
                .await
                .map_err(StoreError::io("create", &path))?;
        }
        let store = Self {
            root: root.into(),
            sealer: None,
            encrypt_to: None,
            backend: None,
        };
        let key = key.map_or_else(|| seal::default_key_path(&store.root), Path::to_path_buf);
        store.seal_with(&key).await
    }

    /// Seals every recording that ends from now on (and, in [`Store::recover`], those an
    /// earlier run left unsealed) with the Ed25519 key at `key`, created (mode 0600, with
    /// `<key>.pub` beside it) when missing. See [`crate::seal`].
    pub async fn seal_with(mut self, key: &Path) -> Result<Self, StoreError> {
        let root = self.root.to_path_buf();
        let key = key.to_owned();
        let sealer = blocking(move || Ok(Sealer::open(&root, &key)?)).await?;
        tracing::info!(key_id = %sealer.public_key().key_id(), "sealing recordings");
        self.sealer = Some(Arc::new(sealer));
        Ok(self)
    }

    /// Stores every recording that starts from now on encrypted to `recipients`, as an age file
    /// (`<id>.cast.age`, `<id>.pfcap.age`): no plaintext of it reaches the disk. Its index entry
    /// stays plaintext and says `encrypted`. See [`crate::crypt`].
    pub fn encrypt_to(mut self, recipients: Recipients) -> Self {
        tracing::info!(recipients = ?recipients.to_strings(), "encrypting recordings at rest");
        self.encrypt_to = Some(recipients);
        self
    }

    /// Whether new recordings are encrypted.
    pub fn encrypts(&self) -> bool {
        self.encrypt_to.is_some()
    }

    /// The sealer, when the store seals.
    pub fn sealer(&self) -> Option<&Sealer> {
        self.sealer.as_deref()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    pub(crate) fn recordings_dir(&self) -> PathBuf {
        self.root.join(RECORDINGS)
    }

    pub(crate) fn events_dir(&self) -> PathBuf {
        self.root.join(EVENTS)
    }

    /// Every recording's index entry, newest upload first. Entries that cannot be read are
    /// skipped with a warning.
    pub async fn list(&self) -> Result<Vec<RecordingMeta>, StoreError> {
        let dir = self.recordings_dir();
        blocking(move || {
            let mut entries = Vec::new();
            for (name, path) in dir_entries(&dir)? {
                if name.starts_with('.')
                    || !name.ends_with(index_file::INDEX_SUFFIX)
                    || name.ends_with(seal::MANIFEST_SUFFIX)
                {
                    continue;
                }
                match index_file::read(&path) {
                    Ok(meta) => entries.push(meta),
                    Err(error) => tracing::warn!(%error, "skipping index entry"),
                }
            }
            entries.sort_by(|a, b| {
                b.received_at
                    .total_cmp(&a.received_at)
                    .then_with(|| b.id.cmp(&a.id))
            });
            Ok(entries)
        })
        .await
    }

    /// The index entry of one recording.
    pub async fn get(&self, id: &str) -> Result<RecordingMeta, StoreError> {
        check_id(id)?;
        let path = index_file::index_path(&self.recordings_dir(), id);
        let id = id.to_owned();
        blocking(move || match index_file::read(&path) {
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(id))
            }
            other => other,
        })
        .await
    }

    /// Path of a recording's cast file (which may not exist).
    pub fn cast_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        check_id(id)?;
        Ok(index_file::cast_path(&self.recordings_dir(), id))
    }

    /// Opens a recording's cast for reading; it may still be growing.
    pub async fn open_cast(&self, id: &str) -> Result<RecordingReader, StoreError> {
        self.open_kind(id, false, false).await
    }

    /// Path of a port-forward capture's file (which may not exist).
    pub fn capture_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        check_id(id)?;
        Ok(index_file::capture_path(&self.recordings_dir(), id))
    }

    /// Opens a port-forward capture for reading; it may still be growing.
    pub async fn open_capture(&self, id: &str) -> Result<RecordingReader, StoreError> {
        self.open_kind(id, true, false).await
    }

    /// Opens an encrypted recording's file (`<id>.cast.age`, else `<id>.pfcap.age`), the age
    /// ciphertext as stored; it may still be growing.
    pub async fn open_encrypted(
        &self,
        id: &str,
    ) -> Result<(RecordingKind, RecordingReader), StoreError> {
        match self.open_kind(id, false, true).await {
            Err(StoreError::NotFound(_)) => Ok((
                RecordingKind::PortForwardCapture,
                self.open_kind(id, true, true).await?,
            )),
            other => other.map(|file| (RecordingKind::Cast, file)),
        }
    }

    /// Opens a recording's file, whichever its kind: the cast, else the capture.
    pub async fn open_recording(
        &self,
        id: &str,
    ) -> Result<(RecordingKind, RecordingReader), StoreError> {
        match self.open_cast(id).await {
            Err(StoreError::NotFound(_)) => Ok((
                RecordingKind::PortForwardCapture,
                self.open_capture(id).await?,
            )),
            other => other.map(|file| (RecordingKind::Cast, file)),
        }
    }

    /// A recording's whole cast in memory (for small recordings and tests; playback streams).
    pub async fn read_cast(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let mut reader = self.open_cast(id).await?;
        let mut cast = Vec::new();
        reader
            .read_to_end(&mut cast)
            .await
            .map_err(|source| StoreError::Io {
                op: "read",
                path: index_file::cast_path(&self.recordings_dir(), id),
                source,
            })?;
        Ok(cast)
    }

    /// Reads finished recordings the directory no longer holds from `backend` as well: the
    /// bucket `serve --storage s3` ships them to ([`crate::s3::S3Archive`] is one). The
    /// directory is always asked first; see [`RecordingStorage`].
    pub fn read_through(mut self, backend: Arc<dyn RecordingStorage>) -> Self {
        tracing::info!(
            backend = backend.location(),
            "reading recordings not in the directory from the storage backend"
        );
        self.backend = Some(backend);
        self
    }

    /// The storage backend besides the directory, when there is one ([`Store::read_through`]).
    pub fn backend(&self) -> Option<&Arc<dyn RecordingStorage>> {
        self.backend.as_ref()
    }

    /// Opens the file of `id` of one kind: from the directory, else from the backend.
    async fn open_kind(
        &self,
        id: &str,
        capture: bool,
        encrypted: bool,
    ) -> Result<RecordingReader, StoreError> {
        check_id(id)?;
        let name = index_file::recording_file_name(id, capture, encrypted);
        if let Some(file) = DirStorage::new(self.recordings_dir()).open(&name).await? {
            return Ok(file);
        }
        if let Some(backend) = &self.backend {
            // Only the file the index entry names is asked of the bucket: a file of another
            // kind put there never stands in for what the directory holds.
            let meta = self.get(id).await?;
            let named = (
                meta.kind == RecordingKind::PortForwardCapture,
                meta.encrypted,
            );
            if named == (capture, encrypted) {
                if let Some(object) = backend.open(&name).await? {
                    return Ok(object);
                }
            }
        }
        Err(StoreError::NotFound(id.to_owned()))
    }

    /// Whether the store's backend holds the bytes recording `id` is sealed with (see
    /// [`matches_seal`]); why not, otherwise (no backend, no readable manifest, other bytes).
    pub async fn check_in_backend(&self, id: &str) -> Result<(), String> {
        check_id(id).map_err(|error| error.to_string())?;
        let backend = self
            .backend
            .clone()
            .ok_or("kept only in object storage, and no bucket is configured")?;
        let (recordings, owned) = (self.recordings_dir(), id.to_owned());
        let manifest =
            tokio::task::spawn_blocking(move || seal::read_manifest(&recordings, &owned))
                .await
                .ok()
                .flatten()
                .ok_or("manifest unreadable")?;
        if manifest.id != id {
            return Err(format!("its manifest is of recording {}", manifest.id));
        }
        matches_seal(backend.as_ref(), id, &manifest).await
    }

    /// The sealer, shared: for the S3 shipper, which records evictions in the chain.
    pub fn shared_sealer(&self) -> Option<Arc<Sealer>> {
        self.sealer.clone()
    }

    /// Starts a new recording: reserves an ID, creates its cast file and writes its first index
    /// entry (outcome `recording`).
    pub async fn create_recording(
        &self,
        protocol: Protocol,
    ) -> Result<RecordingWriter, StoreError> {
        self.create_recording_of(RecordingKind::Cast, protocol)
            .await
    }

    /// Starts a new recording of `kind`: a cast as [`create_recording`](Self::create_recording),
    /// or a port-forward capture (`<id>.pfcap`).
    pub async fn create_recording_of(
        &self,
        kind: RecordingKind,
        protocol: Protocol,
    ) -> Result<RecordingWriter, StoreError> {
        let dir = self.recordings_dir();
        let received_at = unix_now();
        let recipients = self.encrypt_to.clone();
        let (meta, file, cipher) = blocking(move || loop {
            let id = new_id(received_at);
            let capture = kind == RecordingKind::PortForwardCapture;
            let encrypted = recipients.is_some();
            // No other file of the ID may exist (the other kind, or one stored before encryption
            // was turned on or off): they would share the index entry.
            let taken = [(false, false), (false, true), (true, false), (true, true)]
                .into_iter()
                .filter(|&other| other != (capture, encrypted))
                .any(|(c, e)| index_file::recording_path(&dir, &id, c, e).exists());
            if taken {
                continue;
            }
            let path = index_file::recording_path(&dir, &id, capture, encrypted);
            // create_new makes the ID unique even if two uploads draw the same suffix.
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    let mut meta = if capture {
                        RecordingMeta::begin_capture(id, protocol, received_at)
                    } else {
                        RecordingMeta::begin(id, protocol, received_at)
                    };
                    let file = Arc::new(file);
                    // The age header goes first, so the file is never plaintext, even empty.
                    let cipher = match &recipients {
                        Some(recipients) => Some(Arc::new(
                            EncryptingFile::start(recipients, file.clone(), &meta.id)
                                .map_err(StoreError::io("write", &path))?,
                        )),
                        None => None,
                    };
                    meta.encrypted = encrypted;
                    index_file::write(&dir, &meta)?;
                    return Ok((meta, file, cipher));
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(StoreError::io("create", &path)(error)),
            }
        })
        .await?;
        Ok(RecordingWriter::new(meta, file, self.recordings_dir())
            .encrypted_by(cipher)
            .sealed_by(self.sealer.clone()))
    }

    /// Repairs what a crash or kill left behind, for a server about to start writing: entries
    /// still `recording` become `incomplete` (their numbers read again from the cast), casts
    /// without an entry get one, leftover temporary files go. Returns the entries it changed.
    ///
    /// When the store seals, recordings it repairs are sealed (as incomplete), and so is every
    /// finished recording the chain does not name yet (a crash between its end and its seal, or
    /// recordings stored before sealing was turned on).
    ///
    /// Removals a crash left unfinished (a `removed` chain entry, files still there) are
    /// finished first ([`Store::finish_removals`]).
    ///
    /// Only call this when no other server writes to the directory.
    pub async fn recover(&self) -> Result<Vec<RecordingMeta>, StoreError> {
        let dir = self.recordings_dir();
        let sealer = self.sealer.clone();
        blocking(move || {
            if let Some(sealer) = &sealer {
                retention::finish_removals(sealer, &dir)?;
            }
            let mut repaired = Vec::new();
            let entries = dir_entries(&dir)?;
            for (name, path) in &entries {
                if index_file::is_leftover_tmp(name) {
                    let _ = std::fs::remove_file(path);
                    continue;
                }
                let Some((id, capture, encrypted)) = index_file::recording_of(name) else {
                    continue;
                };
                let index = index_file::index_path(&dir, id);
                let mut meta = match index_file::read(&index) {
                    Ok(meta) if meta.outcome != Outcome::Recording => continue,
                    Ok(meta) => meta,
                    Err(_) if index.exists() => continue,
                    Err(_) => {
                        let mtime = std::fs::metadata(path)
                            .and_then(|m| m.modified())
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0.0, |d| d.as_secs_f64());
                        let mut meta = if capture {
                            RecordingMeta::begin_capture(id.to_owned(), Protocol::Unknown, mtime)
                        } else {
                            RecordingMeta::begin(id.to_owned(), Protocol::Unknown, mtime)
                        };
                        meta.encrypted = encrypted;
                        meta
                    }
                };
                if encrypted {
                    // No key here to read it again: the entry keeps what the upload's scan had
                    // written (the header's who and where), the size stored, and as its bytes
                    // the plaintext its whole chunks hold (what decrypts).
                    meta.stored_bytes = Some(
                        std::fs::metadata(path)
                            .map_err(StoreError::io("read", path))?
                            .len(),
                    );
                    match crate::crypt::whole_chunk_plaintext(path) {
                        Ok(plaintext) => meta.bytes = plaintext,
                        Err(error) => {
                            tracing::warn!(id, %error, "cannot size an encrypted recording");
                        }
                    }
                } else if capture {
                    meta.absorb_capture(&index_file::rescan_capture(path)?);
                } else {
                    meta.absorb(&index_file::rescan(path)?);
                }
                meta.outcome = Outcome::Incomplete;
                meta.reason = Some(if encrypted {
                    "the recorder stopped before the upload ended (the encrypted file decrypts up to its last whole 64 KiB chunk)".to_owned()
                } else {
                    "the recorder stopped before the upload ended".to_owned()
                });
                meta.finished_at = Some(crate::recording_meta::round_to(unix_now(), 1e3));
                // Sealed, but stopped before its final index entry: the seal says how it ended.
                if let Some(sealed) = sealer
                    .as_ref()
                    .filter(|s| s.is_chained(id))
                    .and_then(|_| seal::read_manifest(&dir, id))
                {
                    sealed.restore_outcome(&mut meta);
                }
                index_file::write(&dir, &meta)?;
                tracing::info!(id = %meta.id, "recording left unfinished by an earlier run marked incomplete");
                repaired.push(meta);
            }
            if let Some(sealer) = &sealer {
                seal_unsealed(sealer, &dir, &entries)?;
            }
            Ok(repaired)
        })
        .await
    }

    /// Stored API events matching `filter`: the last `filter.limit` matches, oldest first, each
    /// exactly as stored.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<Box<RawValue>>, StoreError> {
        let dir = self.events_dir();
        let filter = filter.clone();
        blocking(move || events::query(&dir, &filter)).await
    }

    /// Like [`events`](Self::events), of the matching events `wanted` also accepts (those a
    /// viewer may see): only they count toward the filter's limit and are held.
    pub(crate) async fn events_where(
        &self,
        filter: &EventFilter,
        wanted: impl Fn(&RawValue) -> bool + Send + 'static,
    ) -> Result<Vec<Box<RawValue>>, StoreError> {
        let dir = self.events_dir();
        let filter = filter.clone();
        blocking(move || events::query_where(&dir, &filter, wanted)).await
    }
}

/// Seals every finished recording among `entries` that the chain does not name.
fn seal_unsealed(
    sealer: &Sealer,
    dir: &Path,
    entries: &[(String, PathBuf)],
) -> Result<(), StoreError> {
    for (name, path) in entries {
        let Some((id, _, _)) = index_file::recording_of(name) else {
            continue;
        };
        if sealer.is_chained(id) {
            continue;
        }
        let Ok(meta) = index_file::read(&index_file::index_path(dir, id)) else {
            continue;
        };
        if meta.outcome == Outcome::Recording {
            continue;
        }
        sealer.seal(&meta, path, None, "recovery")?;
        tracing::info!(id, "sealed a recording left unsealed");
    }
    Ok(())
}

fn check_id(id: &str) -> Result<(), StoreError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(StoreError::InvalidId(id.to_owned()))
    }
}

/// `(file name, path)` of every entry of `dir`; a missing directory has none.
pub(crate) fn dir_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(StoreError::io("list", dir)(error)),
    };
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(StoreError::io("list", dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            entries.push((name, entry.path()));
        }
    }
    Ok(entries)
}

/// Runs blocking file system work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|join| {
            Err(StoreError::Io {
                op: "run",
                path: PathBuf::new(),
                source: std::io::Error::other(join.to_string()),
            })
        })
}
