//! The hash chain over a stored file's chunks: `h_0 = SHA-256("kube-recorder seal v1\n" || id)`,
//! `h_i = SHA-256(h_{i-1} || chunk_i)` over fixed-size chunks of [`CHUNK_SIZE`] bytes (the last
//! one may be shorter); the file's hash is the last `h`. Computed as the bytes are written, in
//! constant memory (one running digest, no chunk buffer).

use std::io::Read as _;
use std::path::Path;

use ring::digest::{Context, Digest, SHA256};

/// Bytes per chunk of the hash chain.
pub const CHUNK_SIZE: u64 = 64 * 1024;

/// Domain separation of the chain's first link.
const CHAIN_TAG: &[u8] = b"kube-recorder seal v1\n";

/// What the hash chain says of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Bytes hashed.
    pub size: u64,
    /// Chunks hashed (the last may be short).
    pub chunks: u64,
    /// The last link of the chain.
    pub hash: [u8; 32],
}

/// The hash chain of one file, fed as the file is written.
#[derive(Clone)]
pub struct ChainHasher {
    /// Digest of the chunk in progress, already fed the previous link.
    chunk: Context,
    /// The previous link.
    head: [u8; 32],
    /// Bytes of the chunk in progress.
    in_chunk: u64,
    size: u64,
    chunks: u64,
}

impl std::fmt::Debug for ChainHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainHasher")
            .field("size", &self.size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl ChainHasher {
    /// A chain for the recording `id`.
    pub fn new(id: &str) -> Self {
        let mut first = Context::new(&SHA256);
        first.update(CHAIN_TAG);
        first.update(id.as_bytes());
        let head = to_array(&first.finish());
        Self {
            chunk: link_context(&head),
            head,
            in_chunk: 0,
            size: 0,
            chunks: 0,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (CHUNK_SIZE - self.in_chunk) as usize;
            let take = room.min(data.len());
            self.chunk.update(&data[..take]);
            self.in_chunk += take as u64;
            self.size += take as u64;
            data = &data[take..];
            if self.in_chunk == CHUNK_SIZE {
                self.close_chunk();
            }
        }
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chain's last link over everything fed.
    pub fn finish(mut self) -> FileDigest {
        if self.in_chunk > 0 {
            self.close_chunk();
        }
        FileDigest {
            size: self.size,
            chunks: self.chunks,
            hash: self.head,
        }
    }

    fn close_chunk(&mut self) {
        let chunk = std::mem::replace(&mut self.chunk, Context::new(&SHA256));
        self.head = to_array(&chunk.finish());
        self.chunk = link_context(&self.head);
        self.in_chunk = 0;
        self.chunks += 1;
    }
}

fn link_context(previous: &[u8; 32]) -> Context {
    let mut context = Context::new(&SHA256);
    context.update(previous);
    context
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    to_array(&ring::digest::digest(&SHA256, bytes))
}

fn to_array(digest: &Digest) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The hash chain of a stored file, read from disk in chunks.
pub fn hash_file(id: &str, path: &Path) -> std::io::Result<FileDigest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = ChainHasher::new(id);
    let mut buf = vec![0; CHUNK_SIZE as usize];
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain computed by its definition, from the whole input.
    fn by_definition(id: &str, data: &[u8]) -> [u8; 32] {
        let mut head = sha256(&[CHAIN_TAG, id.as_bytes()].concat());
        for chunk in data.chunks(CHUNK_SIZE as usize) {
            head = sha256(&[&head[..], chunk].concat());
        }
        head
    }

    #[test]
    fn any_split_gives_the_chain_of_the_definition() {
        let data: Vec<u8> = (0..(3 * CHUNK_SIZE as usize + 123))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let expected = by_definition("x", &data);
        for step in [1, 1000, 65_535, 65_536, 65_537, data.len()] {
            let mut hasher = ChainHasher::new("x");
            for piece in data.chunks(step) {
                hasher.update(piece);
            }
            let digest = hasher.finish();
            assert_eq!(digest.hash, expected, "step {step}");
            assert_eq!(digest.size, data.len() as u64);
            assert_eq!(digest.chunks, 4);
        }
        assert_eq!(ChainHasher::new("x").finish().hash, by_definition("x", b""));
        assert_ne!(by_definition("x", b"a"), by_definition("y", b"a"));
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
