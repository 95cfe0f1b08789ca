//! The WebSocket frame parser and the Kubernetes channel decoder together on arbitrary bytes:
//! byte 0 picks the protocol and the read size, the rest is the stream. Neither may panic,
//! and the decoder's events must keep their invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsframe::{ChannelEvent, ChannelProtocol, ChannelStream, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let protocol = ChannelProtocol::ALL[usize::from(control) % ChannelProtocol::ALL.len()];
    let read = usize::from(control >> 3) + 1;
    let mut channels = ChannelStream::new(
        protocol,
        Limits {
            max_payload: 1 << 16,
        },
    );
    // The channel of the message whose data is being reported.
    let mut open: Option<u8> = None;
    for chunk in stream.chunks(read) {
        let fed = channels.feed(chunk, &mut |event| match event {
            ChannelEvent::Data { channel, bytes } => {
                assert!(!bytes.is_empty(), "empty Data event");
                assert_eq!(
                    *open.get_or_insert(channel),
                    channel,
                    "channel changed inside a message"
                );
                if protocol.is_base64() {
                    assert!(channel <= 9);
                }
            }
            ChannelEvent::MessageEnd { channel } => {
                assert_eq!(open.take().unwrap_or(channel), channel);
            }
            ChannelEvent::ChannelClosed { .. } => {
                assert!(protocol.supports_close_signal());
                assert!(open.is_none());
            }
            ChannelEvent::Close { reason, .. } => assert!(reason.len() <= 123 * 3),
            ChannelEvent::Ping | ChannelEvent::Pong => {}
            _ => {}
        });
        if fed.is_err() {
            assert!(
                channels.feed(chunk, &mut |_| {}).is_err(),
                "not poisoned after an error"
            );
            return;
        }
    }
});
