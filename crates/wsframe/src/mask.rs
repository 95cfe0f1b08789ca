//! Client-to-server masking (RFC 6455 section 5.3).
//!
//! Masking is an XOR with the 4-byte key, repeated from the start of the frame's payload, so
//! the same function masks and unmasks. The forwarded bytes are never touched: a consumer
//! unmasks its own copy, and `offset` lets it do so piece by piece.

/// XORs `bytes`, which sit at `offset` within a frame's payload, with the frame's masking
/// key, in place. Applied to masked bytes it unmasks them; applied to plain bytes it masks them.
///
/// ```
/// let mut piece = *b"lo";
/// // "hello" masked with [1, 2, 3, 4]; `piece` is its last two bytes, at offset 3.
/// for (b, k) in piece.iter_mut().zip([4, 1]) { *b ^= k; }
/// wsframe::unmask(&mut piece, [1, 2, 3, 4], 3);
/// assert_eq!(&piece, b"lo");
/// ```
pub fn unmask(bytes: &mut [u8], mask: [u8; 4], offset: u64) {
    let key = block_key(mask, offset);
    let mut blocks = bytes.chunks_exact_mut(BLOCK);
    for block in &mut blocks {
        // A fixed-size loop the compiler turns into vector code; no `unsafe` needed.
        for (b, k) in block.iter_mut().zip(&key) {
            *b ^= k;
        }
    }
    // BLOCK is a multiple of 4, so the key phase is unchanged for the remainder.
    for (b, k) in blocks.into_remainder().iter_mut().zip(&key) {
        *b ^= k;
    }
}

/// Replaces `dst` with `src` unmasked, in one pass over the bytes.
pub(crate) fn unmask_into(src: &[u8], mask: [u8; 4], offset: u64, dst: &mut Vec<u8>) {
    dst.clear();
    // Exact, not amortized: the buffer must stay bounded by the largest piece.
    dst.reserve_exact(src.len());
    let key = block_key(mask, offset);
    let mut blocks = src.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut out = [0u8; BLOCK];
        for ((o, b), k) in out.iter_mut().zip(block).zip(&key) {
            *o = b ^ k;
        }
        dst.extend_from_slice(&out);
    }
    dst.extend(blocks.remainder().iter().zip(&key).map(|(b, k)| b ^ k));
}

/// Bytes unmasked per step: two 128-bit vectors.
const BLOCK: usize = 32;

/// The key repeated over a block, rotated so that its first byte applies at `offset`.
fn block_key(mask: [u8; 4], offset: u64) -> [u8; BLOCK] {
    let shift = (offset % 4) as usize;
    let mut key = [0u8; BLOCK];
    for (i, k) in key.iter_mut().enumerate() {
        *k = mask[(shift + i) % 4];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(bytes: &[u8], mask: [u8; 4], offset: u64) -> Vec<u8> {
        bytes
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[((offset + i as u64) % 4) as usize])
            .collect()
    }

    #[test]
    fn matches_the_byte_wise_definition_at_every_offset_and_length() {
        let data: Vec<u8> = (0..80u8).map(|i| i.wrapping_mul(37)).collect();
        let mask = [0xA1, 0x5B, 0x00, 0xFF];
        for offset in 0..9u64 {
            for len in 0..data.len() {
                let mut bytes = data[..len].to_vec();
                unmask(&mut bytes, mask, offset);
                assert_eq!(
                    bytes,
                    naive(&data[..len], mask, offset),
                    "offset {offset} len {len}"
                );
            }
        }
    }

    #[test]
    fn unmasking_into_a_buffer_matches_too() {
        let data: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(73)).collect();
        let mut dst = vec![1, 2, 3];
        for offset in 0..5u64 {
            for len in [0, 1, 31, 32, 33, 64, 100] {
                unmask_into(&data[..len], [7, 0, 0xF0, 3], offset, &mut dst);
                assert_eq!(dst, naive(&data[..len], [7, 0, 0xF0, 3], offset));
            }
        }
    }

    #[test]
    fn masking_twice_is_the_identity() {
        let mut bytes = b"the quick brown fox".to_vec();
        unmask(&mut bytes, [9, 8, 7, 6], u64::MAX);
        unmask(&mut bytes, [9, 8, 7, 6], u64::MAX);
        assert_eq!(bytes, b"the quick brown fox");
    }
}
