//! `chain.jsonl`: the append-only, hash-chained index of sealed (and removed) recordings.
//!
//! One JSON object a line: `{"seq", "type": "sealed"|"removed", "id", "manifest" (hex SHA-256 of
//! the manifest file, sealed entries), "reason" and "atMs" (removed entries), "prev" (hex
//! SHA-256 of the previous line's bytes, 64 zeros for the first), "sig" (Ed25519 over the entry
//! without `sig`, compact JSON after `kube-recorder chain v1\n`, base64)}`. Lines are only ever
//! appended, each written and fdatasynced before the next.

use std::collections::HashSet;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::chain_hash::{hex, sha256};
use super::key::{PublicKey, SigningKey};
use super::SealError;

/// What a chain entry signature covers, before the entry's JSON.
const SIGNATURE_CONTEXT: &[u8] = b"kube-recorder chain v1\n";
/// The `prev` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// What a chain entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EntryType {
    /// A recording was sealed: its manifest's hash.
    Sealed,
    /// A recording was removed on purpose (retention): which and why.
    Removed,
    /// A recording's file left the recording directory and is kept only in object storage
    /// (`serve --s3-keep-local-days`), after its bytes there were checked against its seal:
    /// which, and where (`reason`).
    Evicted,
}

/// One line of `chain.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ChainEntry {
    /// 1 for the first line, then one more each line.
    pub seq: u64,
    /// What the entry records.
    #[serde(rename = "type")]
    pub entry_type: EntryType,
    /// The recording.
    pub id: String,
    /// Hex SHA-256 of the manifest file (sealed entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Why the recording was removed (removed entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix milliseconds of the removal (removed entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
    /// Hex SHA-256 of the previous line (64 zeros for the first).
    pub prev: String,
    /// Ed25519 signature, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl ChainEntry {
    fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Self {
            sig: None,
            ..self.clone()
        };
        let mut bytes = SIGNATURE_CONTEXT.to_vec();
        bytes.extend(serde_json::to_vec(&unsigned).unwrap_or_default());
        bytes
    }

    /// Whether the signature is `key`'s over the other fields.
    pub fn signature_valid(&self, key: &PublicKey) -> bool {
        let Some(sig) = &self.sig else {
            return false;
        };
        match base64::engine::general_purpose::STANDARD.decode(sig) {
            Ok(sig) => key.verify(&self.signed_bytes(), &sig),
            Err(_) => false,
        }
    }
}

/// The chain file, open for appending.
#[derive(Debug)]
pub(crate) struct Chain {
    path: PathBuf,
    file: std::fs::File,
    /// Bytes of whole lines.
    len: u64,
    next_seq: u64,
    head: [u8; 32],
    /// Every recording an entry names.
    ids: HashSet<String>,
    /// Every recording a `removed` entry names.
    removed: HashSet<String>,
    /// Every recording an `evicted` entry names.
    evicted: HashSet<String>,
}

impl Chain {
    /// Opens (creating) the chain file. A last line without its line break (a crash in the
    /// middle of an append) is cut off: it was never complete, and the recording it was for has
    /// no entry, so recovery seals it again.
    pub(crate) fn open(path: &Path) -> Result<Self, SealError> {
        let io = |op| SealError::io(op, path);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io("open"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io("read"))?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            tracing::warn!(chain = %path.display(), bytes = bytes.len() - whole, "cutting off an unfinished last chain entry");
            file.set_len(whole as u64).map_err(io("truncate"))?;
            file.sync_all().map_err(io("sync"))?;
        }
        let mut head = GENESIS;
        let mut next_seq = 1;
        let mut ids = HashSet::new();
        let mut removed = HashSet::new();
        let mut evicted = HashSet::new();
        for line in bytes[..whole].split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            head = sha256(line);
            match serde_json::from_slice::<ChainEntry>(line) {
                Ok(entry) => {
                    next_seq = entry.seq + 1;
                    match entry.entry_type {
                        EntryType::Removed => {
                            removed.insert(entry.id.clone());
                        }
                        EntryType::Evicted => {
                            evicted.insert(entry.id.clone());
                        }
                        EntryType::Sealed => {}
                    }
                    ids.insert(entry.id);
                }
                Err(error) => {
                    tracing::warn!(chain = %path.display(), %error, "unreadable chain entry");
                    next_seq += 1;
                }
            }
        }
        file.seek(std::io::SeekFrom::End(0)).map_err(io("seek"))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            len: whole as u64,
            next_seq,
            head,
            ids,
            removed,
            evicted,
        })
    }

    /// Hex of the hash of the last entry.
    pub(crate) fn head(&self) -> String {
        hex(&self.head)
    }

    /// Whether an entry names `id`.
    pub(crate) fn names(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Whether a `removed` entry names `id`.
    pub(crate) fn is_removed(&self, id: &str) -> bool {
        self.removed.contains(id)
    }

    /// Whether an `evicted` entry names `id`.
    pub(crate) fn is_evicted(&self, id: &str) -> bool {
        self.evicted.contains(id)
    }

    /// Every recording a `removed` entry names.
    pub(crate) fn removed(&self) -> impl Iterator<Item = &String> {
        self.removed.iter()
    }

    /// Appends an entry (its `seq`, `prev` and `sig` filled in here), durably.
    pub(crate) fn append(
        &mut self,
        key: &SigningKey,
        mut entry: ChainEntry,
    ) -> Result<ChainEntry, SealError> {
        entry.seq = self.next_seq;
        entry.prev = self.head();
        entry.sig = None;
        entry.sig =
            Some(base64::engine::general_purpose::STANDARD.encode(key.sign(&entry.signed_bytes())));
        let line = serde_json::to_vec(&entry).map_err(|e| SealError::Chain {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut bytes = line.clone();
        bytes.push(b'\n');
        let written = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // Leave no half line for the next append to follow.
            let _ = self.file.set_len(self.len);
            return Err(SealError::io("append to", &self.path)(error));
        }
        self.len += bytes.len() as u64;
        self.next_seq += 1;
        self.head = sha256(&line);
        match entry.entry_type {
            EntryType::Removed => {
                self.removed.insert(entry.id.clone());
            }
            EntryType::Evicted => {
                self.evicted.insert(entry.id.clone());
            }
            EntryType::Sealed => {}
        }
        self.ids.insert(entry.id.clone());
        Ok(entry)
    }
}

/// An entry to append: `seq`, `prev` and `sig` are filled in by [`Chain::append`].
pub(crate) fn unsealed_entry(entry_type: EntryType, id: &str) -> ChainEntry {
    ChainEntry {
        seq: 0,
        entry_type,
        id: id.to_owned(),
        manifest: None,
        reason: None,
        at_ms: None,
        prev: String::new(),
        sig: None,
    }
}
