//! Property: no input panics, and errors are sticky. Arbitrary bytes rarely get past the
//! first header, so valid streams with a few bytes corrupted are tried too (the fuzz targets
//! `ws_frames` and `ws_channels` do the same at length).

mod support;

use proptest::prelude::*;
use wsframe::{
    encode_channel_message, encode_close_signal, encode_ping, ChannelEvent, ChannelProtocol,
    ChannelStream, Limits, CLIENT_GO_BUFFER_SIZE,
};

/// Feeds `wire` in reads of `read` bytes; returns whether it decoded without error.
fn feed_all(protocol: ChannelProtocol, wire: &[u8], read: usize) -> bool {
    let mut stream = ChannelStream::new(
        protocol,
        Limits {
            max_payload: 1 << 16,
        },
    );
    for chunk in wire.chunks(read.max(1)) {
        let fed = stream.feed(chunk, &mut |event| {
            if let ChannelEvent::Data { bytes, .. } = event {
                assert!(!bytes.is_empty());
            }
        });
        if fed.is_err() {
            assert!(
                stream.feed(chunk, &mut |_| {}).is_err(),
                "errors are sticky"
            );
            return false;
        }
    }
    true
}

/// A valid stream of a few messages of each kind.
fn valid_stream(protocol: ChannelProtocol, masked: bool) -> Vec<u8> {
    let mask = masked.then_some([0xA5, 0x5A, 0x0F, 0xF0]);
    let mut wire = Vec::new();
    encode_channel_message(protocol, 1, b"", mask, None, &mut wire);
    encode_channel_message(
        protocol,
        0,
        &support::bytes(300, 9),
        mask,
        Some(100),
        &mut wire,
    );
    encode_ping(b"p", mask, &mut wire);
    encode_channel_message(
        protocol,
        2,
        b"hello",
        mask,
        Some(CLIENT_GO_BUFFER_SIZE),
        &mut wire,
    );
    encode_close_signal(0, mask, &mut wire);
    wire
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        protocol in prop::sample::select(ChannelProtocol::ALL.to_vec()),
        wire in prop::collection::vec(any::<u8>(), 0..512),
        read in 1usize..64,
    ) {
        feed_all(protocol, &wire, read);
    }

    #[test]
    fn corrupted_streams_never_panic(
        protocol in prop::sample::select(ChannelProtocol::ALL.to_vec()),
        masked in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        read in 1usize..64,
    ) {
        let mut wire = valid_stream(protocol, masked);
        prop_assert!(feed_all(protocol, &wire, wire.len()) || protocol.is_base64());
        for (at, value) in flips {
            let at = at.index(wire.len());
            wire[at] = value;
        }
        feed_all(protocol, &wire, read);
    }
}
