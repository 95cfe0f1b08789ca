//! The hash chain over a stored file's chunks: `h_0 = H(TAG || id)`, `h_i = H(h_{i-1} ||
//! chunk_i)` over fixed-size chunks of [`CHUNK_SIZE`] bytes (the last one may be shorter); the
//! file's hash is the last `h`. Computed as the bytes are written, in constant memory (one
//! running digest, no chunk buffer).
//!
//! Two hash functions ([`ChainAlgorithm`]): BLAKE3 with the tag `kube-recorder seal v2\n`, which
//! new seals use because every byte recorded passes through it (on the development machines it
//! hashes about four times as fast as SHA-256 with the CPU's SHA extensions), and SHA-256 with
//! the tag `kube-recorder seal v1\n`, which the first seals used and which is still verified.

use std::io::Read as _;
use std::path::Path;

use ring::digest::{Context, Digest, SHA256};
use serde::{Deserialize, Serialize};

/// Bytes per chunk of the hash chain.
pub const CHUNK_SIZE: u64 = 64 * 1024;

/// The hash function of a chain, named in its manifest (`hashAlgorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainAlgorithm {
    /// SHA-256, tag `kube-recorder seal v1\n`: manifests without `hashAlgorithm`.
    #[default]
    Sha256,
    /// BLAKE3 (32-byte output), tag `kube-recorder seal v2\n`: what new seals use.
    Blake3,
}

impl ChainAlgorithm {
    /// The algorithm of new seals.
    pub const CURRENT: ChainAlgorithm = ChainAlgorithm::Blake3;

    /// Whether this is SHA-256, the algorithm a manifest without the field means.
    pub fn is_sha256(&self) -> bool {
        *self == ChainAlgorithm::Sha256
    }

    /// Domain separation of the chain's first link.
    fn tag(self) -> &'static [u8] {
        match self {
            ChainAlgorithm::Sha256 => b"kube-recorder seal v1\n",
            ChainAlgorithm::Blake3 => b"kube-recorder seal v2\n",
        }
    }
}

/// A running digest of one of the chain's algorithms.
#[derive(Clone)]
enum Running {
    // Both boxed: the states differ in size (near 2 KiB for BLAKE3), and a writer need not carry
    // either inline.
    Sha256(Box<Context>),
    Blake3(Box<blake3::Hasher>),
}

impl Running {
    fn new(algorithm: ChainAlgorithm) -> Self {
        match algorithm {
            ChainAlgorithm::Sha256 => Running::Sha256(Box::new(Context::new(&SHA256))),
            ChainAlgorithm::Blake3 => Running::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Running::Sha256(context) => context.update(data),
            Running::Blake3(hasher) => {
                hasher.update(data);
            }
        }
    }

    fn finish(self) -> [u8; 32] {
        match self {
            Running::Sha256(context) => to_array(&(*context).finish()),
            Running::Blake3(hasher) => *hasher.finalize().as_bytes(),
        }
    }
}

/// What the hash chain says of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// The chain's hash function.
    pub algorithm: ChainAlgorithm,
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
    algorithm: ChainAlgorithm,
    /// Digest of the chunk in progress, already fed the previous link.
    chunk: Running,
    /// The previous link.
    head: [u8; 32],
    /// Bytes of the chunk in progress.
    in_chunk: u64,
    size: u64,
    chunks: u64,
    /// Whether BLAKE3 gets each chunk in one update ([`ChainHasher::gathering_chunks`]).
    gather: bool,
    /// Bytes of the chunk in progress not yet hashed, when gathering ([`ChainHasher::stage`]).
    staged: Vec<u8>,
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
    /// A chain for the recording `id` with the algorithm of new seals.
    pub fn new(id: &str) -> Self {
        Self::with(ChainAlgorithm::CURRENT, id)
    }

    /// A chain for the recording `id` with `algorithm`.
    pub fn with(algorithm: ChainAlgorithm, id: &str) -> Self {
        let mut first = Running::new(algorithm);
        first.update(algorithm.tag());
        first.update(id.as_bytes());
        let head = first.finish();
        Self {
            algorithm,
            chunk: link_context(algorithm, &head),
            head,
            in_chunk: 0,
            size: 0,
            chunks: 0,
            gather: false,
            staged: Vec::new(),
        }
    }

    /// Gathers the pieces of each chunk to hash it in one update, for a chain fed in pieces of
    /// any length (an upload as the network delivers it), with BLAKE3 (see
    /// [`ChainHasher::stage`]). Holds up to one chunk ([`CHUNK_SIZE`]) until the chunk is whole or
    /// [`ChainHasher::release_buffer`] is called. A chain fed in large pieces (a file read in
    /// chunks, age's 64 KiB ciphertext chunks) gains little from it.
    pub fn gathering_chunks(mut self) -> Self {
        self.gather = self.algorithm == ChainAlgorithm::Blake3;
        self
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (CHUNK_SIZE - self.in_chunk) as usize;
            let take = room.min(data.len());
            self.stage(&data[..take]);
            self.in_chunk += take as u64;
            self.size += take as u64;
            data = &data[take..];
            if self.in_chunk == CHUNK_SIZE {
                self.close_chunk();
            }
        }
    }

    /// Hashes `piece` of the chunk in progress, or keeps it to hash with the rest of the chunk.
    ///
    /// BLAKE3 hashes a run of whole 1 KiB chunks many at a time (SIMD), but only runs that start
    /// at a multiple of their own size in its tree, and it keeps the last chunk of every update
    /// for the next one, to hash alone. Fed in the pieces the network delivers, a recording's
    /// bytes hashed about 15-30 % slower than in one update per 64 KiB chunk, copy included
    /// (`docs/performance.md`); so, when gathering, BLAKE3 gets the chunk whole. SHA-256 gains
    /// nothing from that and is never gathered.
    fn stage(&mut self, piece: &[u8]) {
        let completes = self.in_chunk + piece.len() as u64 == CHUNK_SIZE;
        if !self.gather {
            self.chunk.update(piece);
        } else if completes && self.staged.is_empty() {
            // Nothing waits: a whole chunk in one piece, or the rest of one already released.
            self.chunk.update(piece);
        } else if completes {
            self.staged.extend_from_slice(piece);
            self.chunk.update(&self.staged);
            // The capacity stays for the next chunk of a stream.
            self.staged.clear();
        } else {
            // Room for the whole chunk at once, so the buffer never grows past it.
            let room = CHUNK_SIZE as usize - self.staged.len();
            if self.staged.capacity() - self.staged.len() < room {
                self.staged.reserve_exact(room);
            }
            self.staged.extend_from_slice(piece);
        }
    }

    /// Hashes what waits in the chunk in progress and frees the buffer it waited in: for a
    /// recording that has gone quiet, which then holds no buffer while idle.
    pub fn release_buffer(&mut self) {
        self.hash_staged();
        self.staged = Vec::new();
    }

    fn hash_staged(&mut self) {
        if !self.staged.is_empty() {
            self.chunk.update(&self.staged);
            self.staged.clear();
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
            algorithm: self.algorithm,
            size: self.size,
            chunks: self.chunks,
            hash: self.head,
        }
    }

    fn close_chunk(&mut self) {
        self.hash_staged();
        let chunk = std::mem::replace(&mut self.chunk, Running::new(self.algorithm));
        self.head = chunk.finish();
        self.chunk.update(&self.head);
        self.in_chunk = 0;
        self.chunks += 1;
    }
}

fn link_context(algorithm: ChainAlgorithm, previous: &[u8; 32]) -> Running {
    let mut context = Running::new(algorithm);
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

/// The hash chain of a stored file with `algorithm`, read from disk in chunks.
pub fn hash_file(id: &str, path: &Path, algorithm: ChainAlgorithm) -> std::io::Result<FileDigest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = ChainHasher::with(algorithm, id);
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
    fn by_definition(algorithm: ChainAlgorithm, id: &str, data: &[u8]) -> [u8; 32] {
        let hash = |bytes: &[u8]| match algorithm {
            ChainAlgorithm::Sha256 => sha256(bytes),
            ChainAlgorithm::Blake3 => *blake3::hash(bytes).as_bytes(),
        };
        let tag = match algorithm {
            ChainAlgorithm::Sha256 => &b"kube-recorder seal v1\n"[..],
            ChainAlgorithm::Blake3 => &b"kube-recorder seal v2\n"[..],
        };
        let mut head = hash(&[tag, id.as_bytes()].concat());
        for chunk in data.chunks(CHUNK_SIZE as usize) {
            head = hash(&[&head[..], chunk].concat());
        }
        head
    }

    /// Gathering holds the pieces of a chunk until it is whole (then hashes it in one update),
    /// only for BLAKE3 and only when asked.
    #[test]
    fn a_gathering_chain_holds_a_chunk_until_it_is_whole() {
        let piece = [7u8; 1000];
        let mut gathering = ChainHasher::new("x").gathering_chunks();
        let mut plain = ChainHasher::new("x");
        let mut sha = ChainHasher::with(ChainAlgorithm::Sha256, "x").gathering_chunks();
        for hasher in [&mut gathering, &mut plain, &mut sha] {
            hasher.update(&piece);
        }
        assert_eq!(gathering.staged.len(), 1000);
        assert_eq!(gathering.staged.capacity(), CHUNK_SIZE as usize);
        assert!(plain.staged.is_empty() && sha.staged.is_empty());
        gathering.update(&vec![7u8; CHUNK_SIZE as usize - 1000]);
        assert!(
            gathering.staged.is_empty(),
            "a whole chunk is hashed at once"
        );
        assert_eq!(gathering.chunks, 1);
    }

    #[test]
    fn new_chains_are_blake3() {
        assert_eq!(
            ChainHasher::new("x").finish().algorithm,
            ChainAlgorithm::Blake3
        );
        assert_eq!(
            ChainHasher::new("x").finish().hash,
            by_definition(ChainAlgorithm::Blake3, "x", b"")
        );
    }

    #[test]
    fn any_split_gives_the_chain_of_the_definition() {
        for algorithm in [ChainAlgorithm::Sha256, ChainAlgorithm::Blake3] {
            any_split_gives_the_chain_of_the_definition_with(algorithm);
        }
        assert_ne!(
            by_definition(ChainAlgorithm::Sha256, "x", b"a"),
            by_definition(ChainAlgorithm::Blake3, "x", b"a")
        );
    }

    fn any_split_gives_the_chain_of_the_definition_with(algorithm: ChainAlgorithm) {
        let data: Vec<u8> = (0..(3 * CHUNK_SIZE as usize + 123))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let expected = by_definition(algorithm, "x", &data);
        for (step, gather) in [1, 1000, 65_535, 65_536, 65_537, data.len()]
            .into_iter()
            .flat_map(|step| [(step, false), (step, true)])
        {
            let mut hasher = ChainHasher::with(algorithm, "x");
            if gather {
                hasher = hasher.gathering_chunks();
            }
            for piece in data.chunks(step) {
                hasher.update(piece);
            }
            let digest = hasher.finish();
            assert_eq!(digest.hash, expected, "step {step}, gathering {gather}");
            assert_eq!(digest.size, data.len() as u64);
            assert_eq!(digest.chunks, 4);
        }
        // Buffers released between any pieces (a recording going quiet) change nothing.
        for step in [1000, 65_537] {
            let mut hasher = ChainHasher::with(algorithm, "x").gathering_chunks();
            for (i, piece) in data.chunks(step).enumerate() {
                hasher.update(piece);
                if i % 3 == 1 {
                    hasher.release_buffer();
                    assert_eq!(hasher.staged.capacity(), 0);
                }
            }
            assert_eq!(hasher.finish().hash, expected, "step {step}, released");
        }
        assert_eq!(
            ChainHasher::with(algorithm, "x").finish().hash,
            by_definition(algorithm, "x", b"")
        );
        assert_ne!(
            by_definition(algorithm, "x", b"a"),
            by_definition(algorithm, "y", b"a")
        );
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
