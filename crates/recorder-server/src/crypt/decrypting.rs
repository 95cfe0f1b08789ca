//! Reading an age file back as plaintext, telling a file cut off from a file changed.

use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use age::stream::StreamReader;

use super::Identities;

/// Why an encrypted recording cannot be read (further).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The file does not start like an age file.
    #[error("not an age-encrypted file")]
    NotAge,
    /// None of the identities can open it.
    #[error("none of the identities can decrypt it: it is encrypted to other keys (these identities are for {})", recipients.join(", "))]
    WrongKey {
        /// The public keys of the identities tried.
        recipients: Vec<String>,
    },
    /// Its header is not a valid age v1 header (or was changed).
    #[error("not a valid age file: {0}")]
    Header(String),
    /// A chunk before the file's end does not decrypt.
    #[error("the ciphertext does not decrypt after {at} bytes of plaintext: the file was changed or damaged")]
    Damaged {
        /// Plaintext bytes read before it.
        at: u64,
    },
    /// The file's last, short, chunk does not decrypt: it was cut off in the middle of a chunk,
    /// or that chunk was changed.
    #[error("its last chunk does not decrypt (after {at} bytes of plaintext): the file was cut off mid-chunk, or changed")]
    LastChunk {
        /// Plaintext bytes read before it.
        at: u64,
    },
    /// Every chunk decrypted but the file ends without age's final chunk: what a recorder killed
    /// mid-upload leaves (or a file truncated on a chunk boundary).
    #[error("cut off after {at} bytes of plaintext: the file ends without age's final chunk (the recorder stopped mid-upload, or the file was truncated)")]
    CutOff {
        /// Plaintext bytes read, all of them authentic.
        at: u64,
    },
    /// Reading the file failed.
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
}

/// Counts nothing but notices the end of the underlying file, so a chunk that fails to
/// decrypt at the very end can be told from one in the middle.
struct NoticeEnd<R> {
    inner: R,
    ended: Arc<AtomicBool>,
}

impl<R: Read> Read for NoticeEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// The plaintext of an age file, read as it is decrypted (64 KiB chunks: bounded memory).
/// Every byte [`Decrypting::read`] returns has been authenticated; a problem is reported once
/// the good bytes before it have been read.
pub struct Decrypting<R> {
    stream: StreamReader<BufReader<NoticeEnd<R>>>,
    ended: Arc<AtomicBool>,
    plaintext: u64,
}

impl<R> std::fmt::Debug for Decrypting<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypting")
            .field("plaintext", &self.plaintext)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Decrypting<R> {
    /// Reads the age header from `input` and opens it with one of `identities`.
    pub fn new(identities: &Identities, input: R) -> Result<Self, DecryptError> {
        let ended = Arc::new(AtomicBool::new(false));
        let mut reader = BufReader::with_capacity(
            64 * 1024,
            NoticeEnd {
                inner: input,
                ended: ended.clone(),
            },
        );
        let start = std::io::BufRead::fill_buf(&mut reader).map_err(DecryptError::Io)?;
        if !super::is_age(start) && !super::AGE_MAGIC.starts_with(start) {
            return Err(DecryptError::NotAge);
        }
        let decryptor = age::Decryptor::new_buffered(reader).map_err(header_error)?;
        let stream = decryptor
            .decrypt(identities.as_dyn())
            .map_err(|error| match error {
                age::DecryptError::NoMatchingKeys => DecryptError::WrongKey {
                    recipients: identities.recipients(),
                },
                other => header_error(other),
            })?;
        Ok(Self {
            stream,
            ended,
            plaintext: 0,
        })
    }

    /// Plaintext bytes read so far.
    pub fn plaintext_read(&self) -> u64 {
        self.plaintext
    }

    /// Reads plaintext; 0 at the end of a whole age file.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, DecryptError> {
        let at = self.plaintext;
        match self.stream.read(buf) {
            Ok(n) => {
                self.plaintext += n as u64;
                Ok(n)
            }
            Err(error) => Err(match error.kind() {
                std::io::ErrorKind::UnexpectedEof => DecryptError::CutOff { at },
                std::io::ErrorKind::InvalidData if self.ended.load(Ordering::Relaxed) => {
                    DecryptError::LastChunk { at }
                }
                std::io::ErrorKind::InvalidData => DecryptError::Damaged { at },
                _ => DecryptError::Io(error),
            }),
        }
    }
}

fn header_error(error: age::DecryptError) -> DecryptError {
    match error {
        age::DecryptError::Io(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecryptError::Header("the file ends inside its header".to_owned())
        }
        age::DecryptError::Io(error) => DecryptError::Io(error),
        age::DecryptError::InvalidMac => DecryptError::Header(
            "the header's MAC does not match: the header was changed".to_owned(),
        ),
        other => DecryptError::Header(other.to_string()),
    }
}
