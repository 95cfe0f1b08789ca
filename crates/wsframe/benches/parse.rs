//! Throughput of frame parsing and channel decoding beside a plain `memcpy` of the same bytes,
//! measured in the same run (`cargo bench -p wsframe`). Every stream is fed in 64 KiB reads,
//! as a forwarder reads a socket; every figure is bytes of wire per second.
//!
//! `parse` only reads headers (payload pieces are borrowed, never touched); `decode` adds the
//! channel layer, which on masked streams copies every payload byte into its scratch buffer
//! while unmasking it, and on unmasked streams hands out slices of the input.
//!
//! Streams (`v5.channel.k8s.io`):
//! - `bulk_output`: 128 stdout messages of 32 KiB, unmasked (server to client).
//! - `bulk_input`: the same as stdin from the client: masked, so decoding unmasks every byte.
//! - `typing_input`: 65,536 one-byte stdin messages, masked (a person typing).
//! - `typing_echo`: 65,536 one-byte stdout messages, unmasked (the echo).

use std::sync::LazyLock;

use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use wsframe::{
    encode_channel_message, ChannelEvent, ChannelProtocol, ChannelStream, Event, FrameParser,
    Limits, STDIN, STDOUT,
};

fn main() {
    divan::main();
}

/// The read size of the forwarding path.
const READ: usize = 64 * 1024;

fn build(channel: u8, messages: usize, size: usize, masked: bool) -> Vec<u8> {
    let data: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
    let mut out = Vec::new();
    for i in 0..messages {
        let mask = masked.then(|| (i as u32).wrapping_mul(0x2545_F491).to_be_bytes());
        encode_channel_message(
            ChannelProtocol::V5,
            channel,
            &data,
            mask,
            Some(wsframe::CLIENT_GO_BUFFER_SIZE),
            &mut out,
        );
    }
    out
}

static BULK_OUTPUT: LazyLock<Vec<u8>> = LazyLock::new(|| build(STDOUT, 128, 32 * 1024, false));
static BULK_INPUT: LazyLock<Vec<u8>> = LazyLock::new(|| build(STDIN, 128, 32 * 1024, true));
static TYPING_INPUT: LazyLock<Vec<u8>> = LazyLock::new(|| build(STDIN, 65_536, 1, true));
static TYPING_ECHO: LazyLock<Vec<u8>> = LazyLock::new(|| build(STDOUT, 65_536, 1, false));

/// Copies each read into a buffer, as a forwarder copies it towards the other socket: the
/// least that forwarding the stream costs. (A destination as large as the stream made the
/// copy of the small-message streams erratic and up to 15 times slower under divan, for a
/// reason not pinned down; a read-sized buffer is also what a forwarder really uses.)
fn memcpy(bencher: Bencher, stream: &[u8]) {
    let mut buffer = vec![0u8; READ];
    bencher
        .counter(BytesCount::new(stream.len()))
        .bench_local(|| {
            for read in black_box(stream).chunks(READ) {
                buffer[..read.len()].copy_from_slice(read);
                black_box(&mut buffer);
            }
        });
}

/// Frame events only: headers parsed, payload pieces borrowed.
fn parse(bencher: Bencher, stream: &[u8]) {
    bencher
        .counter(BytesCount::new(stream.len()))
        .bench_local(|| {
            let mut parser = FrameParser::new(Limits::default());
            let mut payload = 0usize;
            for mut read in black_box(stream).chunks(READ) {
                while let Ok(Some(event)) = parser.next_event(&mut read) {
                    if let Event::Payload { bytes, .. } = event {
                        payload += black_box(bytes).len();
                    }
                }
            }
            payload
        });
}

/// Frame events and channel decoding: channel data handed to a consumer, unmasked on the
/// masked streams (into the decoder's scratch buffer), borrowed from the input otherwise.
fn decode(bencher: Bencher, stream: &[u8]) {
    bencher
        .counter(BytesCount::new(stream.len()))
        .bench_local(|| {
            let mut channels = ChannelStream::new(ChannelProtocol::V5, Limits::default());
            let mut data = 0usize;
            for read in black_box(stream).chunks(READ) {
                let fed = channels.feed(read, &mut |event| {
                    if let ChannelEvent::Data { bytes, .. } = event {
                        data += bytes.len();
                    }
                });
                black_box(fed.is_ok());
            }
            data
        });
}

macro_rules! stream_benches {
    ($name:ident, $stream:ident) => {
        mod $name {
            use super::*;

            #[divan::bench]
            fn memcpy(bencher: Bencher) {
                super::memcpy(bencher, &$stream);
            }

            #[divan::bench]
            fn parse(bencher: Bencher) {
                super::parse(bencher, &$stream);
            }

            #[divan::bench]
            fn decode(bencher: Bencher) {
                super::decode(bencher, &$stream);
            }
        }
    };
}

stream_benches!(bulk_output, BULK_OUTPUT);
stream_benches!(bulk_input, BULK_INPUT);
stream_benches!(typing_input, TYPING_INPUT);
stream_benches!(typing_echo, TYPING_ECHO);
