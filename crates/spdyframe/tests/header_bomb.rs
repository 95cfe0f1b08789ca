//! A zlib bomb in a header block is refused with bounded memory.
//!
//! This file holds one test so that the process's peak memory (read from `/proc/self/status`
//! on Linux) measures this test alone, under `cargo nextest` and `cargo test` alike.

use flate2::{Decompress, FlushDecompress};
use spdyframe::{HeaderError, HeaderInflater, SPDY3_DICTIONARY, SPDY3_DICTIONARY_ADLER32};

/// Appends bits to a deflate stream, least significant bit first (RFC 1951 section 3.1.1).
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    bits: u32,
}

impl BitWriter {
    fn put(&mut self, value: u64, count: u32) {
        self.acc |= value << self.bits;
        self.bits += count;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    /// A Huffman code, which deflate packs starting from its most significant bit.
    fn put_code(&mut self, code: u64, len: u32) {
        let reversed = (0..len).fold(0, |r, i| r | ((code >> i) & 1) << (len - 1 - i));
        self.put(reversed, len);
    }

    fn align(&mut self) {
        if self.bits > 0 {
            self.put(0, 8 - self.bits);
        }
    }
}

/// A header block that inflates to 100,000,027 zero bytes, crafted by hand so building it
/// costs nothing: the SPDY zlib header, then one fixed-Huffman block holding a literal 0 and
/// 387,597 copies of (length 258, distance 1), 13 bits each, then a sync flush marker.
fn crafted_bomb(matches: usize) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.out.extend([0x78, 0xf9]);
    w.out.extend(SPDY3_DICTIONARY_ADLER32.to_be_bytes());
    w.put(0, 1); // BFINAL = 0
    w.put(1, 2); // BTYPE = 01, fixed Huffman codes
    w.put_code(0x30, 8); // literal 0
    let length_258 = 0xc5; // code 285, 8 bits, no extra bits
    for _ in 0..matches {
        w.put_code(length_258, 8);
        w.put_code(0, 5); // distance code 0 = distance 1, no extra bits
    }
    w.put_code(0, 7); // end of block
    w.put(0, 3); // an empty stored block: the sync flush marker 00 00 ff ff
    w.align();
    w.out.extend([0x00, 0x00, 0xff, 0xff]);
    w.out
}

const MATCHES: usize = 387_597;
const BOMB_SIZE: u64 = 1 + 258 * MATCHES as u64;
const _: () = assert!(BOMB_SIZE > 100_000_000);

/// Inflates `compressed` with no cap, counting the output and keeping none of it.
fn inflated_size(compressed: &[u8]) -> u64 {
    let mut zlib = Decompress::new(true);
    let mut piece = vec![0u8; 1 << 16];
    let mut input = compressed;
    loop {
        let before = zlib.total_in();
        match zlib.decompress(input, &mut piece, FlushDecompress::Sync) {
            Err(e) if e.needs_dictionary().is_some() => {
                zlib.set_dictionary(SPDY3_DICTIONARY).expect("dictionary");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => {}
        }
        input = &input[(zlib.total_in() - before) as usize..];
        if input.is_empty() && zlib.total_out() % (1 << 16) != 0 {
            return zlib.total_out();
        }
    }
}

/// Peak resident memory of this process in KiB, where the platform reports it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_decompression_bomb_is_refused_with_bounded_memory() {
    let bomb = crafted_bomb(MATCHES);
    assert!(bomb.len() < 700_000, "{} bytes compressed", bomb.len());
    // The construction is right: a small one inflates to exactly what it should, with zlib.
    assert_eq!(inflated_size(&crafted_bomb(1000)), 1 + 258 * 1000);

    let mut inflater = HeaderInflater::new(64 * 1024);
    assert_eq!(
        inflater.inflate(&bomb),
        Err(HeaderError::TooLarge { max: 64 * 1024 })
    );
    assert_eq!(inflater.inflate(&[]), Err(HeaderError::Poisoned));

    // Nothing near the 100 MB the bomb expands to was ever resident.
    if let Some(peak) = peak_rss_kib() {
        assert!(peak < 40 * 1024, "peak RSS {peak} KiB");
    }
}
