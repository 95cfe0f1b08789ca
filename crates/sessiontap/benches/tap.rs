//! Throughput of a tap over realistic streams, beside a plain copy of the same bytes.
//!
//! `cargo bench -p sessiontap --bench tap`
//!
//! - bulk: 4 MiB of stdout in 32 KiB writes (kubelet's copy buffer), fed in 64 KiB reads;
//! - typing: 4,096 one-byte stdin writes, each fed as its own read (one frame per read).

use std::hint::black_box;
use std::sync::OnceLock;

use divan::counter::BytesCount;
use divan::Bencher;
use sessiontap::script::{EncodeOptions, EncodedSession, ScriptedSession, Step};
use sessiontap::{
    ChannelProtocol, Protocol, RemoteCommandVersion, SessionParams, SessionTap, TapLimits,
};

fn main() {
    divan::main();
}

const SPDY: Protocol = Protocol::Spdy {
    version: RemoteCommandVersion::V4,
};
const WEBSOCKET: Protocol = Protocol::WebSocket(ChannelProtocol::V5);

fn bulk(protocol: Protocol) -> EncodedSession {
    let output: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    ScriptedSession {
        protocol,
        params: SessionParams {
            stdout: true,
            tty: true,
            ..SessionParams::default()
        },
        steps: vec![Step::Stdout(output), Step::Exit(0)],
    }
    .encode(&EncodeOptions::default())
}

/// The client's stream of a typing session, where its keystrokes start and where each of their
/// frames ends.
fn typing(protocol: Protocol) -> (Vec<u8>, usize, Vec<usize>) {
    let params = SessionParams {
        stdin: true,
        stdout: true,
        tty: true,
        ..SessionParams::default()
    };
    let session = |keys: usize| ScriptedSession {
        protocol,
        params: params.clone(),
        steps: (0..keys)
            .map(|i| Step::Stdin(vec![b'a' + (i % 26) as u8]))
            .collect(),
    };
    let options = EncodeOptions {
        max_write: 1,
        ..EncodeOptions::default()
    };
    let wire = session(4096).encode(&options);
    // Every keystroke is one frame of the same size: measure it from sessions of one and two keys.
    let one = session(1).encode(&options).client_to_server.len();
    let two = session(2).encode(&options).client_to_server.len();
    let per_key = two - one;
    let start = wire.client_setup_len;
    let ends = (1..=4096).map(|k| start + k * per_key).collect();
    (wire.client_to_server, start, ends)
}

fn spdy_bulk() -> &'static EncodedSession {
    static WIRE: OnceLock<EncodedSession> = OnceLock::new();
    WIRE.get_or_init(|| bulk(SPDY))
}

fn websocket_bulk() -> &'static EncodedSession {
    static WIRE: OnceLock<EncodedSession> = OnceLock::new();
    WIRE.get_or_init(|| bulk(WEBSOCKET))
}

fn tap_bulk(bencher: Bencher, protocol: Protocol, wire: &EncodedSession) {
    bencher
        .counter(BytesCount::of_slice(&wire.server_to_client))
        .bench(|| {
            let mut tap = SessionTap::new(protocol, TapLimits::default());
            tap.client_bytes(&wire.client_to_server[..wire.client_setup_len], &mut |_| {})
                .expect("valid");
            for read in wire.server_to_client.chunks(64 * 1024) {
                tap.server_bytes(black_box(read), &mut |event| {
                    black_box(event);
                })
                .expect("valid");
            }
        });
}

fn tap_typing(bencher: Bencher, protocol: Protocol) {
    let (client, first, ends) = typing(protocol);
    let feed = |sink: &mut dyn FnMut(sessiontap::SessionEvent<'_>)| {
        let mut tap = SessionTap::new(protocol, TapLimits::default());
        tap.client_bytes(&client[..first], &mut |_| {})
            .expect("valid");
        let mut start = first;
        for &end in &ends {
            tap.client_bytes(black_box(&client[start..end]), sink)
                .expect("valid");
            start = end;
        }
    };
    // One keystroke per read, one event per keystroke.
    let mut keys = 0;
    feed(&mut |_| keys += 1);
    assert_eq!(keys, ends.len());
    let typed = ends[ends.len() - 1] - first;
    bencher.counter(BytesCount::new(typed)).bench(|| {
        feed(&mut |event| {
            black_box(event);
        })
    });
}

#[divan::bench]
fn memcpy_bulk(bencher: Bencher) {
    let wire = &spdy_bulk().server_to_client;
    let mut copy = vec![0u8; wire.len()];
    bencher.counter(BytesCount::of_slice(wire)).bench_local(|| {
        for (read, out) in wire.chunks(64 * 1024).zip(copy.chunks_mut(64 * 1024)) {
            out.copy_from_slice(black_box(read));
        }
        black_box(&copy);
    });
}

#[divan::bench]
fn spdy_bulk_output(bencher: Bencher) {
    tap_bulk(bencher, SPDY, spdy_bulk());
}

#[divan::bench]
fn websocket_bulk_output(bencher: Bencher) {
    tap_bulk(bencher, WEBSOCKET, websocket_bulk());
}

#[divan::bench]
fn spdy_typing(bencher: Bencher) {
    tap_typing(bencher, SPDY);
}

#[divan::bench]
fn websocket_typing(bencher: Bencher) {
    tap_typing(bencher, WEBSOCKET);
}
