//! Header-block compression (draft section 2.6.10.1): zlib with the SPDY/3 preset dictionary,
//! one stream per direction for the whole connection, a sync flush after every block.
//!
//! Only the first block of a direction starts with the zlib header (`78 f9 e3 c6 a7 c2`: best
//! compression, preset dictionary, its Adler-32); later blocks continue the same deflate stream
//! and may refer back to earlier blocks. So every SYN_STREAM, SYN_REPLY and HEADERS block of a
//! direction must go through that direction's inflater, in order, even those nobody reads.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::{HeaderBlock, HeaderError};

/// The SPDY/3 header compression dictionary (draft section 2.6.10.1), 1,423 bytes.
pub const SPDY3_DICTIONARY: &[u8] = include_bytes!("spdy3_dictionary.bin");

/// Adler-32 of [`SPDY3_DICTIONARY`], the dictionary id in a zlib header.
pub const SPDY3_DICTIONARY_ADLER32: u32 = 0xe3c6_a7c2;

/// Default cap on one block's decompressed size: 64 KiB.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 64 * 1024;

/// Output is produced in pieces of this size, so a bomb is caught within one piece of the cap.
const INFLATE_CHUNK: usize = 4096;

/// The decompressing side of one direction's header compression context.
///
/// ```
/// use spdyframe::{HeaderBlock, HeaderDeflater, HeaderInflater};
///
/// let mut deflater = HeaderDeflater::new();
/// let mut inflater = HeaderInflater::new(64 * 1024);
/// for kind in ["error", "stdout"] {
///     let headers: HeaderBlock = [("streamtype", kind)].into_iter().collect();
///     let mut compressed = Vec::new();
///     deflater.deflate(&headers, &mut compressed)?;
///     assert_eq!(inflater.inflate(&compressed)?, headers);
/// }
/// # Ok::<(), spdyframe::HeaderError>(())
/// ```
pub struct HeaderInflater {
    zlib: Decompress,
    max_decompressed: usize,
    /// Decompressed bytes of the current block; never grows past the cap.
    scratch: Vec<u8>,
    state: InflaterState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InflaterState {
    Running,
    /// The peer ended its zlib stream (spdystream never does); only empty blocks can follow.
    Ended,
    Poisoned,
}

impl std::fmt::Debug for HeaderInflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderInflater")
            .field("max_decompressed", &self.max_decompressed)
            .field("total_in", &self.zlib.total_in())
            .field("total_out", &self.zlib.total_out())
            .field("state", &self.state)
            .finish()
    }
}

impl Default for HeaderInflater {
    fn default() -> Self {
        HeaderInflater::new(DEFAULT_MAX_DECOMPRESSED)
    }
}

impl HeaderInflater {
    /// A fresh context for one direction; a block decompressing to more than
    /// `max_decompressed` bytes is refused with [`HeaderError::TooLarge`].
    pub fn new(max_decompressed: usize) -> Self {
        HeaderInflater {
            zlib: Decompress::new(true),
            max_decompressed,
            scratch: Vec::new(),
            state: InflaterState::Running,
        }
    }

    /// Inflates the next compressed block of this direction and decodes it.
    ///
    /// A block that decompresses to nothing (zero bytes in, or only a flush marker) yields an
    /// empty [`HeaderBlock`]. On [`HeaderError::Zlib`] or [`HeaderError::TooLarge`] the context
    /// is lost and later calls return [`HeaderError::Poisoned`]; [`HeaderError::Malformed`] (the
    /// block decompressed but is not a valid name/value block) keeps it in step.
    pub fn inflate(&mut self, compressed: &[u8]) -> Result<HeaderBlock, HeaderError> {
        self.scratch.clear();
        if let Err(e) = self.decompress(compressed) {
            self.state = InflaterState::Poisoned;
            self.scratch = Vec::new();
            return Err(e);
        }
        if self.scratch.is_empty() {
            return Ok(HeaderBlock::new());
        }
        let block = HeaderBlock::decode_raw(&self.scratch);
        if self.scratch.capacity() > DEFAULT_MAX_DECOMPRESSED {
            self.scratch = Vec::new();
        }
        block
    }

    /// Runs `input` through zlib into `scratch`, in bounded pieces.
    fn decompress(&mut self, mut input: &[u8]) -> Result<(), HeaderError> {
        match self.state {
            InflaterState::Poisoned => return Err(HeaderError::Poisoned),
            InflaterState::Ended if !input.is_empty() => {
                return Err(HeaderError::Zlib(
                    "data after the end of the zlib stream".into(),
                ))
            }
            InflaterState::Ended => return Ok(()),
            InflaterState::Running => {}
        }
        let mut piece = [0u8; INFLATE_CHUNK];
        loop {
            let (in_before, out_before) = (self.zlib.total_in(), self.zlib.total_out());
            let result = self
                .zlib
                .decompress(input, &mut piece, FlushDecompress::Sync);
            let consumed = usize::try_from(self.zlib.total_in() - in_before).unwrap_or(usize::MAX);
            let produced =
                usize::try_from(self.zlib.total_out() - out_before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            let produced = piece.get(..produced).unwrap_or_default();
            if self.scratch.len().saturating_add(produced.len()) > self.max_decompressed {
                return Err(HeaderError::TooLarge {
                    max: self.max_decompressed,
                });
            }
            self.scratch.extend_from_slice(produced);
            match result {
                Err(e) => match e.needs_dictionary() {
                    Some(SPDY3_DICTIONARY_ADLER32) => {
                        self.zlib
                            .set_dictionary(SPDY3_DICTIONARY)
                            .map_err(|e| HeaderError::Zlib(e.to_string()))?;
                    }
                    Some(other) => {
                        return Err(HeaderError::Zlib(format!(
                            "stream asks for dictionary {other:#010x}, not SPDY/3's"
                        )))
                    }
                    None => return Err(HeaderError::Zlib(e.to_string())),
                },
                Ok(Status::StreamEnd) => {
                    self.state = InflaterState::Ended;
                    return if input.is_empty() {
                        Ok(())
                    } else {
                        Err(HeaderError::Zlib(
                            "data after the end of the zlib stream".into(),
                        ))
                    };
                }
                Ok(Status::Ok | Status::BufError) => {
                    // Done once all input is in and zlib left output space unused: everything up
                    // to the sync flush has been produced.
                    if input.is_empty() && produced.len() < INFLATE_CHUNK {
                        return Ok(());
                    }
                    if consumed == 0 && produced.is_empty() {
                        return Err(HeaderError::Zlib("zlib made no progress".into()));
                    }
                }
            }
        }
    }
}

/// The compressing side of one direction's header compression context, writing what spdystream
/// writes (Go's `zlib.NewWriterLevelDict` at `BestCompression` with the SPDY/3 dictionary and a
/// sync flush per block).
pub struct HeaderDeflater {
    zlib: Compress,
    dictionary_set: bool,
    raw: Vec<u8>,
}

impl std::fmt::Debug for HeaderDeflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderDeflater")
            .field("total_in", &self.zlib.total_in())
            .field("total_out", &self.zlib.total_out())
            .finish()
    }
}

impl Default for HeaderDeflater {
    fn default() -> Self {
        HeaderDeflater::new()
    }
}

impl HeaderDeflater {
    /// A fresh context for one direction.
    pub fn new() -> Self {
        HeaderDeflater {
            zlib: Compress::new(Compression::best(), true),
            dictionary_set: false,
            raw: Vec::new(),
        }
    }

    /// Compresses `block` as the next block of this direction and appends it to `out`, ending
    /// with a sync flush so the peer can inflate it at once. The first block starts with the zlib
    /// header `78 f9 e3 c6 a7 c2`.
    pub fn deflate(&mut self, block: &HeaderBlock, out: &mut Vec<u8>) -> Result<(), HeaderError> {
        let zlib_error = |e: flate2::CompressError| HeaderError::Zlib(e.to_string());
        if !self.dictionary_set {
            self.zlib
                .set_dictionary(SPDY3_DICTIONARY)
                .map_err(zlib_error)?;
            self.dictionary_set = true;
        }
        self.raw.clear();
        block.encode_raw(&mut self.raw);
        let mut input = self.raw.as_slice();
        loop {
            out.reserve(input.len() / 2 + 64);
            let in_before = self.zlib.total_in();
            self.zlib
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(zlib_error)?;
            let consumed = usize::try_from(self.zlib.total_in() - in_before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            // zlib's rule for a flush: finished when it returns with output space to spare.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(SPDY3_DICTIONARY.len(), 1423);
        let mut a: u32 = 1;
        let mut b: u32 = 0;
        for &byte in SPDY3_DICTIONARY {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(b << 16 | a, SPDY3_DICTIONARY_ADLER32);
    }

    #[test]
    fn empty_input_is_an_empty_block_and_keeps_context() {
        let mut deflater = HeaderDeflater::new();
        let mut inflater = HeaderInflater::default();
        assert_eq!(inflater.inflate(&[]), Ok(HeaderBlock::new()));
        let block: HeaderBlock = [("streamtype", "error")].into_iter().collect();
        let mut compressed = Vec::new();
        deflater.deflate(&block, &mut compressed).expect("deflate");
        assert_eq!(inflater.inflate(&compressed), Ok(block));
    }

    #[test]
    fn poisoned_after_zlib_error() {
        let mut inflater = HeaderInflater::default();
        assert!(matches!(
            inflater.inflate(b"not zlib"),
            Err(HeaderError::Zlib(_))
        ));
        assert_eq!(inflater.inflate(&[]), Err(HeaderError::Poisoned));
    }
}
