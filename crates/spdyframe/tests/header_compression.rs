//! Header blocks through the zlib context of a direction: order, history, interop and errors.

mod common;

use common::{id, parse_chunks, Frame};
use flate2::{Compress, Compression, FlushCompress};
use spdyframe::{
    ControlFrame, Event, FrameParser, HeaderBlock, HeaderDeflater, HeaderError, HeaderInflater,
    SPDY3_DICTIONARY,
};

const SPDY_ZLIB_HEADER: [u8; 6] = [0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2];
const SYNC_FLUSH_MARKER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

fn block(pairs: &[(&str, &str)]) -> HeaderBlock {
    pairs.iter().copied().collect()
}

fn deflate_all(blocks: &[HeaderBlock]) -> Vec<Vec<u8>> {
    let mut deflater = HeaderDeflater::new();
    blocks
        .iter()
        .map(|b| {
            let mut out = Vec::new();
            deflater.deflate(b, &mut out).expect("deflate");
            out
        })
        .collect()
}

/// Compresses raw (uncompressed) blocks the way a SPDY peer would, with flate2 directly, so a
/// test can put bytes in the stream that `HeaderBlock` would never encode.
fn deflate_raw(raw_blocks: &[&[u8]], dictionary: &[u8]) -> Vec<Vec<u8>> {
    let mut zlib = Compress::new(Compression::best(), true);
    zlib.set_dictionary(dictionary).expect("fresh stream");
    raw_blocks
        .iter()
        .map(|raw| {
            let mut out = Vec::with_capacity(raw.len() + 64);
            let mut input = *raw;
            loop {
                let before = zlib.total_in();
                zlib.compress_vec(input, &mut out, FlushCompress::Sync)
                    .expect("compress");
                input = &input[(zlib.total_in() - before) as usize..];
                if input.is_empty() && out.len() < out.capacity() {
                    return out;
                }
                out.reserve(64);
            }
        })
        .collect()
}

#[test]
fn the_first_block_starts_with_the_zlib_header_go_writes_and_every_block_ends_flushed() {
    let blocks = deflate_all(&[
        block(&[("streamtype", "error")]),
        block(&[("streamtype", "stdin")]),
        HeaderBlock::new(),
    ]);
    assert_eq!(blocks[0][..6], SPDY_ZLIB_HEADER);
    assert_ne!(blocks[1][..2], SPDY_ZLIB_HEADER[..2]);
    for b in &blocks {
        assert_eq!(b[b.len() - 4..], SYNC_FLUSH_MARKER);
    }
}

#[test]
fn headers_blocks_keep_the_zlib_context_in_step() {
    let first = block(&[
        ("streamtype", "stdout"),
        ("x-custom-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ]);
    let second = block(&[
        ("streamtype", "stdout"),
        ("x-custom-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-extra", "1"),
    ]);
    let compressed = deflate_all(&[first.clone(), second.clone()]);
    // The second block refers back to the first one's bytes instead of repeating them.
    assert!(
        compressed[1].len() < compressed[0].len() - 20,
        "{compressed:?}"
    );

    // In order, through one inflater: both decode.
    let mut inflater = HeaderInflater::default();
    assert_eq!(inflater.inflate(&compressed[0]), Ok(first.clone()));
    assert_eq!(inflater.inflate(&compressed[1]), Ok(second.clone()));

    // The second alone: not even a zlib stream (its header went out with the first block).
    let mut fresh = HeaderInflater::default();
    assert!(matches!(
        fresh.inflate(&compressed[1]),
        Err(HeaderError::Zlib(_))
    ));

    // After a different first block of the same length, the back-references of the second one
    // point at the wrong history: it does not decode to what was sent.
    let other_first = block(&[
        ("streamtype", "stderr"),
        ("x-custom-trace-id", "00000000000000000000000000000000"),
    ]);
    let other = deflate_all(std::slice::from_ref(&other_first));
    let mut out_of_step = HeaderInflater::default();
    assert_eq!(out_of_step.inflate(&other[0]), Ok(other_first));
    assert_ne!(out_of_step.inflate(&compressed[1]), Ok(second));
}

#[test]
fn empty_blocks_must_be_inflated_too() {
    let blocks = vec![
        HeaderBlock::new(),
        block(&[("streamtype", "error")]),
        HeaderBlock::new(),
        HeaderBlock::new(),
        block(&[("streamtype", "error"), ("port", "8080")]),
    ];
    let compressed = deflate_all(&blocks);
    let mut inflater = HeaderInflater::default();
    for (compressed, expected) in compressed.iter().zip(&blocks) {
        assert_eq!(inflater.inflate(compressed).as_ref(), Ok(expected));
    }

    // Skipping the empty block between two equal blocks shifts the history the second one
    // refers to by the empty block's 4 bytes: it no longer decodes to what was sent.
    let x = block(&[
        ("streamtype", "error"),
        ("x-request-id", "0123456789abcdef"),
    ]);
    let compressed = deflate_all(&[x.clone(), HeaderBlock::new(), x.clone()]);
    let mut skipping = HeaderInflater::default();
    assert_eq!(skipping.inflate(&compressed[0]).as_ref(), Ok(&x));
    assert_ne!(skipping.inflate(&compressed[2]), Ok(x));
}

#[test]
fn blocks_compressed_by_an_independent_zlib_inflate() {
    // Made by tests/fixtures/make_python_zlib_frames.py with CPython's zlib (C zlib), one
    // compressobj for the whole direction and Z_SYNC_FLUSH per block.
    let wire = include_bytes!("fixtures/python-zlib-frames.bin");
    assert_eq!(wire[18..24], SPDY_ZLIB_HEADER);
    let mut parser = FrameParser::default();
    let mut inflater = HeaderInflater::default();
    let mut seen = Vec::new();
    let mut input = &wire[..];
    while let Some(event) = parser.next_event(&mut input).expect("valid frames") {
        let Event::Control(frame) = event else {
            panic!("only control frames")
        };
        let headers = inflater
            .inflate(frame.header_block().expect("has a block"))
            .expect("inflate");
        seen.push((
            frame.frame_type(),
            frame.stream_id().map(|s| s.get()),
            headers,
        ));
    }
    let expected_kinds = ["error", "stdin", "stdout", "resize"];
    assert_eq!(seen.len(), 5);
    for ((frame_type, stream, headers), (n, kind)) in
        seen.iter().zip([1, 3, 5, 7].iter().zip(expected_kinds))
    {
        assert_eq!((*frame_type, *stream), (1, Some(*n)));
        assert_eq!(
            *headers,
            block(&[("streamtype", kind), ("x-kubernetes-test", "python zlib")])
        );
    }
    assert_eq!(seen[4], (8, Some(5), HeaderBlock::new()));
    assert!(parser.is_idle());

    // Fed one byte at a time, the same frames come out.
    let frames = parse_chunks(&mut FrameParser::default(), wire.chunks(1)).expect("valid");
    assert_eq!(frames.len(), 5);
    assert!(frames.iter().all(|f| matches!(f, Frame::Control(_))));
}

#[test]
fn a_malformed_block_is_an_error_that_keeps_the_context() {
    let good = {
        let mut raw = Vec::new();
        block(&[("streamtype", "stdout")]).encode_raw(&mut raw);
        raw
    };
    let count_past_end: &[u8] = &[0, 0, 0, 9, 0, 0, 0, 1, b'a'];
    let not_utf8: &[u8] = &[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0, 0, 0, 0];
    let trailing: &[u8] = &[0, 0, 0, 0, 1];
    let compressed = deflate_raw(
        &[count_past_end, &good, not_utf8, trailing, &good],
        SPDY3_DICTIONARY,
    );
    let mut inflater = HeaderInflater::default();
    let results: Vec<_> = compressed.iter().map(|c| inflater.inflate(c)).collect();
    assert!(matches!(results[0], Err(HeaderError::Malformed(_))));
    assert_eq!(results[1], Ok(block(&[("streamtype", "stdout")])));
    assert_eq!(results[2], Err(HeaderError::Malformed("name is not UTF-8")));
    assert_eq!(
        results[3],
        Err(HeaderError::Malformed("bytes after the last pair"))
    );
    assert_eq!(results[4], Ok(block(&[("streamtype", "stdout")])));
}

#[test]
fn another_dictionary_or_garbage_is_a_zlib_error() {
    let compressed = deflate_raw(&[&[0, 0, 0, 0]], b"not the spdy dictionary");
    let mut inflater = HeaderInflater::default();
    let result = inflater.inflate(&compressed[0]);
    assert!(
        matches!(&result, Err(HeaderError::Zlib(m)) if m.contains("dictionary")),
        "{result:?}"
    );
    assert_eq!(inflater.inflate(&[]), Err(HeaderError::Poisoned));

    let mut inflater = HeaderInflater::default();
    let mut garbage = SPDY_ZLIB_HEADER.to_vec();
    garbage.extend([0xff; 32]);
    assert!(matches!(
        inflater.inflate(&garbage),
        Err(HeaderError::Zlib(_))
    ));
}

#[test]
fn a_block_just_over_the_cap_is_too_large() {
    let value = "v".repeat(1000);
    let big = block(&[("x", &value)]);
    let raw_len = 4 + 4 + 1 + 4 + 1000;
    let compressed = deflate_all(std::slice::from_ref(&big));
    assert_eq!(
        HeaderInflater::new(raw_len).inflate(&compressed[0]),
        Ok(big)
    );
    assert_eq!(
        HeaderInflater::new(raw_len - 1).inflate(&compressed[0]),
        Err(HeaderError::TooLarge { max: raw_len - 1 })
    );
}

#[test]
fn a_kubectl_exec_handshake_round_trips_through_frames() {
    let mut deflater = HeaderDeflater::new();
    let mut wire = Vec::new();
    for (n, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")] {
        let mut compressed = Vec::new();
        deflater
            .deflate(&block(&[("streamtype", kind)]), &mut compressed)
            .expect("deflate");
        spdyframe::encode_control(
            &ControlFrame::SynStream {
                stream_id: id(n),
                associated_stream_id: id(0),
                priority: 0,
                slot: 0,
                flags: 0,
                header_block: &compressed,
            },
            &mut wire,
        );
    }
    let mut parser = FrameParser::default();
    let mut inflater = HeaderInflater::default();
    let mut kinds = Vec::new();
    for mut chunk in wire.chunks(7) {
        while let Some(event) = parser.next_event(&mut chunk).expect("valid") {
            if let Event::Control(frame) = event {
                let headers = inflater
                    .inflate(frame.header_block().unwrap_or_default())
                    .expect("ok");
                kinds.push(headers.get("streamtype").unwrap_or_default().to_owned());
            }
        }
    }
    assert_eq!(kinds, ["error", "stdin", "stdout", "resize"]);
}
