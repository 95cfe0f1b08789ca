//! Retention: holds, and the sweep that removes recordings older than the retention period.
//!
//! - **Holds** (`DIR/holds.json`): recordings kept regardless of their age, `{"ID": {"reason",
//!   "heldAtMs"}}`, replaced atomically (temporary file, fsync, rename, directory fsync) by
//!   `kube-recorder hold` / `release`. The sweep reads the file again before each removal.
//! - **The sweep** ([`Store::sweep_retention`]) removes each finished recording (cast or
//!   capture) whose end (`finishedAt`, else `receivedAt`) is more than N days before `now`,
//!   unless held, in this order: the signed `removed` chain entry (reason `retention: older than
//!   N days`, appended and fdatasynced), then the file, the manifest and, last, the index entry
//!   (each deletion made durable by a directory fsync).
//! - **A crash in between** leaves a `removed` entry whose files are (partly) still there. It is
//!   finished, not undone: the next sweep, and [`Store::recover`] at every start, delete what is
//!   left of every recording the chain says is removed ([`Store::finish_removals`]). Until then
//!   `kube-recorder verify` names it (`removed at chain line N (...) but ID.cast is still
//!   stored`); once the file is gone it verifies as removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use castfmt::Outcome;
use serde::{Deserialize, Serialize};

use super::{blocking, check_id, dir_entries, index_file, sync_dir, Store};
use crate::civil_time::unix_now;
use crate::error::StoreError;
use crate::seal::{self, PublicKey, Sealer};

/// File name of the holds, in the recording directory.
pub const HOLDS_FILE: &str = "holds.json";

/// Seconds in a day.
const DAY: f64 = 86_400.0;

/// Serialises read-modify-write of `holds.json` within this process.
static HOLDS_LOCK: Mutex<()> = Mutex::new(());

/// A recording kept regardless of retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Hold {
    /// Why it is kept (`kube-recorder hold --reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix milliseconds the hold was placed.
    pub held_at_ms: i64,
}

/// What one retention sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Recordings removed now (a `removed` chain entry appended, files deleted).
    pub removed: Vec<String>,
    /// Recordings old enough to go but kept because they are held.
    pub held: Vec<String>,
    /// Recordings whose earlier removal was unfinished (a crash after the chain entry) and whose
    /// leftover files were deleted now.
    pub finished: Vec<String>,
}

impl Store {
    /// The held recordings, by ID (none when there is no `holds.json`).
    pub async fn holds(&self) -> Result<BTreeMap<String, Hold>, StoreError> {
        let path = self.holds_path();
        blocking(move || read_holds(&path)).await
    }

    /// Holds the recording `id`: retention keeps it until [`Store::release`]. The recording must
    /// have an index entry. Holding a held recording again replaces its reason.
    pub async fn hold(&self, id: &str, reason: Option<String>) -> Result<(), StoreError> {
        self.get(id).await?;
        let path = self.holds_path();
        let id = id.to_owned();
        blocking(move || {
            let _guard = HOLDS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let mut holds = read_holds(&path)?;
            holds.insert(
                id,
                Hold {
                    reason,
                    held_at_ms: (unix_now() * 1e3).round() as i64,
                },
            );
            write_holds(&path, &holds)
        })
        .await
    }

    /// Releases the hold on `id`; returns whether it was held.
    pub async fn release(&self, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        let path = self.holds_path();
        let id = id.to_owned();
        blocking(move || {
            let _guard = HOLDS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let mut holds = read_holds(&path)?;
            if holds.remove(&id).is_none() {
                return Ok(false);
            }
            write_holds(&path, &holds)?;
            Ok(true)
        })
        .await
    }

    /// Removes every finished recording whose end is more than `days` days before `now` (Unix
    /// seconds) and that is not held, recording each removal in the chain first (see the module
    /// documentation); also finishes removals a crash left unfinished. The store must seal
    /// ([`Store::create`]): a removal is only made with its signed chain entry.
    pub async fn sweep_retention(&self, days: u32, now: f64) -> Result<SweepReport, StoreError> {
        let sealer = self.sealer.clone().ok_or_else(|| StoreError::Io {
            op: "apply retention to",
            path: self.root.to_path_buf(),
            source: std::io::Error::other(
                "the store does not seal, so removals cannot be recorded",
            ),
        })?;
        let dir = self.recordings_dir();
        let holds_path = self.holds_path();
        let reason = format!(
            "retention: older than {days} day{}",
            if days == 1 { "" } else { "s" }
        );
        let (sweep_sealer, sweep_dir, sweep_holds, sweep_reason) = (
            sealer.clone(),
            dir.clone(),
            holds_path.clone(),
            reason.clone(),
        );
        let (mut report, in_bucket) = blocking(move || {
            let (sealer, dir, holds_path, reason) =
                (sweep_sealer, sweep_dir, sweep_holds, sweep_reason);
            let mut in_bucket = Vec::new();
            let mut report = SweepReport {
                finished: finish_removals(&sealer, &dir)?,
                ..SweepReport::default()
            };
            let cutoff = now - f64::from(days) * DAY;
            let mut candidates = Vec::new();
            for (name, path) in dir_entries(&dir)? {
                if name.starts_with('.')
                    || !name.ends_with(index_file::INDEX_SUFFIX)
                    || name.ends_with(seal::MANIFEST_SUFFIX)
                {
                    continue;
                }
                let meta = match index_file::read(&path) {
                    Ok(meta) => meta,
                    Err(error) => {
                        tracing::warn!(%error, "retention: skipping an unreadable index entry");
                        continue;
                    }
                };
                if meta.outcome == Outcome::Recording {
                    continue;
                }
                if meta.finished_at.unwrap_or(meta.received_at) < cutoff {
                    candidates.push(meta.id);
                }
            }
            candidates.sort();
            for id in candidates {
                if sealer.is_removed(&id) {
                    continue;
                }
                // Read again before each removal: a hold placed during the sweep counts.
                if read_holds(&holds_path)?.contains_key(&id) {
                    report.held.push(id);
                    continue;
                }
                if !sealer.is_chained(&id) {
                    tracing::warn!(%id, "retention: not removing a recording that is not sealed");
                    continue;
                }
                // The index entry that made it a candidate is not signed: what decides is the
                // seal's own end, and the entry must say what the seal says.
                if let Err(problem) = sealed_before(&dir, &id, sealer.public_key(), cutoff) {
                    tracing::warn!(%id, %problem, "retention: not removing a recording whose seal does not make it old enough");
                    continue;
                }
                // Kept only in the bucket (a signed `evicted` entry): its bytes there are
                // checked against the seal below, outside this blocking pass.
                if !has_file(&dir, &id) && sealer.is_evicted(&id) {
                    in_bucket.push(id);
                    continue;
                }
                if let Err(problem) = intact(&dir, &id) {
                    // Removing it would hide the damage behind a removal on purpose: leave it
                    // for `verify` to name.
                    tracing::warn!(%id, %problem, "retention: not removing a recording that does not match its seal");
                    continue;
                }
                sealer.record_removal(&id, &reason)?;
                delete_files(&dir, &id)?;
                tracing::info!(%id, %reason, "recording removed");
                report.removed.push(id);
            }
            Ok((report, in_bucket))
        })
        .await?;
        for id in in_bucket {
            // As for a local file: damage is left for `verify` to name, not removed.
            if let Err(problem) = self.check_in_backend(&id).await {
                tracing::warn!(%id, %problem, "retention: not removing a recording kept in object storage that does not match its seal");
                continue;
            }
            let (sealer, dir, holds_path, reason) = (
                sealer.clone(),
                dir.clone(),
                holds_path.clone(),
                reason.clone(),
            );
            let held = blocking(move || {
                if read_holds(&holds_path)?.contains_key(&id) {
                    return Ok(Err(id));
                }
                sealer.record_removal(&id, &reason)?;
                delete_files(&dir, &id)?;
                tracing::info!(%id, %reason, "recording removed");
                Ok(Ok(id))
            })
            .await?;
            match held {
                Ok(id) => report.removed.push(id),
                Err(id) => report.held.push(id),
            }
        }
        Ok(report)
    }

    /// Deletes what is left of every recording the chain says is removed (a crash between the
    /// `removed` entry and the deletions); returns their IDs. Nothing to do on a store that does
    /// not seal.
    pub async fn finish_removals(&self) -> Result<Vec<String>, StoreError> {
        let Some(sealer) = self.sealer.clone() else {
            return Ok(Vec::new());
        };
        let dir = self.recordings_dir();
        blocking(move || finish_removals(&sealer, &dir)).await
    }

    fn holds_path(&self) -> PathBuf {
        self.root.join(HOLDS_FILE)
    }
}

/// Deletes the leftovers of removed recordings; returns the IDs that had some.
pub(super) fn finish_removals(sealer: &Sealer, dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut finished = Vec::new();
    let mut removed = sealer.removed_ids();
    removed.sort();
    for id in removed {
        if delete_files(dir, &id)? {
            tracing::info!(%id, "finished an interrupted removal");
            finished.push(id);
        }
    }
    Ok(finished)
}

/// Whether the directory holds a file of the recording (cast or capture, plain or encrypted).
fn has_file(dir: &Path, id: &str) -> bool {
    [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .any(|(capture, encrypted)| {
            index_file::recording_path(dir, id, capture, encrypted).exists()
        })
}

/// Whether the recording's signed manifest says it ended before `cutoff` (Unix seconds), and
/// its index entry says what the manifest says.
fn sealed_before(dir: &Path, id: &str, key: &PublicKey, cutoff: f64) -> Result<(), String> {
    let manifest = seal::read_manifest(dir, id).ok_or("no readable manifest")?;
    if manifest.id != id || !manifest.signature_valid(key) {
        return Err("its manifest is not signed by the recorder's key".into());
    }
    let entry = index_file::read(&index_file::index_path(dir, id)).map_err(|e| e.to_string())?;
    // Who and when, which viewers and retention go by. (Not the size: a recording cut by a
    // storage error counts bytes it never stored, and must still age out; `verify` names it.)
    let millis = |seconds: f64| (seconds * 1e3).round() as i64;
    let disagreement = manifest
        .identity_disagreement(&entry)
        .or((entry.finished_at.map(millis) != manifest.finished_at_ms).then_some("finishedAt"));
    if let Some(field) = disagreement {
        return Err(format!(
            "its index entry's {field} is not what its seal says"
        ));
    }
    let ended_ms = manifest.finished_at_ms.unwrap_or(manifest.received_at_ms);
    if ended_ms as f64 / 1e3 >= cutoff {
        return Err("its seal says it ended after the cutoff".into());
    }
    Ok(())
}

/// Whether the recording's file is there and matches its manifest.
fn intact(dir: &Path, id: &str) -> Result<(), String> {
    let manifest = seal::read_manifest(dir, id).ok_or("no readable manifest")?;
    let file = dir.join(&manifest.file);
    let digest = seal::hash_file(id, &file, manifest.hash_algorithm)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if digest.size != manifest.size || seal::hex_digest(&digest.hash) != manifest.hash {
        return Err(format!("{} differs from its seal", manifest.file));
    }
    Ok(())
}

/// Deletes a recording's file (cast or capture), then its manifest, then its index entry, each
/// made durable; returns whether anything was there.
fn delete_files(dir: &Path, id: &str) -> Result<bool, StoreError> {
    let mut any = false;
    for path in [
        index_file::cast_path(dir, id),
        index_file::capture_path(dir, id),
        index_file::recording_path(dir, id, false, true),
        index_file::recording_path(dir, id, true, true),
        seal::manifest_path(dir, id),
        index_file::index_path(dir, id),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                any = true;
                sync_dir(dir)?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(StoreError::io("remove", &path)(error)),
        }
    }
    Ok(any)
}

fn read_holds(path: &Path) -> Result<BTreeMap<String, Hold>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(StoreError::io("read", path)(error)),
    };
    serde_json::from_slice(&bytes).map_err(|source| StoreError::CorruptIndex {
        path: path.to_owned(),
        source,
    })
}

fn write_holds(path: &Path, holds: &BTreeMap<String, Hold>) -> Result<(), StoreError> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{HOLDS_FILE}.tmp"));
    let mut bytes =
        serde_json::to_vec_pretty(holds).map_err(|source| StoreError::CorruptIndex {
            path: path.to_owned(),
            source,
        })?;
    bytes.push(b'\n');
    let mut file = std::fs::File::create(&tmp).map_err(StoreError::io("create", &tmp))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io("write", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(StoreError::io("rename", &tmp))?;
    sync_dir(dir)
}
