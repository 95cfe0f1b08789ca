//! The event log (`DIR/events/YYYY-MM-DD.jsonl`) mirrored into the bucket, and restored from it.
//!
//! Each day file is append-only, so it ships as the chain does: the whole lines added since the
//! last pass, as objects named by the byte offset they start at, so that a day's objects
//! concatenated in key order are the day file:
//!
//! ```text
//! s3://BUCKET/PREFIX/events/2024-05-01/00000000000000000000.jsonl, ...
//! ```
//!
//! What the bucket holds is never overwritten, and how far a day was shipped is read from the
//! bucket (its last object's offset plus its size), never from a local file that a crash or a
//! hand could leave behind. [`restore_events`] writes the day files back from the objects.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read as _, Seek as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::{local, ObjectInfo, S3Archive, S3Error};
use crate::events::appender::MAX_BATCH_BYTES;

/// The event log's directory below the recording directory (as the store lays it out).
const EVENTS_DIR: &str = "events";
/// The event log's objects, below the archive's prefix.
const KEY_PREFIX: &str = "events/";
/// The suffix of day files and of their objects.
const SUFFIX: &str = ".jsonl";

/// How much of a day file one object holds.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// The most bytes of whole lines put in one object (so memory stays bounded by about one
    /// object however far behind the bucket is).
    object: usize,
    /// A single line longer than `object` goes alone in its object, up to this many bytes. No
    /// line the recorder writes is near it (an event is at most 16 MiB by default); bytes this
    /// far without a line end are not a line being appended, so they ship as they are rather
    /// than stopping the day's mirror for good.
    long_line: usize,
}

const LIMITS: Limits = Limits {
    object: 8 * 1024 * 1024,
    long_line: MAX_BATCH_BYTES,
};

/// Ships the event log's day files (`DIR/events/YYYY-MM-DD.jsonl`) to the bucket, a pass at a
/// time: the whole lines added to a day since the last pass become one object
/// `events/<day>/<offset>.jsonl` (the byte offset they start at, 20 digits), or several of at most
/// 8 MiB each, so a day's objects concatenated in key order are the day file. How far a day was
/// shipped is read from the bucket the first time the day is seen; what the bucket holds is
/// never overwritten.
#[derive(Debug, Default)]
pub struct EventShipper {
    /// Bytes of each day file (by day, `YYYY-MM-DD`) the bucket holds: read from the bucket the
    /// first time the day is seen, then kept up to date by the passes.
    shipped: HashMap<String, u64>,
}

impl EventShipper {
    /// A shipper that knows nothing yet: each day's progress is read from the bucket at the first
    /// pass that sees the day, so a restarted recorder goes on where the bucket is.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ships the whole lines added to each day file of `root/events/` since the last pass (a line
    /// being appended waits for the next pass); the bytes shipped. Only regular files named
    /// `YYYY-MM-DD.jsonl` ship: symlinks and other names are never read. A day that fails (a
    /// request, or a local file shorter than what the bucket has: it was cut) does not stop the
    /// others; the first failure is returned once every day was tried, the others logged.
    pub async fn pass(&mut self, archive: &S3Archive, root: &Path) -> Result<u64, S3Error> {
        let dir = root.join(EVENTS_DIR);
        let days = match day_files(&dir).await {
            Ok(days) => days,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(local(&dir)(error)),
        };
        let mut shipped = 0;
        let mut first_failure = None;
        for (day, path) in days {
            match self.ship_day(archive, &day, &path).await {
                Ok(bytes) => shipped += bytes,
                // The caller reports the one returned; the others would be lost without this.
                Err(error) if first_failure.is_some() => {
                    tracing::warn!(day, %error, "shipping events to S3 failed; retrying later");
                }
                Err(error) => first_failure = Some(error),
            }
        }
        match first_failure {
            Some(error) => Err(error),
            None => Ok(shipped),
        }
    }

    /// Ships what `path` (the file of `day`) holds beyond what the bucket has, one object per
    /// [`Limits::object`] bytes at most.
    async fn ship_day(
        &mut self,
        archive: &S3Archive,
        day: &str,
        path: &Path,
    ) -> Result<u64, S3Error> {
        let metadata = tokio::fs::symlink_metadata(path)
            .await
            .map_err(local(path))?;
        if !metadata.is_file() {
            return Ok(0);
        }
        let len = metadata.len();
        let mut offset = match self.shipped.get(day) {
            Some(&offset) => offset,
            None => {
                let offset = shipped_bytes(archive, day).await?;
                self.shipped.insert(day.to_owned(), offset);
                offset
            }
        };
        if len < offset {
            return Err(S3Error::Config(format!(
                "{} is {len} bytes, shorter than the {offset} of {day} already shipped: it was cut",
                path.display()
            )));
        }
        if len == offset {
            return Ok(0);
        }
        let Some(mut file) = open_regular(path, &metadata).await? else {
            return Ok(0);
        };
        let mut total = 0;
        while offset < len {
            let owned = path.to_owned();
            let (returned, next) = tokio::task::spawn_blocking(move || {
                let next = next_object(&mut file, offset, len, LIMITS);
                (file, next.map_err(local(&owned)))
            })
            .await
            .map_err(|error| S3Error::Config(format!("reading {}: {error}", path.display())))?;
            file = returned;
            // A partial last line: it ships, whole, at a later pass.
            let Some(bytes) = next? else { break };
            let size = bytes.len() as u64;
            put_once(archive, &object_key(day, offset), Bytes::from(bytes)).await?;
            offset += size;
            total += size;
            self.shipped.insert(day.to_owned(), offset);
        }
        Ok(total)
    }
}

/// What [`restore_events`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventRestoreReport {
    /// Day files written from the bucket.
    pub days: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes back from the bucket each day of the event log whose file in `root/events/` is missing
/// or empty: its objects concatenated in key order, streamed to a temporary file that is then
/// fsynced and renamed into place (the directory fsynced too), so a day file is never seen half
/// written. A day file that holds anything is left as it is (a warning says when it is shorter
/// than the bucket's copy). A day whose objects do not follow one another byte for byte (one is
/// missing) is not written: the first such failure is returned once every day was tried. Keys
/// that are not `events/YYYY-MM-DD/<20 digits>.jsonl` are skipped with a warning.
///
/// Meant for a directory no recorder is writing to: today's file being created meanwhile is not
/// replaced, but one that was empty could be.
pub async fn restore_events(
    archive: &S3Archive,
    root: &Path,
) -> Result<EventRestoreReport, S3Error> {
    let dir = root.join(EVENTS_DIR);
    tokio::fs::create_dir_all(&dir).await.map_err(local(&dir))?;
    let mut days: BTreeMap<String, Vec<(u64, ObjectInfo)>> = BTreeMap::new();
    for object in archive.list(KEY_PREFIX).await? {
        match parse_key(&object.key) {
            Some((day, offset)) => days
                .entry(day.to_owned())
                .or_default()
                .push((offset, object)),
            None => tracing::warn!(key = object.key, "skipping an unexpected key"),
        }
    }
    let mut report = EventRestoreReport::default();
    let mut first_failure = None;
    for (day, objects) in days {
        match restore_day(archive, &dir, &day, &objects).await {
            Ok(Some(bytes)) => {
                report.days += 1;
                report.bytes += bytes;
            }
            Ok(None) => {}
            Err(error) if first_failure.is_some() => {
                tracing::warn!(day, %error, "restoring events from S3 failed");
            }
            Err(error) => first_failure = Some(error),
        }
    }
    match first_failure {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

/// Writes the file of `day` from its `objects` (in key order) unless it holds anything; the bytes
/// written, `None` when left alone.
async fn restore_day(
    archive: &S3Archive,
    dir: &Path,
    day: &str,
    objects: &[(u64, ObjectInfo)],
) -> Result<Option<u64>, S3Error> {
    let path = dir.join(format!("{day}{SUFFIX}"));
    // Keys are the bucket's: an offset near u64::MAX must not overflow.
    let total = objects
        .last()
        .map_or(0, |(offset, object)| offset.saturating_add(object.size));
    let missing = match tokio::fs::symlink_metadata(&path).await {
        Ok(metadata) if metadata.is_file() && metadata.len() == 0 => false,
        Ok(metadata) => {
            if !metadata.is_file() {
                tracing::warn!(path = %path.display(), "not a regular file; events not restored");
            } else if metadata.len() < total {
                tracing::warn!(
                    path = %path.display(),
                    local = metadata.len(),
                    bucket = total,
                    "the local event file is shorter than the bucket's copy; left as it is"
                );
            }
            return Ok(None);
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
        Err(error) => return Err(local(&path)(error)),
    };
    // Checked before anything is written: a day with a hole would come back silently short.
    let mut expected = 0;
    for (offset, object) in objects {
        if *offset != expected {
            return Err(S3Error::Config(format!(
                "the events of {day} in the bucket are not contiguous: {} starts at byte {offset}, \
                 not {expected}; {day} not restored",
                object.key
            )));
        }
        expected = offset.checked_add(object.size).ok_or_else(|| {
            S3Error::Config(format!(
                "the events of {day} in the bucket end past any file size at {}; {day} not restored",
                object.key
            ))
        })?;
    }
    // A random name with O_EXCL: a link planted at a fixed temporary name is never followed.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{day}."))
        .suffix(".restore")
        .tempfile_in(dir)
        .map_err(local(dir))?;
    let mut file = tokio::fs::File::from_std(tmp.as_file().try_clone().map_err(local(dir))?);
    let mut written = 0;
    for (_, object) in objects {
        written += copy_object(archive, object, &mut file, tmp.path()).await?;
    }
    file.flush().await.map_err(local(tmp.path()))?;
    file.sync_all().await.map_err(local(tmp.path()))?;
    drop(file);
    let owned_dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let persisted = if missing {
            // Created meanwhile (a recorder writing to it): its events stay.
            tmp.persist_noclobber(&path)
        } else {
            tmp.persist(&path)
        };
        persisted.map_err(|error| local(&path)(error.error))?;
        std::fs::File::open(&owned_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(local(&owned_dir))
    })
    .await
    .map_err(|error| S3Error::Config(format!("restoring the events of {day}: {error}")))??;
    Ok(Some(written))
}

/// Appends the object to `file`, streamed; its bytes, which must be the size it was listed with.
async fn copy_object(
    archive: &S3Archive,
    object: &ObjectInfo,
    file: &mut tokio::fs::File,
    path: &Path,
) -> Result<u64, S3Error> {
    let changed = |copied: u64| S3Error::SizeMismatch {
        key: object.key.clone(),
        stored: copied,
        expected: object.size,
    };
    let Some((_, mut stream)) = archive.get_stream(&object.key).await? else {
        return Err(changed(0));
    };
    let mut copied = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        file.write_all(&chunk).await.map_err(local(path))?;
        copied += chunk.len() as u64;
    }
    if copied != object.size {
        return Err(changed(copied));
    }
    Ok(copied)
}

/// `(day, path)` of the files of `dir` named `YYYY-MM-DD.jsonl`, in day order. Whether each is a
/// regular file is checked when it is read.
async fn day_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut days = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if let Some(day) = name.strip_suffix(SUFFIX).filter(|day| is_day(day)) {
            days.push((day.to_owned(), entry.path()));
        }
    }
    days.sort();
    Ok(days)
}

/// Opens `path` if it is still the regular file `metadata` describes: a file swapped for a
/// symlink since it was looked at is not followed (`None`).
async fn open_regular(
    path: &Path,
    metadata: &std::fs::Metadata,
) -> Result<Option<std::fs::File>, S3Error> {
    let file = tokio::fs::File::open(path).await.map_err(local(path))?;
    let opened = file.metadata().await.map_err(local(path))?;
    if !opened.is_file() || opened.dev() != metadata.dev() || opened.ino() != metadata.ino() {
        tracing::warn!(path = %path.display(), "event file replaced while shipping; skipped");
        return Ok(None);
    }
    Ok(Some(file.into_std().await))
}

/// The next object of a day file: whole lines from `offset` (of a file `len` bytes long), at most
/// `limits.object` bytes of them; a single longer line alone, whole. `None` when only part of a
/// line is there (it is being appended).
fn next_object(
    file: &mut std::fs::File,
    offset: u64,
    len: u64,
    limits: Limits,
) -> std::io::Result<Option<Vec<u8>>> {
    let available = usize::try_from(len.saturating_sub(offset)).unwrap_or(usize::MAX);
    let mut buffer = vec![0; available.min(limits.object)];
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.read_exact(&mut buffer)?;
    if let Some(end) = memchr::memrchr(b'\n', &buffer) {
        buffer.truncate(end + 1);
        return Ok(Some(buffer));
    }
    // No line end within an object's worth: one long line, read on until it ends.
    let most = available.min(limits.long_line);
    const CHUNK: usize = 64 * 1024;
    while buffer.len() < most {
        let start = buffer.len();
        buffer.resize((start + CHUNK).min(most), 0);
        file.read_exact(&mut buffer[start..])?;
        if let Some(end) = memchr::memchr(b'\n', &buffer[start..]) {
            buffer.truncate(start + end + 1);
            return Ok(Some(buffer));
        }
    }
    if buffer.len() < limits.long_line {
        return Ok(None);
    }
    tracing::warn!(
        offset,
        bytes = buffer.len(),
        "no line end in an event file for longer than any event; shipped as it is"
    );
    Ok(Some(buffer))
}

/// Bytes of the file of `day` the bucket holds: its last object's offset plus its size (keys
/// that are not the shipper's are ignored).
async fn shipped_bytes(archive: &S3Archive, day: &str) -> Result<u64, S3Error> {
    let objects = archive.list(&format!("{KEY_PREFIX}{day}/")).await?;
    objects
        .iter()
        .rev()
        .find_map(|object| {
            let (listed_day, offset) = parse_key(&object.key)?;
            (listed_day == day).then_some(offset.checked_add(object.size))
        })
        .unwrap_or(Some(0))
        .ok_or_else(|| {
            S3Error::Config(format!(
                "the events of {day} in the bucket end past any file size; not shipped"
            ))
        })
}

/// Puts `bytes` as `key` unless the bucket has it: what was shipped is never overwritten (someone
/// who can write the directory could otherwise replace the copy kept off the host). An object of
/// the same size was shipped before; another size is an error.
async fn put_once(archive: &S3Archive, key: &str, bytes: Bytes) -> Result<(), S3Error> {
    match archive.size(key).await? {
        None => archive.put(key, bytes).await,
        Some(stored) if stored == bytes.len() as u64 => Ok(()),
        Some(stored) => Err(S3Error::SizeMismatch {
            key: key.to_owned(),
            stored,
            expected: bytes.len() as u64,
        }),
    }
}

/// `events/<day>/<offset, 20 digits>.jsonl`: zero-padded, so key order is offset order.
fn object_key(day: &str, offset: u64) -> String {
    format!("{KEY_PREFIX}{day}/{offset:020}{SUFFIX}")
}

/// The day and offset of an object key made by [`object_key`]; `None` for any other key.
fn parse_key(key: &str) -> Option<(&str, u64)> {
    let (day, name) = key.strip_prefix(KEY_PREFIX)?.split_once('/')?;
    let digits = name.strip_suffix(SUFFIX)?;
    if !is_day(day) || digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((day, digits.parse().ok()?))
}

/// Whether `name` is `YYYY-MM-DD` (digits only: a day file's name, never a path).
fn is_day(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, std::fs::File, u64) {
        let mut tmp = tempfile::NamedTempFile::new().expect("temp file");
        tmp.write_all(bytes).expect("write");
        let file = tmp.reopen().expect("reopen");
        (tmp, file, bytes.len() as u64)
    }

    const SMALL: Limits = Limits {
        object: 8,
        long_line: 16,
    };

    #[test]
    fn objects_hold_whole_lines_up_to_the_cap() {
        let (_tmp, mut file, len) = file_with(b"aaa\nbbb\ncc\ndd");
        let first = next_object(&mut file, 0, len, SMALL).expect("read");
        assert_eq!(first.as_deref(), Some(&b"aaa\nbbb\n"[..]));
        let second = next_object(&mut file, 8, len, SMALL).expect("read");
        assert_eq!(second.as_deref(), Some(&b"cc\n"[..]));
        // "dd" is being appended.
        assert_eq!(next_object(&mut file, 11, len, SMALL).expect("read"), None);
    }

    #[test]
    fn a_line_longer_than_the_cap_goes_alone_and_bytes_past_any_line_ship_as_they_are() {
        let (_tmp, mut file, len) = file_with(b"0123456789AB\nx\n");
        let long = next_object(&mut file, 0, len, SMALL).expect("read");
        assert_eq!(long.as_deref(), Some(&b"0123456789AB\n"[..]));
        let (_tmp, mut file, len) = file_with(b"0123456789ABC");
        assert_eq!(next_object(&mut file, 0, len, SMALL).expect("read"), None);
        let (_tmp, mut file, len) = file_with(b"0123456789ABCDEFGHIJ\n");
        let cut = next_object(&mut file, 0, len, SMALL).expect("read");
        assert_eq!(cut.as_deref(), Some(&b"0123456789ABCDEF"[..]));
    }

    #[test]
    fn only_the_shippers_own_names_are_taken() {
        assert!(is_day("2024-05-01"));
        for name in [
            "2024-5-01",
            "2024-05-1x",
            "2024/05/01",
            "../05-01ab",
            "2024-05-011",
        ] {
            assert!(!is_day(name), "{name}");
        }
        assert_eq!(
            parse_key(&object_key("2024-05-01", 42)),
            Some(("2024-05-01", 42))
        );
        for key in [
            "events/2024-05-01/42.jsonl",
            "events/2024-05-01/0000000000000000004x.jsonl",
            "events/2024-05-01/00000000000000000042.json",
            "events/2024-05-01/sub/00000000000000000042.jsonl",
            "events/bad/00000000000000000042.jsonl",
            "chain/00000000000000000042.jsonl",
        ] {
            assert_eq!(parse_key(key), None, "{key}");
        }
    }
}
