//! Tamper evidence: every recording is sealed when it ends, and seals are chained.
//!
//! ```text
//! DIR/
//!   signing-key.pem                    the recorder's Ed25519 key (PKCS#8 PEM, 0600), unless
//!   signing-key.pem.pub                --signing-key names another place; its public key
//!   chain.jsonl                        the append-only, hash-chained index of seals
//!   recordings/<id>.manifest.json      the seal of <id>.cast or <id>.pfcap
//! ```
//!
//! - **The file**: a hash chain over its bytes in 64 KiB chunks ([`ChainHasher`]; BLAKE3, or
//!   SHA-256 in the first release's seals, see [`ChainAlgorithm`]), computed as the upload is
//!   written (no second read, constant memory). Casts stay plain asciicast files.
//! - **The manifest** ([`Manifest`]): id, caller, pod, times, outcome (an incomplete recording is
//!   sealed too), size, the chain's last link, and the chain head it follows, signed with the
//!   recorder's key.
//! - **The chain** (`chain.jsonl`, [`ChainEntry`]): one signed line per sealed recording naming
//!   its manifest's hash, each line carrying the hash of the line before, so a deleted, replaced,
//!   inserted or reordered recording breaks it. A recording removed on purpose (retention) gets a
//!   `removed` entry saying which and why ([`Sealer::record_removal`]).
//!
//! [`verify`] checks a directory against a public key and names each problem.

mod chain;
mod chain_hash;
mod key;
mod manifest;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

pub use chain::{ChainEntry, EntryType, GENESIS};
pub(crate) use chain_hash::sha256;
pub use chain_hash::{hash_file, ChainAlgorithm, ChainHasher, FileDigest, CHUNK_SIZE};
pub use key::{public_key_path, PublicKey, SigningKey};
pub use manifest::{Manifest, MANIFEST_VERSION};
pub(crate) use verify::STILL_RECORDING_NOTE;
pub use verify::{verify, Problem, VerifyReport};

use crate::civil_time::unix_now;
use crate::error::StoreError;
use crate::recording_meta::RecordingMeta;

/// File name of the chain, in the recording directory.
pub const CHAIN_FILE: &str = "chain.jsonl";
/// File name of the default signing key, in the recording directory.
pub const DEFAULT_KEY_FILE: &str = "signing-key.pem";
/// File name suffix of manifests, beside the recordings.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// The default signing key of the recording directory `dir`: `DIR/signing-key.pem`.
pub fn default_key_path(dir: &Path) -> PathBuf {
    dir.join(DEFAULT_KEY_FILE)
}

/// Lower-case hex of a hash, as manifests and chain entries write it.
pub(crate) fn hex_digest(hash: &[u8]) -> String {
    chain_hash::hex(hash)
}

/// Path of the manifest of `id` in the `recordings` directory.
pub(crate) fn manifest_path(recordings: &Path, id: &str) -> PathBuf {
    recordings.join(format!("{id}{MANIFEST_SUFFIX}"))
}

/// Reads the manifest of `id` in the `recordings` directory, if there is a readable one.
pub(crate) fn read_manifest(recordings: &Path, id: &str) -> Option<Manifest> {
    let bytes = std::fs::read(manifest_path(recordings, id)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A failure to seal or to verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The signing or public key cannot be read, created or used.
    #[error("key {}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file system operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The chain cannot be written.
    #[error("chain {}: {reason}", path.display())]
    Chain {
        /// The chain file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl SealError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io { op, path, source }
    }
}

impl From<SealError> for StoreError {
    fn from(error: SealError) -> Self {
        match error {
            SealError::Io { op, path, source } => StoreError::Io { op, path, source },
            SealError::Key { path, reason } => StoreError::Io {
                op: "use the signing key",
                path,
                source: std::io::Error::other(reason),
            },
            SealError::Chain { path, reason } => StoreError::Io {
                op: "append to",
                path,
                source: std::io::Error::other(reason),
            },
        }
    }
}

/// Seals recordings of one directory: writes manifests and appends to the chain. One per
/// directory, in the one server that writes it.
pub struct Sealer {
    key: SigningKey,
    chain: Mutex<chain::Chain>,
    recordings: PathBuf,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key", &self.key)
            .field("recordings", &self.recordings)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Opens the sealer of the recording directory `dir` (whose recordings are in
    /// `dir/recordings`) with the key at `key`, created when missing.
    pub fn open(dir: &Path, key: &Path) -> Result<Self, SealError> {
        let key = SigningKey::load_or_create(key)?;
        let chain = chain::Chain::open(&dir.join(CHAIN_FILE))?;
        Ok(Self {
            key,
            chain: Mutex::new(chain),
            recordings: dir.join("recordings"),
        })
    }

    /// The public key that verifies this sealer's seals.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public()
    }

    /// Whether the chain names `id` (sealed or removed).
    pub fn is_chained(&self, id: &str) -> bool {
        self.lock().names(id)
    }

    /// Whether the chain has a `removed` entry for `id`.
    pub fn is_removed(&self, id: &str) -> bool {
        self.lock().is_removed(id)
    }

    /// Whether the chain has an `evicted` entry for `id`: its file is kept only in object
    /// storage ([`Sealer::record_eviction`]).
    pub fn is_evicted(&self, id: &str) -> bool {
        self.lock().is_evicted(id)
    }

    /// Every recording the chain has a `removed` entry for.
    pub fn removed_ids(&self) -> Vec<String> {
        self.lock().removed().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, chain::Chain> {
        self.chain.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seals the recording `meta` stored at `file`: `digest` is its hash chain as written, or
    /// `None` to read the file again. Writes the manifest (atomically, durably), then appends
    /// the chain entry. Blocking.
    pub(crate) fn seal(
        &self,
        meta: &RecordingMeta,
        file: &Path,
        digest: Option<FileDigest>,
        sealed_by: &str,
    ) -> Result<Manifest, SealError> {
        let digest = match digest {
            Some(digest) => digest,
            None => hash_file(&meta.id, file, ChainAlgorithm::CURRENT)
                .map_err(SealError::io("read", file))?,
        };
        let file_name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut chain = self.lock();
        let mut manifest = Manifest::new(
            meta,
            file_name,
            &digest,
            chain.head(),
            sealed_by,
            self.key.public().key_id(),
        );
        manifest.sign(&self.key);
        let bytes = manifest.to_file_bytes();
        let path = manifest_path(&self.recordings, &meta.id);
        write_atomically(&path, &bytes)?;
        let mut entry = chain::unsealed_entry(EntryType::Sealed, &meta.id);
        entry.manifest = Some(chain_hash::hex(&chain_hash::sha256(&bytes)));
        chain.append(&self.key, entry)?;
        Ok(manifest)
    }

    /// Records in the chain that the recording `id` is removed on purpose, and why (for
    /// retention: append this first, then delete the recording's files). Blocking.
    pub fn record_removal(&self, id: &str, reason: &str) -> Result<ChainEntry, SealError> {
        let mut entry = chain::unsealed_entry(EntryType::Removed, id);
        entry.reason = Some(reason.to_owned());
        entry.at_ms = Some((unix_now() * 1e3).round() as i64);
        self.lock().append(&self.key, entry)
    }
}

impl Sealer {
    /// Records in the chain that the recording `id`'s file is kept only at `location` (an
    /// `s3://` URL) from now on: append this after checking the bytes there against the seal,
    /// then remove the local file. `verify --dir` then checks everything but the bytes, and
    /// tells such a recording from a deleted one. Blocking.
    pub fn record_eviction(&self, id: &str, location: &str) -> Result<ChainEntry, SealError> {
        let mut entry = chain::unsealed_entry(EntryType::Evicted, id);
        entry.reason = Some(format!("kept only in {location}"));
        entry.at_ms = Some((unix_now() * 1e3).round() as i64);
        self.lock().append(&self.key, entry)
    }
}

/// Writes `bytes` to `path` through a hidden temporary file: fsync, rename, directory fsync.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(SealError::io("create", &tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(SealError::io("write", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(SealError::io("rename", &tmp))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SealError::io("sync", dir))
}
