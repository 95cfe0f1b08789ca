//! Writing one recording as it arrives.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use castfmt::Outcome;

use super::index_file;
use crate::capture_scan::CaptureScanner;
use crate::cast_scan::CastScanner;
use crate::civil_time::unix_now;
use crate::crypt::EncryptingFile;
use crate::error::StoreError;
use crate::recording_meta::{round_to, RecordingKind, RecordingMeta};
use crate::seal::{ChainHasher, Sealer};

/// Received bytes held before they go to the cast file in one trip to the blocking pool: large
/// writes, bounded memory.
const WRITE_BUFFER: usize = 256 * 1024;

/// Bumped whenever bytes of any recording reach its file (`.0`) and whenever an index entry is
/// written (`.1`), so the web UI's live views wake at once instead of polling the files. One
/// channel for the whole process: a wake-up for another recording only costs a follower a read
/// that finds nothing new.
static WRITTEN: std::sync::LazyLock<tokio::sync::watch::Sender<(u64, u64)>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::Sender::new((0, 0)));

/// Notifications of [`WRITTEN`]: `(bytes written, index entries written)` generations.
pub(crate) fn write_notifications() -> tokio::sync::watch::Receiver<(u64, u64)> {
    WRITTEN.subscribe()
}

/// Writes `pieces` in order with as few system calls as the kernel allows (`writev`: one per
/// flush of a stream's buffer, where a `write` per piece took one per HTTP/2 frame).
fn write_all_pieces(mut file: &std::fs::File, pieces: &[Bytes]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = pieces
        .iter()
        .map(|piece| std::io::IoSlice::new(piece))
        .collect();
    let mut slices = &mut slices[..];
    std::io::IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => std::io::IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingEnd {
    /// The client finished the upload.
    Complete,
    /// The upload was cut off; the reason is kept in the index.
    Incomplete(String),
}

/// How the bytes of a recording are read on the side, by its kind.
#[derive(Debug)]
enum Scanner {
    Cast(CastScanner),
    Capture(CaptureScanner),
}

/// A recording being written: bytes go to `<id>.cast` exactly as received (or through age to
/// `<id>.cast.age` when the store encrypts, read by the scanner before), and the index entry
/// `<id>.json` is written when the upload begins, again once the header line has arrived (so a
/// live session shows who and where), and at the end.
///
/// Call [`RecordingWriter::finish`] on every path. A writer dropped without it leaves the entry
/// in the `recording` state, which [`crate::Store::recover`] turns into `incomplete` on the next
/// start.
#[derive(Debug)]
pub struct RecordingWriter {
    meta: RecordingMeta,
    /// The cast file, shared with the blocking pool's writes (`&File` writes).
    file: Arc<std::fs::File>,
    /// Received bytes not yet written, kept as the network gave them (no copy).
    pending: Vec<Bytes>,
    /// Bytes in `pending`.
    pending_len: usize,
    scanner: Scanner,
    recordings: PathBuf,
    cast_path: PathBuf,
    /// Seals the recording at its end, when the store seals.
    sealer: Option<Arc<Sealer>>,
    /// The hash chain over the bytes written; `None` once a write failed (the seal then reads
    /// the file again), and when encrypting (the cipher hashes the ciphertext).
    hasher: Option<ChainHasher>,
    /// The age stream the bytes go through when the store encrypts: the file then gets only
    /// ciphertext, and the seal's hash chain is over that.
    cipher: Option<Arc<EncryptingFile>>,
}

impl RecordingWriter {
    pub(crate) fn new(meta: RecordingMeta, file: Arc<std::fs::File>, recordings: PathBuf) -> Self {
        let capture = meta.kind == RecordingKind::PortForwardCapture;
        let cast_path = index_file::recording_path(&recordings, &meta.id, capture, meta.encrypted);
        let scanner = if capture {
            Scanner::Capture(CaptureScanner::new())
        } else {
            Scanner::Cast(CastScanner::new())
        };
        Self {
            file,
            pending: Vec::new(),
            pending_len: 0,
            scanner,
            // Fed as the network delivers the upload: pieces of any length.
            hasher: Some(ChainHasher::new(&meta.id).gathering_chunks()),
            meta,
            recordings,
            cast_path,
            sealer: None,
            cipher: None,
        }
    }

    /// Writes the bytes through `cipher` (the age stream already started in the file), when
    /// the store encrypts.
    pub(crate) fn encrypted_by(mut self, cipher: Option<Arc<EncryptingFile>>) -> Self {
        if cipher.is_some() {
            // The plaintext's chain is not the file's: the cipher keeps the file's.
            self.hasher = None;
        }
        self.cipher = cipher;
        self
    }

    /// Seals the recording at its end with `sealer`.
    pub(crate) fn sealed_by(mut self, sealer: Option<Arc<Sealer>>) -> Self {
        self.sealer = sealer;
        self
    }

    /// The recording's ID.
    pub fn id(&self) -> &str {
        &self.meta.id
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        match &self.scanner {
            Scanner::Cast(scanner) => scanner.summary().bytes,
            Scanner::Capture(scanner) => scanner.summary().bytes,
        }
    }

    /// Appends received bytes.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.write_bytes(Bytes::copy_from_slice(data)).await
    }

    /// Appends received bytes, keeping them as they are until they are written.
    pub async fn write_bytes(&mut self, data: Bytes) -> Result<(), StoreError> {
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&data);
        }
        let header_completed = match &mut self.scanner {
            Scanner::Cast(scanner) => {
                let completed = scanner.feed(&data);
                if completed {
                    self.meta.absorb(scanner.summary());
                }
                completed
            }
            Scanner::Capture(scanner) => {
                let completed = scanner.feed(&data);
                if completed {
                    self.meta.absorb_capture(scanner.summary());
                }
                completed
            }
        };
        self.pending_len += data.len();
        self.pending.push(data);
        // The header is in the file before the index says it has arrived.
        if header_completed || self.pending_len >= WRITE_BUFFER {
            self.write_pending().await?;
        }
        if header_completed {
            self.write_index().await?;
        }
        Ok(())
    }

    /// Hands buffered bytes to the operating system (without an fsync), so readers of the cast
    /// file see them. The upload loop calls this whenever the client pauses: the recording then
    /// holds no buffer of its own while it is quiet.
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(hasher) = &mut self.hasher {
            hasher.release_buffer();
        }
        self.write_pending().await
    }

    /// Writes the buffered bytes to the file (through the cipher when encrypting).
    async fn write_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        let (file, path) = (self.file.clone(), self.cast_path.clone());
        let cipher = self.cipher.clone();
        let written = super::blocking(move || {
            if let Some(cipher) = cipher {
                // Whole 64 KiB chunks reach the file; the rest waits in the cipher.
                return cipher
                    .write(&pending)
                    .map_err(StoreError::io("write", &path));
            }
            write_all_pieces(&file, &pending).map_err(StoreError::io("write", &path))
        })
        .await;
        if written.is_err() {
            // What reached the file is unknown: the seal reads it again.
            self.hasher = None;
        }
        WRITTEN.send_modify(|(bytes, _)| *bytes = bytes.wrapping_add(1));
        written
    }

    /// Flushes and fsyncs the cast and writes the final index entry. A storage failure at the end
    /// still leaves an `incomplete` entry (when the index can be written at all) and is returned.
    pub async fn finish(mut self, end: RecordingEnd) -> Result<RecordingMeta, StoreError> {
        let synced = match self.flush().await {
            Ok(()) => {
                let (file, path) = (self.file.clone(), self.cast_path.clone());
                let cipher = self.cipher.clone();
                super::blocking(move || {
                    // An encrypted file gets age's last chunk first, also when the upload was
                    // cut off: it then decrypts whole.
                    let digest = match cipher {
                        Some(cipher) => {
                            Some(cipher.finish().map_err(StoreError::io("write", &path))?)
                        }
                        None => None,
                    };
                    file.sync_all().map_err(StoreError::io("sync", &path))?;
                    Ok(digest)
                })
                .await
            }
            Err(error) => Err(error),
        };
        if self.meta.encrypted {
            self.meta.stored_bytes = match &synced {
                Ok(Some(digest)) => Some(digest.size),
                _ => tokio::fs::metadata(&self.cast_path)
                    .await
                    .ok()
                    .map(|m| m.len()),
            };
        }
        match std::mem::replace(&mut self.scanner, Scanner::Cast(CastScanner::new())) {
            Scanner::Cast(scanner) => self.meta.absorb(&scanner.finish()),
            Scanner::Capture(scanner) => self.meta.absorb_capture(&scanner.finish()),
        }
        self.meta.finished_at = Some(round_to(unix_now(), 1e3));
        (self.meta.outcome, self.meta.reason) = match (&end, &synced) {
            (RecordingEnd::Complete, Ok(_)) => (Outcome::Complete, None),
            (RecordingEnd::Incomplete(reason), _) => (Outcome::Incomplete, Some(reason.clone())),
            (RecordingEnd::Complete, Err(error)) => {
                (Outcome::Incomplete, Some(format!("storage error: {error}")))
            }
        };
        // Sealed before the final index entry, so a finished entry means a sealed recording.
        if let Some(sealer) = self.sealer.clone() {
            let digest = match &synced {
                Ok(Some(cipher_digest)) => Some(cipher_digest.clone()),
                Ok(None) => self.hasher.take().map(ChainHasher::finish),
                Err(_) => None,
            };
            let (meta, path) = (self.meta.clone(), self.cast_path.clone());
            let sealed =
                super::blocking(move || Ok(sealer.seal(&meta, &path, digest, "upload")?)).await;
            if let Err(error) = sealed {
                tracing::error!(id = %self.meta.id, %error, "cannot seal the recording");
                self.meta.outcome = Outcome::Incomplete;
                self.meta.reason = Some(format!("storage error: cannot seal: {error}"));
                self.write_index().await?;
                return Err(error);
            }
        }
        self.write_index().await?;
        synced?;
        Ok(self.meta)
    }

    async fn write_index(&self) -> Result<(), StoreError> {
        let recordings = self.recordings.clone();
        let meta = self.meta.clone();
        let written = super::blocking(move || index_file::write(&recordings, &meta)).await;
        WRITTEN.send_modify(|(_, index)| *index = index.wrapping_add(1));
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_reach_the_file_whole_and_in_order() -> std::io::Result<()> {
        // Empty pieces, and more pieces than one `writev` takes (IOV_MAX is 1024 on Linux).
        let mut pieces = vec![Bytes::new(), Bytes::from_static(b"first ")];
        pieces.extend((0..3000u32).map(|i| Bytes::from(format!("{i},"))));
        pieces.push(Bytes::new());
        pieces.push(Bytes::from(vec![b'x'; 300_000]));
        pieces.push(Bytes::new());
        let expected: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cast");
        let file = std::fs::File::create(&path)?;
        write_all_pieces(&file, &pieces)?;
        write_all_pieces(&file, &[Bytes::new()])?;
        write_all_pieces(&file, &[])?;
        assert_eq!(std::fs::read(&path)?, expected);
        Ok(())
    }
}
