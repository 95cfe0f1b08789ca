//! How fast the writer task turns session output into asciicast lines (UTF-8 decoding with carry
//! plus JSON escaping), per output chunk size. Run with `cargo bench -p recorder-client`.

use std::time::Duration;

use divan::counter::BytesCount;
use divan::Bencher;
use recorder_client::{CastEncoder, CastHeader, EncoderOptions, OutputStream};

fn main() {
    divan::main();
}

fn header() -> CastHeader {
    CastHeader {
        version: 2,
        width: 0,
        height: 0,
        timestamp: 0,
        command: String::new(),
        src_node: "bench".into(),
        src_node_id: "n".into(),
        src_node_tags: Vec::new(),
        src_node_user_id: None,
        src_node_user: None,
        kubernetes: None,
        file_copy: None,
    }
}

/// 1 MiB of terminal-like output: ASCII text, escape sequences and some multi-byte characters.
fn output() -> Vec<u8> {
    one_mib_of("drwxr-xr-x  2 root root 4096 Jan  1 00:00 \u{1b}[01;34mgrüße\u{1b}[0m €\r\n")
}

/// 1 MiB of plain ASCII output, as logs and most command output are (no escapes but the line
/// ends, no multi-byte characters).
fn ascii_output() -> Vec<u8> {
    one_mib_of("2026-12-07T11:40:59Z INFO request served path=/api/v1/pods status=200 ms=3\n")
}

/// `line` repeated to 1 MiB (the last copy cut where the MiB ends).
fn one_mib_of(line: &str) -> Vec<u8> {
    line.as_bytes()
        .iter()
        .copied()
        .cycle()
        .take(1 << 20)
        .collect()
}

#[divan::bench(args = [512, 4096, 32 * 1024])]
fn encode_output(bencher: Bencher, chunk: usize) {
    encode(bencher, &output(), chunk);
}

#[divan::bench(args = [4096, 32 * 1024])]
fn encode_ascii_output(bencher: Bencher, chunk: usize) {
    encode(bencher, &ascii_output(), chunk);
}

fn encode(bencher: Bencher, data: &[u8], chunk: usize) {
    bencher
        .counter(BytesCount::new(data.len()))
        .bench_local(|| {
            let mut encoder = CastEncoder::new(header(), EncoderOptions::default());
            let mut out = Vec::with_capacity(data.len() * 2);
            encoder.start(&mut out);
            for (i, piece) in data.chunks(chunk).enumerate() {
                encoder.output(
                    Duration::from_micros(i as u64),
                    OutputStream::Stdout,
                    piece,
                    &mut out,
                );
            }
            encoder.finish(Duration::from_secs(1), &mut out);
            divan::black_box(out)
        });
}
