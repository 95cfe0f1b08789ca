//! Throughput of SPDY frame parsing beside a plain `memcpy` of the same bytes, measured in the
//! same run (`cargo bench -p spdyframe`). Every stream is fed in 64 KiB reads, as a forwarder
//! reads a socket, so frames straddle reads; every figure is bytes of wire per second.
//!
//! Streams:
//! - `bulk`: 1,024 data frames of 32 KiB on stream 5 (32 MiB of `kubectl exec` output).
//! - `typing`: 65,536 data frames of 1 byte on stream 3 (a person typing, or its echo).
//!
//! Per stream:
//! - `memcpy`: `copy_from_slice` of every read into a preallocated buffer — the floor cost of
//!   forwarding the bytes at all;
//! - `parse`: the parser's events, payload pieces borrowed and only their lengths summed;
//! - `parse_and_copy`: the same, and every payload piece copied out into a preallocated buffer,
//!   as a consumer that keeps the output would.

use std::sync::LazyLock;

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use spdyframe::{encode_data, Event, FrameParser, Limits, StreamId};

fn main() {
    divan::main();
}

/// The read size of the forwarding path.
const READ: usize = 64 * 1024;

fn build(stream: u32, frames: usize, size: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
    let stream = StreamId::from_masked(stream);
    let mut out = Vec::with_capacity(frames * (size + 8));
    for _ in 0..frames {
        encode_data(stream, 0, &data, &mut out).expect("fits in a frame");
    }
    out
}

static BULK: LazyLock<Vec<u8>> = LazyLock::new(|| build(5, 1024, 32 * 1024));
static TYPING: LazyLock<Vec<u8>> = LazyLock::new(|| build(3, 65_536, 1));

fn memcpy(bencher: Bencher, stream: &[u8]) {
    let mut dst = vec![0u8; stream.len()];
    bencher
        .counter(BytesCount::new(stream.len()))
        .bench_local(|| {
            for (read, out) in black_box(stream).chunks(READ).zip(dst.chunks_mut(READ)) {
                out.copy_from_slice(read);
            }
            black_box(&mut dst);
        });
}

fn parse(bencher: Bencher, stream: &[u8]) {
    bencher
        .counter(BytesCount::new(stream.len()))
        .bench_local(|| {
            let mut parser = FrameParser::new(Limits::default());
            let mut payload = 0usize;
            for mut read in black_box(stream).chunks(READ) {
                while let Ok(Some(event)) = parser.next_event(&mut read) {
                    if let Event::Data { bytes, .. } = event {
                        payload += black_box(bytes).len();
                    }
                }
            }
            payload
        });
}

fn parse_and_copy(bencher: Bencher, stream: &[u8]) {
    let mut dst = vec![0u8; stream.len()];
    bencher
        .counter(BytesCount::new(stream.len()))
        .bench_local(|| {
            let mut parser = FrameParser::new(Limits::default());
            let mut at = 0;
            for mut read in black_box(stream).chunks(READ) {
                while let Ok(Some(event)) = parser.next_event(&mut read) {
                    if let Event::Data { bytes, .. } = event {
                        dst[at..at + bytes.len()].copy_from_slice(bytes);
                        at += bytes.len();
                    }
                }
            }
            black_box(&mut dst);
            at
        });
}

/// 32 KiB data frames, 32 MiB in all.
mod bulk {
    use super::*;

    #[divan::bench]
    fn memcpy(bencher: Bencher) {
        super::memcpy(bencher, &BULK);
    }

    #[divan::bench]
    fn parse(bencher: Bencher) {
        super::parse(bencher, &BULK);
    }

    #[divan::bench]
    fn parse_and_copy(bencher: Bencher) {
        super::parse_and_copy(bencher, &BULK);
    }
}

/// 1-byte data frames, 65,536 of them.
mod typing {
    use super::*;

    #[divan::bench]
    fn memcpy(bencher: Bencher) {
        super::memcpy(bencher, &TYPING);
    }

    #[divan::bench]
    fn parse(bencher: Bencher) {
        super::parse(bencher, &TYPING);
    }

    #[divan::bench]
    fn parse_and_copy(bencher: Bencher) {
        super::parse_and_copy(bencher, &TYPING);
    }
}
