//! Index entries on disk: one JSON sidecar `<id>.json` beside each `<id>.cast`.
//!
//! A sidecar is replaced atomically (written to a hidden temporary file, fsynced, renamed over the
//! old one, directory fsynced), so a reader or a crash sees either the old entry or the new one,
//! never half of one. These are blocking functions; async callers run them on the blocking pool.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::capture_scan::{CaptureScanner, CaptureSummary};
use crate::cast_scan::{CastScanner, CastSummary};
use crate::error::StoreError;
use crate::recording_meta::RecordingMeta;

/// File name suffix of casts.
pub(crate) const CAST_SUFFIX: &str = ".cast";
/// File name suffix of port-forward captures.
pub(crate) const CAPTURE_SUFFIX: &str = ".pfcap";
/// File name suffix added to an encrypted recording's file: `<id>.cast.age`, `<id>.pfcap.age`
/// (see [`crate::crypt`]).
pub(crate) const ENCRYPTED_SUFFIX: &str = ".age";
/// File name suffix of index entries.
pub(crate) const INDEX_SUFFIX: &str = ".json";
/// File name suffix of index entries being replaced.
const TMP_SUFFIX: &str = ".json.tmp";

/// Path of the cast of `id` in `recordings`.
pub(crate) fn cast_path(recordings: &Path, id: &str) -> PathBuf {
    recordings.join(format!("{id}{CAST_SUFFIX}"))
}

/// Path of the port-forward capture of `id` in `recordings`.
pub(crate) fn capture_path(recordings: &Path, id: &str) -> PathBuf {
    recordings.join(format!("{id}{CAPTURE_SUFFIX}"))
}

/// Path of the file of `id` in `recordings`: a cast or a capture, plain or encrypted.
pub(crate) fn recording_path(
    recordings: &Path,
    id: &str,
    capture: bool,
    encrypted: bool,
) -> PathBuf {
    recordings.join(recording_file_name(id, capture, encrypted))
}

/// Name of the file of `id`: `<id>.cast`, `<id>.pfcap`, `<id>.cast.age` or `<id>.pfcap.age`.
pub(crate) fn recording_file_name(id: &str, capture: bool, encrypted: bool) -> String {
    let kind = if capture { CAPTURE_SUFFIX } else { CAST_SUFFIX };
    let age = if encrypted { ENCRYPTED_SUFFIX } else { "" };
    format!("{id}{kind}{age}")
}

/// The recording a file in `recordings/` stores, by its name: `(id, capture, encrypted)`, or
/// `None` for other files.
pub(crate) fn recording_of(name: &str) -> Option<(&str, bool, bool)> {
    let (stem, encrypted) = match name.strip_suffix(ENCRYPTED_SUFFIX) {
        Some(stem) => (stem, true),
        None => (name, false),
    };
    if let Some(id) = stem.strip_suffix(CAST_SUFFIX) {
        return Some((id, false, encrypted));
    }
    stem.strip_suffix(CAPTURE_SUFFIX)
        .map(|id| (id, true, encrypted))
}

/// Path of the index entry of `id` in `recordings`.
pub(crate) fn index_path(recordings: &Path, id: &str) -> PathBuf {
    recordings.join(format!("{id}{INDEX_SUFFIX}"))
}

/// Writes `meta` as the index entry of its recording, atomically and durably.
pub(crate) fn write(recordings: &Path, meta: &RecordingMeta) -> Result<(), StoreError> {
    let path = index_path(recordings, &meta.id);
    let tmp = recordings.join(format!(".{}{TMP_SUFFIX}", meta.id));
    let mut json = serde_json::to_vec_pretty(meta).map_err(|source| StoreError::CorruptIndex {
        path: path.clone(),
        source,
    })?;
    json.push(b'\n');
    let mut file = fs::File::create(&tmp).map_err(StoreError::io("create", &tmp))?;
    file.write_all(&json)
        .map_err(StoreError::io("write", &tmp))?;
    file.sync_all().map_err(StoreError::io("sync", &tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(StoreError::io("rename", &tmp))?;
    sync_dir(recordings)
}

/// Reads an index entry.
pub(crate) fn read(path: &Path) -> Result<RecordingMeta, StoreError> {
    let bytes = fs::read(path).map_err(StoreError::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::CorruptIndex {
        path: path.to_owned(),
        source,
    })
}

/// Makes renames and new files in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync", dir))
}

/// Reads a stored cast again from disk, as at upload time (used when recovering after a crash).
pub(crate) fn rescan(cast: &Path) -> Result<CastSummary, StoreError> {
    let mut file = fs::File::open(cast).map_err(StoreError::io("open", cast))?;
    let mut scanner = CastScanner::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(StoreError::io("read", cast))?;
        if n == 0 {
            return Ok(scanner.finish());
        }
        scanner.feed(&buf[..n]);
    }
}

/// Reads a stored port-forward capture again from disk (used when recovering after a crash).
pub(crate) fn rescan_capture(capture: &Path) -> Result<CaptureSummary, StoreError> {
    let mut file = fs::File::open(capture).map_err(StoreError::io("open", capture))?;
    let mut scanner = CaptureScanner::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(StoreError::io("read", capture))?;
        if n == 0 {
            return Ok(scanner.finish());
        }
        scanner.feed(&buf[..n]);
    }
}

/// Whether a directory entry is a leftover temporary index file.
pub(crate) fn is_leftover_tmp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TMP_SUFFIX)
}
