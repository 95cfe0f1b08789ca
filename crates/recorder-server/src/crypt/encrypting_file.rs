//! The file side of an encrypted recording: plaintext in, age ciphertext to the file, the seal's
//! hash chain over the ciphertext as it is written.

use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use age::stream::StreamWriter;
use bytes::Bytes;

use super::Recipients;
use crate::seal::{ChainHasher, FileDigest};

/// The recording's file, hashing what is written to it.
struct HashedFile {
    file: Arc<std::fs::File>,
    hasher: ChainHasher,
}

impl std::io::Write for HashedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = (&*self.file).write(buf)?;
        // Only what reached the file: a short write is hashed as short.
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An age stream into a recording's file. Shared with the blocking pool like the plain file
/// (`Arc`); each call holds the lock for one batch, and the recording writer makes one call at a
/// time. Holds at most one 64 KiB chunk of plaintext (age's STREAM chunk) between calls.
///
/// After a failed write or [`EncryptingFile::finish`] the stream is gone: later calls fail and
/// the seal reads the file again.
pub(crate) struct EncryptingFile {
    stream: Mutex<Option<StreamWriter<HashedFile>>>,
}

impl std::fmt::Debug for EncryptingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptingFile").finish_non_exhaustive()
    }
}

impl EncryptingFile {
    /// Starts an age file to `recipients` in the empty `file` of the recording `id`: writes its
    /// header (with a new file key) at once. Blocking.
    pub(crate) fn start(
        recipients: &Recipients,
        file: Arc<std::fs::File>,
        id: &str,
    ) -> std::io::Result<Self> {
        let hashed = HashedFile {
            file,
            hasher: ChainHasher::new(id),
        };
        let stream = recipients.encryptor()?.wrap_output(hashed)?;
        Ok(Self {
            stream: Mutex::new(Some(stream)),
        })
    }

    /// Encrypts `pieces` in order; whole chunks go to the file, the rest waits for more. Blocking.
    pub(crate) fn write(&self, pieces: &[Bytes]) -> std::io::Result<()> {
        let mut guard = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        let stream = guard.as_mut().ok_or_else(gone)?;
        for piece in pieces {
            if let Err(error) = stream.write_all(piece) {
                *guard = None;
                return Err(error);
            }
        }
        Ok(())
    }

    /// Writes the age file's last chunk and returns the hash chain over every byte of the file.
    /// Does not fsync: the caller syncs the file. Blocking.
    pub(crate) fn finish(&self) -> std::io::Result<FileDigest> {
        let stream = self
            .stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(gone)?;
        Ok(stream.finish()?.hasher.finish())
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the age stream ended after an earlier failure")
}
