//! Checking a recording directory's seals.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::chain::{ChainEntry, EntryType};
use super::chain_hash::{hash_file, hex, sha256};
use super::key::PublicKey;
use super::manifest::Manifest;
use super::{SealError, CHAIN_FILE, MANIFEST_SUFFIX};
use crate::recording_meta::RecordingMeta;

/// One thing wrong (or, among [`VerifyReport::notes`], worth saying).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The recording ID, or `chain.jsonl line N` for a line that names none.
    pub subject: String,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.subject, self.reason)
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Everything wrong, by recording (in ID order), chain problems first.
    pub problems: Vec<Problem>,
    /// Not wrong, but worth saying: recordings still being written, and recordings sealed at a
    /// start of the recorder (a crash cut their upload off, or they predate sealing).
    pub notes: Vec<Problem>,
    /// Recordings whose seal checked out.
    pub verified: usize,
    /// Recordings kept only in the S3 bucket (`serve --s3-keep-local-days`; a signed `evicted`
    /// chain entry says so): their manifest and chain entries check out, their bytes are not
    /// here; `verify --s3-bucket` checks them.
    pub in_bucket: Vec<String>,
    /// Recordings removed on purpose, cleanly: a signed `removed` entry follows their `sealed`
    /// one and their file is gone. The reason is the entry's (`retention: older than N days`).
    pub removed: Vec<Problem>,
    /// Lines in the chain.
    pub entries: u64,
    /// Hex SHA-256 of the chain's last line (64 zeros for an empty chain): write it down
    /// elsewhere to notice later if the chain's end is cut off.
    pub head: String,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(subject: impl Into<String>, reason: impl Into<String>) -> Problem {
    Problem {
        subject: subject.into(),
        reason: reason.into(),
    }
}

/// A chain line that could be read.
struct Line {
    number: usize,
    entry: ChainEntry,
}

/// Checks the recording directory `dir` against `key`: every manifest's signature, every stored
/// file against its manifest's hash chain, every chain line's signature, sequence number and link
/// to the line before, that every recording has exactly one `sealed` entry naming its manifest
/// and every entry's recording still exists (unless a `removed` entry says it was removed).
/// With `ids`, only those recordings are checked (and the chain's links). Blocking.
pub fn verify(dir: &Path, key: &PublicKey, ids: &[String]) -> Result<VerifyReport, SealError> {
    let mut report = VerifyReport::default();
    let chain_path = dir.join(CHAIN_FILE);
    let bytes = match std::fs::read(&chain_path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(SealError::io("read", &chain_path)(error)),
    };

    // The chain, line by line.
    let mut lines: BTreeMap<String, Vec<Line>> = BTreeMap::new();
    let mut head = super::GENESIS;
    let mut chain_problems = Vec::new();
    let mut pieces: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if let Some(last) = pieces.pop() {
        if !last.is_empty() {
            chain_problems.push(problem(
                format!("{CHAIN_FILE} line {}", pieces.len() + 1),
                "the last line is unfinished (no line break)",
            ));
        }
    }
    for (index, line) in pieces.iter().enumerate() {
        let number = index + 1;
        report.entries += 1;
        let expected_prev = hex(&head);
        head = sha256(line);
        let entry: ChainEntry = match serde_json::from_slice(line) {
            Ok(entry) => entry,
            Err(error) => {
                chain_problems.push(problem(
                    format!("{CHAIN_FILE} line {number}"),
                    format!("unreadable chain entry: {error}"),
                ));
                continue;
            }
        };
        let id = entry.id.clone();
        if !entry.signature_valid(key) {
            chain_problems.push(problem(
                &id,
                format!("chain entry at line {number} (seq {}): signature invalid (changed, or not signed by this key)", entry.seq),
            ));
        }
        if entry.seq != number as u64 {
            chain_problems.push(problem(
                &id,
                format!(
                    "chain entry seq {} is at line {number}: chain entries reordered, inserted or removed",
                    entry.seq
                ),
            ));
        }
        if entry.prev != expected_prev {
            chain_problems.push(problem(
                &id,
                format!(
                    "chain link broken at line {number} (seq {}): it does not follow the line before it",
                    entry.seq
                ),
            ));
        }
        lines.entry(id).or_default().push(Line { number, entry });
    }
    report.head = hex(&head);

    // The recordings directory.
    let recordings = dir.join("recordings");
    let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut manifests = BTreeSet::new();
    let read_dir = match std::fs::read_dir(&recordings) {
        Ok(read_dir) => Some(read_dir),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(SealError::io("list", &recordings)(error)),
    };
    for entry in read_dir.into_iter().flatten() {
        let entry = entry.map_err(SealError::io("list", &recordings))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if let Some(id) = name.strip_suffix(MANIFEST_SUFFIX) {
            manifests.insert(id.to_owned());
        } else if let Some((id, _, _)) = crate::store::recording_of(&name) {
            // Encrypted files too: their seal covers the ciphertext, checked without the key.
            files.entry(id.to_owned()).or_default().push(name.clone());
        }
    }

    let mut all: BTreeSet<String> = files.keys().cloned().collect();
    all.extend(manifests.iter().cloned());
    all.extend(lines.keys().cloned());
    let selected: Vec<String> = if ids.is_empty() {
        all.into_iter().collect()
    } else {
        ids.to_vec()
    };
    report.problems = chain_problems;
    for id in selected {
        let before = report.problems.len();
        let state = check_recording(
            &mut report.problems,
            &recordings,
            key,
            &id,
            files.get(&id).map(Vec::as_slice).unwrap_or_default(),
            manifests.contains(&id),
            lines.get(&id).map(Vec::as_slice).unwrap_or_default(),
        );
        match state {
            State::Open => report.notes.push(problem(&id, STILL_RECORDING_NOTE)),
            State::Removed(reason) => {
                if report.problems.len() == before {
                    report.removed.push(problem(&id, reason));
                }
            }
            State::Checked { recovered } => {
                if report.problems.len() == before {
                    report.verified += 1;
                    if recovered {
                        report.notes.push(problem(&id, RECOVERED_NOTE));
                    }
                }
            }
            State::InBucket { recovered } => {
                if report.problems.len() == before {
                    if recovered {
                        report.notes.push(problem(&id, RECOVERED_NOTE));
                    }
                    report.in_bucket.push(id);
                }
            }
        }
    }
    Ok(report)
}

/// What [`check_recording`] found the recording to be.
enum State {
    /// Still being recorded: not sealed yet.
    Open,
    /// Removed by a `removed` chain entry, for this reason.
    Removed(String),
    /// Checked (with or without problems); `recovered` when sealed at a start of the recorder
    /// rather than as its upload ended.
    Checked { recovered: bool },
    /// Its seal checked, its file kept only in the bucket the shipper sent it to.
    InBucket { recovered: bool },
}

/// Checks one recording.
fn check_recording(
    problems: &mut Vec<Problem>,
    recordings: &Path,
    key: &PublicKey,
    id: &str,
    files: &[String],
    has_manifest: bool,
    lines: &[Line],
) -> State {
    let mut report = |reason: String| problems.push(problem(id, reason));
    let sealed: Vec<&Line> = lines
        .iter()
        .filter(|l| l.entry.entry_type == EntryType::Sealed)
        .collect();
    let removed = lines
        .iter()
        .find(|l| l.entry.entry_type == EntryType::Removed);

    if let Some(removed) = removed {
        let reason = removed.entry.reason.as_deref().unwrap_or("no reason");
        if !files.is_empty() {
            report(format!(
                "removed at chain line {} ({reason}) but {} is still stored (an unfinished removal: the next retention sweep deletes it)",
                removed.number,
                files.join(", ")
            ));
        }
        if sealed.is_empty() {
            report(format!(
                "removed at chain line {} but never sealed",
                removed.number
            ));
        }
        return State::Removed(format!(
            "removed at chain line {} ({reason})",
            removed.number
        ));
    }
    if files.is_empty() && !has_manifest && sealed.is_empty() {
        report("no such recording: no file, manifest or chain entry".to_owned());
        return State::Checked { recovered: false };
    }
    if files.len() > 1 {
        report(format!("stored twice: {}", files.join(", ")));
    }
    let index = std::fs::read(recordings.join(format!("{id}.json")))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<RecordingMeta>(&bytes).ok());
    let lines_text = |lines: &[&Line]| {
        lines
            .iter()
            .map(|l| l.number.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };

    if !has_manifest {
        let recording = index
            .as_ref()
            .is_some_and(|m| m.outcome == castfmt::Outcome::Recording);
        if !files.is_empty() && sealed.is_empty() && recording {
            return State::Open;
        }
        if files.is_empty() {
            report(format!(
                "recording deleted: chain line {} names it, but its file and manifest are gone",
                lines_text(&sealed)
            ));
        } else if sealed.is_empty() {
            report(format!(
                "not sealed: no {id}{MANIFEST_SUFFIX} and no chain entry"
            ));
        } else {
            report(format!(
                "manifest deleted: no {id}{MANIFEST_SUFFIX}, though chain line {} seals it",
                lines_text(&sealed)
            ));
        }
        return State::Checked { recovered: false };
    }

    let manifest_path = super::manifest_path(recordings, id);
    let manifest_bytes = match std::fs::read(&manifest_path) {
        Ok(bytes) => bytes,
        Err(error) => {
            report(format!("manifest unreadable: {error}"));
            return State::Checked { recovered: false };
        }
    };
    let manifest: Manifest = match serde_json::from_slice(&manifest_bytes) {
        Ok(manifest) => manifest,
        Err(error) => {
            report(format!("manifest unreadable: {error}"));
            return State::Checked { recovered: false };
        }
    };
    if !manifest.signature_valid(key) {
        if manifest.key_id != key.key_id() {
            report(format!(
                "manifest signed by another key ({}, not {})",
                manifest.key_id,
                key.key_id()
            ));
        } else {
            report("manifest signature invalid: the manifest was changed".to_owned());
        }
    }
    if manifest.id != id {
        report(format!("manifest is of recording {}", manifest.id));
    }
    let what = if manifest.kind == "port-forward-capture" {
        "capture"
    } else {
        "cast"
    };
    // Kept only in the bucket (a signed `evicted` entry says so, written once the bucket's
    // bytes were checked against the seal): everything but the bytes is checked here.
    let evicted = lines
        .iter()
        .any(|l| l.entry.entry_type == EntryType::Evicted);
    let in_bucket = files.is_empty() && evicted;
    match files.first() {
        None if in_bucket => {}
        None => report(format!(
            "recording deleted: {} is missing (sealed with {} bytes)",
            manifest.file, manifest.size
        )),
        Some(name) => {
            if *name != manifest.file {
                report(format!("stored as {name}, but sealed as {}", manifest.file));
            }
            match hash_file(id, &recordings.join(name), manifest.hash_algorithm) {
                Err(error) => report(format!("{what} unreadable: {error}")),
                Ok(digest) if digest.size < manifest.size => report(format!(
                    "{what} truncated: {} bytes stored, {} sealed",
                    digest.size, manifest.size
                )),
                Ok(digest) if digest.size > manifest.size => report(format!(
                    "{what} grown: {} bytes stored, {} sealed",
                    digest.size, manifest.size
                )),
                Ok(digest) if hex(&digest.hash) != manifest.hash => report(format!(
                    "{what} changed: its bytes do not match the sealed hash ({} bytes, same size)",
                    digest.size
                )),
                Ok(_) => {}
            }
        }
    }
    match sealed.as_slice() {
        [] => report(format!(
            "not in the chain: {CHAIN_FILE} has no entry for it"
        )),
        [line] => {
            let manifest_hash = hex(&sha256(&manifest_bytes));
            if line.entry.manifest.as_deref() != Some(manifest_hash.as_str()) {
                report(format!(
                    "manifest replaced or changed since chain line {} sealed it",
                    line.number
                ));
            }
            if line.entry.prev != manifest.prev_chain_head {
                report(format!(
                    "chain line {} does not follow the chain head the manifest was sealed after",
                    line.number
                ));
            }
        }
        more => report(format!(
            "in the chain {} times (lines {})",
            more.len(),
            lines_text(more)
        )),
    }
    if let Some(meta) = index {
        // The index entry is not signed, and viewers are scoped by it and retention decides by
        // it: it must say what the seal says. One still saying `recording` is being finished
        // (the seal is written just before the final entry), and must agree on who and where.
        let disagreement = if meta.outcome == castfmt::Outcome::Recording {
            manifest.identity_disagreement(&meta)
        } else {
            manifest.disagreement(&meta)
        };
        if meta.id != id {
            report(format!("index entry {id}.json is of recording {}", meta.id));
        } else if let Some(field) = disagreement {
            report(format!(
                "index entry {id}.json disagrees with the seal: its {field} is not what the seal says ({} {} bytes, sealed {} {} bytes)",
                meta.outcome.as_str(),
                stored_size(&meta),
                manifest.outcome,
                manifest.size
            ));
        }
    }
    let recovered = manifest.sealed_by == "recovery";
    if in_bucket {
        State::InBucket { recovered }
    } else {
        State::Checked { recovered }
    }
}

/// The note of a recording still being written.
pub(crate) const STILL_RECORDING_NOTE: &str = "still recording: not sealed yet";

/// Why a recording sealed at a start is named: such a seal vouches for the bytes from then on,
/// not for where they came from.
const RECOVERED_NOTE: &str = "sealed when the recorder started, not as its upload ended (a crash \
     cut it off, or it predates sealing): the seal cannot tell it from a file put into the \
     directory while the recorder was stopped";

/// Bytes of the recording's file as its index entry has them: the ciphertext's size for an
/// encrypted one (`bytes` counts the plaintext).
fn stored_size(meta: &RecordingMeta) -> u64 {
    if meta.encrypted {
        meta.stored_bytes.unwrap_or(meta.bytes)
    } else {
        meta.bytes
    }
}
