//! Encryption at rest: recordings stored as age v1 files (<https://age-encryption.org/v1>)
//! encrypted to one or more auditors' X25519 public keys, so the recorder host keeps only
//! ciphertext.
//!
//! - `kube-recorder serve --encrypt-to age1...` ([`Recipients`]) stores each recording as
//!   `<id>.cast.age` (a port-forward capture as `<id>.pfcap.age`): the bytes go through age's
//!   STREAM (ChaCha20-Poly1305 in 64 KiB chunks) on their way to the file, so no plaintext reaches
//!   the disk. The index entry is read from the plaintext in memory before it is encrypted and
//!   stays plaintext (`encrypted: true`, who, pod, times, sizes): listing and retention need it.
//! - The seal covers the bytes as stored, the ciphertext: `kube-recorder verify` checks an
//!   encrypted recording without the key, and notices a changed or truncated file.
//! - `kube-recorder play --identity FILE` ([`Identities`], [`Decrypting`]) decrypts as it plays,
//!   64 KiB at a time. The standard `age -d -i FILE` reads the same files.
//!
//! A recording cut off mid-upload still ends with age's last chunk (it decrypts whole and is
//! marked incomplete). A recorder killed mid-session leaves the file without it: it decrypts up to
//! the last whole chunk written, and [`DecryptError::CutOff`] says where it ends.

mod decrypting;
mod encrypting_file;
mod framing;
mod identities;
mod recipients;
mod stream;

use std::path::PathBuf;

pub use decrypting::{DecryptError, Decrypting};
pub(crate) use encrypting_file::EncryptingFile;
pub(crate) use framing::whole_chunk_plaintext;
pub use identities::Identities;
pub use recipients::Recipients;
pub use stream::{decrypt_stream, DecryptedChunks};

/// The first line of every age v1 file: how an encrypted recording is told from a cast.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Content type of an encrypted recording served by `GET /api/recordings/{id}`: age's files
/// have no registered media type, so an explicit private one, never a cast's.
pub const AGE_CONTENT_TYPE: &str = "application/x-age-encryption";

/// Longest recipients or identity file read (a few keys are under 1 KiB).
const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Whether `bytes` (the start of a stored recording) is an age file.
pub fn is_age(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

/// A recipient or identity that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A `--encrypt-to` value is not an age X25519 recipient.
    #[error("--encrypt-to {value:?}: not an age X25519 recipient (age1 followed by 58 characters, as age-keygen prints): {reason}")]
    Recipient {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret key was given where a recipient belongs. It is not repeated, so that it does
    /// not end up in logs.
    #[error("--encrypt-to: that is an age secret key (AGE-SECRET-KEY-1...), which must never be on the recorder: give its public key (age1..., `age-keygen -y FILE` prints it)")]
    SecretKeyGiven,
    /// A line of a recipients file is not an age X25519 recipient.
    #[error("{}: line {line}: not an age X25519 recipient (age1...): {reason}", path.display())]
    RecipientLine {
        /// The recipients file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of an identity file is not an age X25519 identity. The line itself is not
    /// repeated: it may be a secret key with a typo.
    #[error("{}: line {line}: not an age X25519 identity (AGE-SECRET-KEY-1..., as age-keygen writes): {reason}", path.display())]
    IdentityLine {
        /// The identity file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A key file names no key at all.
    #[error("{}: no {what} in it", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// `recipient` or `identity`.
        what: &'static str,
    },
    /// A key file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Reads a small key file as text, refusing one larger than [`MAX_KEY_FILE`].
fn read_key_file(path: &std::path::Path) -> Result<String, KeyError> {
    use std::io::Read as _;
    let read_error = |source| KeyError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(read_error(std::io::Error::other(
            "larger than 1 MiB: not a key file",
        )));
    }
    Ok(text)
}

/// Reads a key file (identities or recipients) into its keys, one per line: an error names the
/// file and the line that is not a `what` (via `line_error`, without repeating the line), or says
/// the file has none.
fn parse_key_file<T>(
    path: &std::path::Path,
    what: &'static str,
    line_error: fn(std::path::PathBuf, usize, String) -> KeyError,
) -> Result<Vec<T>, KeyError>
where
    T: std::str::FromStr,
    T::Err: ToString,
{
    let text = read_key_file(path)?;
    let mut keys = Vec::new();
    for (line, value) in key_lines(&text) {
        let key = value
            .parse::<T>()
            .map_err(|reason| line_error(path.to_owned(), line, reason.to_string()))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyError::Empty {
            path: path.to_owned(),
            what,
        });
    }
    Ok(keys)
}

/// The lines of a key file that name a key: trimmed, without blank lines and `#` comments, with
/// their numbers (from 1).
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}
