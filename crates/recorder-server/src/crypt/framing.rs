//! What can be told of an age file without its key: where its payload starts, and so how much
//! plaintext its whole chunks hold. Used when recovering a file a killed recorder left, which
//! cannot be read again without the key.

use std::io::Read as _;
use std::path::Path;

/// Plaintext bytes per STREAM chunk.
const CHUNK: u64 = 64 * 1024;
/// Bytes per encrypted chunk: the plaintext and its Poly1305 tag.
const ENCRYPTED_CHUNK: u64 = CHUNK + 16;
/// Bytes of the payload nonce after the header.
const NONCE: u64 = 16;
/// The longest header looked for (a header names each recipient in about 100 bytes).
const MAX_HEADER: u64 = 1024 * 1024;

/// Plaintext bytes in the whole chunks of the age file at `path`: what decrypts of a file cut
/// off after them (a final, shorter chunk counts as not there). An error when the file does not
/// start with an age header.
pub(crate) fn whole_chunk_plaintext(path: &Path) -> std::io::Result<u64> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut start = Vec::new();
    file.take(MAX_HEADER).read_to_end(&mut start)?;
    let payload = payload_start(&start).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no age header (or one longer than 1 MiB)",
        )
    })?;
    Ok(size.saturating_sub(payload + NONCE) / ENCRYPTED_CHUNK * CHUNK)
}

/// Where the header ends: after its MAC line, `--- <base64>\n` (stanza lines start with `->`
/// and their bodies are base64, which has no `-`).
fn payload_start(bytes: &[u8]) -> Option<u64> {
    if !super::is_age(bytes) {
        return None;
    }
    let mac_line = memchr::memmem::find(bytes, b"\n--- ")? + 1;
    let end = memchr::memchr(b'\n', &bytes[mac_line..])? + mac_line + 1;
    Some(end as u64)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn counts_the_whole_chunks_of_a_file_cut_anywhere() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = age::x25519::Identity::generate().to_public();
        let mut encrypted = Vec::new();
        let mut writer = age::Encryptor::with_recipients(std::iter::once(&key as _))
            .expect("encryptor")
            .wrap_output(&mut encrypted)
            .expect("header");
        writer.write_all(&vec![7; 200_000]).expect("write");
        // Not finished: three whole chunks reached the output, the rest was in memory.
        drop(writer);
        let path = dir.path().join("x.cast.age");
        for (cut, plaintext) in [
            (encrypted.len(), 3 * CHUNK),
            (encrypted.len() - 1, 2 * CHUNK),
            (encrypted.len() - ENCRYPTED_CHUNK as usize, 2 * CHUNK),
            (
                payload_start(&encrypted).expect("a header") as usize + 16,
                0,
            ),
        ] {
            std::fs::write(&path, &encrypted[..cut]).expect("write");
            assert_eq!(
                whole_chunk_plaintext(&path).ok(),
                Some(plaintext),
                "cut at {cut}"
            );
        }
        // Cut inside the header, or not an age file at all.
        std::fs::write(&path, &encrypted[..40]).expect("write");
        assert!(whole_chunk_plaintext(&path).is_err());
        std::fs::write(&path, b"{\"version\":2}\n").expect("write");
        assert!(whole_chunk_plaintext(&path).is_err());
    }
}
