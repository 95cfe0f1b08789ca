//! The channel decoder on hand-picked streams: client-go fragmentation, base64 protocols,
//! the v5 close signal, TEXT frames with raw channel bytes, close frames and malformed input.

mod support;

use base64::Engine as _;
use support::{decode, decode_in_chunks, splits, Item};
use wsframe::{
    encode_channel_message, encode_close, encode_close_signal, encode_frame, encode_message,
    encode_ping, encode_pong, ChannelDecoder, ChannelError, ChannelEvent, ChannelProtocol, Event,
    FrameHeader, Opcode, StreamError, CLIENT_GO_BUFFER_SIZE, ERROR, RESIZE, STDERR, STDIN, STDOUT,
};

const CLIENT_MASK: Option<[u8; 4]> = Some([0x37, 0xfa, 0x21, 0x3d]);

fn message(channel: u8, data: &[u8]) -> Item {
    Item::Message {
        channel,
        data: data.to_vec(),
    }
}

/// Every split of `wire` into two reads, and a few many-read splits.
fn assert_decodes_at_every_split(protocol: ChannelProtocol, wire: &[u8], expected: &[Item]) {
    assert_eq!(decode(protocol, wire).expect("valid stream"), expected);
    for at in 0..=wire.len() {
        let got = decode_in_chunks(protocol, wire, &[at, wire.len() - at]).expect("valid stream");
        assert_eq!(got, expected, "split at {at}");
    }
    for max in [1, 2, 3, 5, 64] {
        let got =
            decode_in_chunks(protocol, wire, &splits(wire.len(), max, max as u64)).expect("valid");
        assert_eq!(got, expected, "reads of at most {max}");
    }
}

#[test]
fn a_40001_byte_message_fragmented_at_33792_with_a_ping_between() {
    let data = support::bytes(40_001, 1);
    for (mask, ping_mask) in [(CLIENT_MASK, Some([5, 6, 7, 8])), (None, None)] {
        let mut first = Vec::new();
        encode_channel_message(
            ChannelProtocol::V5,
            STDIN,
            &data,
            mask,
            Some(CLIENT_GO_BUFFER_SIZE),
            &mut first,
        );
        // Two frames: 33,792 bytes (channel byte and 33,791 of data), then 6,210.
        let header = if mask.is_some() { 8 } else { 4 };
        let first_frame = header + CLIENT_GO_BUFFER_SIZE;
        assert_eq!(first.len(), first_frame + header + 6_210);
        assert_eq!(first[0], 0x02, "BINARY without FIN");
        assert_eq!(first[first_frame], 0x80, "CONTINUATION with FIN");

        let mut wire = first[..first_frame].to_vec();
        encode_ping(b"keepalive", ping_mask, &mut wire);
        wire.extend_from_slice(&first[first_frame..]);
        let expected = [Item::Ping, message(STDIN, &data)];
        assert_eq!(decode(ChannelProtocol::V5, &wire).expect("valid"), expected);
        for max in [1, 100, 4096, 65_536] {
            let got = decode_in_chunks(ChannelProtocol::V5, &wire, &splits(wire.len(), max, 7))
                .expect("valid");
            assert_eq!(got, expected, "reads of at most {max}");
        }
    }
}

#[test]
fn base64_protocols_send_text_frames_with_a_digit_channel() {
    for protocol in [ChannelProtocol::Base64, ChannelProtocol::V4Base64] {
        let mut wire = Vec::new();
        encode_channel_message(protocol, STDOUT, b"\n", None, None, &mut wire);
        // wsstream's own example: "\n" on stdout is "1Cg==".
        assert_eq!(wire, [0x81, 5, b'1', b'C', b'g', b'=', b'=']);
        for (channel, data) in [
            (STDIN, &b"foo\n"[..]),
            (STDERR, b""),
            (ERROR, b"{}"),
            (RESIZE, b"x"),
        ] {
            encode_channel_message(protocol, channel, data, CLIENT_MASK, None, &mut wire);
        }
        let expected = [
            message(STDOUT, b"\n"),
            message(STDIN, b"foo\n"),
            message(STDERR, b""),
            message(ERROR, b"{}"),
            message(RESIZE, b"x"),
        ];
        assert_decodes_at_every_split(protocol, &wire, &expected);
    }
}

#[test]
fn base64_split_across_frames_at_every_offset() {
    let data = support::bytes(50, 3);
    let text = base64::engine::general_purpose::STANDARD.encode(&data);
    let mut payload = vec![b'2'];
    payload.extend_from_slice(text.as_bytes());
    for protocol in [ChannelProtocol::Base64, ChannelProtocol::V4Base64] {
        for mask in [None, CLIENT_MASK] {
            // Two frames split at every offset, the first possibly empty.
            for at in 0..=payload.len() {
                let mut wire = Vec::new();
                let first = FrameHeader {
                    fin: false,
                    rsv: 0,
                    opcode: Opcode::Text,
                    mask,
                    payload_len: 0,
                };
                encode_frame(&first, &payload[..at], &mut wire);
                encode_pong(b"", None, &mut wire);
                let rest = FrameHeader {
                    fin: true,
                    opcode: Opcode::Continuation,
                    ..first
                };
                encode_frame(&rest, &payload[at..], &mut wire);
                let got = decode(protocol, &wire).expect("valid");
                assert_eq!(got, [Item::Pong, message(STDERR, &data)], "split at {at}");
            }
            // One character per frame.
            let mut wire = Vec::new();
            encode_message(Opcode::Text, &payload, mask, Some(1), &mut wire);
            assert_eq!(
                decode(protocol, &wire).expect("valid"),
                [message(STDERR, &data)]
            );
        }
    }
}

#[test]
fn base64_errors() {
    let mut wire = Vec::new();
    encode_message(Opcode::Text, b"xZm9v", None, None, &mut wire);
    assert_eq!(
        decode(ChannelProtocol::Base64, &wire),
        Err(StreamError::Channel(ChannelError::InvalidChannelDigit(
            b'x'
        )))
    );
    for body in [&b"1Zm9"[..], b"1Zm9v!", b"1Zg==Zg=="] {
        let mut wire = Vec::new();
        encode_message(Opcode::Text, body, None, None, &mut wire);
        assert_eq!(
            decode(ChannelProtocol::V4Base64, &wire),
            Err(StreamError::Channel(ChannelError::InvalidBase64)),
            "{body:?}"
        );
    }
}

#[test]
fn base64_protocols_decode_binary_frames_too_as_wsstream_does() {
    let mut wire = Vec::new();
    encode_message(Opcode::Binary, b"1aGk=", None, None, &mut wire);
    assert_eq!(
        decode(ChannelProtocol::Base64, &wire).expect("valid"),
        [message(STDOUT, b"hi")]
    );
}

#[test]
fn v5_close_signal_closes_a_channel() {
    let mut wire = Vec::new();
    encode_channel_message(
        ChannelProtocol::V5,
        STDIN,
        b"exit\n",
        CLIENT_MASK,
        None,
        &mut wire,
    );
    encode_close_signal(STDERR, CLIENT_MASK, &mut wire);
    assert_eq!(
        &wire[wire.len() - 8..wire.len() - 2],
        [0x82, 0x82, 0x37, 0xfa, 0x21, 0x3d]
    );
    encode_close_signal(STDIN, None, &mut wire);
    let expected = [
        message(STDIN, b"exit\n"),
        Item::ChannelClosed(STDERR),
        Item::ChannelClosed(STDIN),
    ];
    assert_decodes_at_every_split(ChannelProtocol::V5, &wire, &expected);

    // Also when the signal is fragmented.
    let mut wire = Vec::new();
    encode_message(Opcode::Binary, &[255, 2], CLIENT_MASK, Some(1), &mut wire);
    assert_eq!(
        decode(ChannelProtocol::V5, &wire).expect("valid"),
        [Item::ChannelClosed(2)]
    );
}

#[test]
fn before_v5_channel_255_is_an_ordinary_channel() {
    for protocol in [ChannelProtocol::Channel, ChannelProtocol::V4] {
        let mut wire = Vec::new();
        encode_close_signal(STDERR, None, &mut wire);
        assert_eq!(
            decode(protocol, &wire).expect("valid"),
            [message(255, &[STDERR])]
        );
    }
}

#[test]
fn a_v5_close_signal_must_be_two_bytes() {
    for body in [&[255u8][..], &[255, 1, 2]] {
        let mut wire = Vec::new();
        encode_message(Opcode::Binary, body, None, None, &mut wire);
        assert_eq!(
            decode(ChannelProtocol::V5, &wire),
            Err(StreamError::Channel(ChannelError::InvalidCloseSignal)),
            "{body:?}"
        );
    }
}

#[test]
fn text_frames_with_a_raw_channel_byte_on_binary_protocols() {
    // The Python client sends TEXT frames with a raw channel byte.
    for protocol in [
        ChannelProtocol::Channel,
        ChannelProtocol::V4,
        ChannelProtocol::V5,
    ] {
        let mut wire = Vec::new();
        encode_message(Opcode::Text, b"\x00ls -l\n", CLIENT_MASK, None, &mut wire);
        encode_message(
            Opcode::Text,
            b"\x04{\"Width\":80,\"Height\":24}",
            CLIENT_MASK,
            Some(7),
            &mut wire,
        );
        let expected = [
            message(STDIN, b"ls -l\n"),
            message(RESIZE, br#"{"Width":80,"Height":24}"#),
        ];
        assert_decodes_at_every_split(protocol, &wire, &expected);
    }
}

#[test]
fn the_empty_first_messages_after_the_101() {
    // Kubernetes sends a message holding only the channel byte on each writable channel.
    let mut wire = Vec::new();
    for channel in [STDOUT, STDERR, ERROR] {
        encode_channel_message(ChannelProtocol::V5, channel, b"", None, None, &mut wire);
    }
    // A message without even a channel byte is skipped, as wsstream skips it.
    encode_message(Opcode::Binary, b"", None, None, &mut wire);
    let expected = [
        message(STDOUT, b""),
        message(STDERR, b""),
        message(ERROR, b""),
    ];
    assert_decodes_at_every_split(ChannelProtocol::V5, &wire, &expected);
}

#[test]
fn the_channel_byte_may_come_in_a_later_frame() {
    let mut wire = Vec::new();
    let empty_first = FrameHeader {
        fin: false,
        rsv: 0,
        opcode: Opcode::Binary,
        mask: CLIENT_MASK,
        payload_len: 0,
    };
    encode_frame(&empty_first, b"", &mut wire);
    encode_frame(
        &FrameHeader {
            fin: true,
            opcode: Opcode::Continuation,
            ..empty_first
        },
        b"\x01out",
        &mut wire,
    );
    assert_eq!(
        decode(ChannelProtocol::V4, &wire).expect("valid"),
        [message(STDOUT, b"out")]
    );
}

#[test]
fn close_frames_report_code_and_reason() {
    let mut wire = Vec::new();
    encode_close(Some(1000), "done", CLIENT_MASK, &mut wire);
    encode_close(None, "", None, &mut wire);
    // A one-byte payload is read as no code; an invalid reason is decoded lossily.
    encode_frame(&FrameHeader::new(Opcode::Close, 0), &[3], &mut wire);
    encode_frame(
        &FrameHeader::new(Opcode::Close, 0),
        b"\x03\xf3ok\xff",
        &mut wire,
    );
    let expected = [
        Item::Close(Some(1000), "done".into()),
        Item::Close(None, String::new()),
        Item::Close(None, String::new()),
        Item::Close(Some(1011), "ok\u{fffd}".into()),
    ];
    assert_decodes_at_every_split(ChannelProtocol::V5, &wire, &expected);
}

#[test]
fn events_out_of_order_are_refused_and_poison_the_decoder() {
    let mut sink = |_: ChannelEvent<'_>| {};
    let mut decoder = ChannelDecoder::new(ChannelProtocol::V5);
    assert_eq!(
        decoder.feed(&Event::FrameEnd, &mut sink),
        Err(ChannelError::UnexpectedEvent)
    );
    assert_eq!(
        decoder.feed(
            &Event::FrameStart(FrameHeader::new(Opcode::Binary, 1)),
            &mut sink
        ),
        Err(ChannelError::Poisoned)
    );

    let mut decoder = ChannelDecoder::new(ChannelProtocol::V5);
    decoder
        .feed(
            &Event::FrameStart(FrameHeader::new(Opcode::Binary, 2)),
            &mut sink,
        )
        .expect("start");
    // Wrong offset, then a piece beyond the length.
    assert_eq!(
        decoder.feed(
            &Event::Payload {
                bytes: b"x",
                offset: 1
            },
            &mut sink
        ),
        Err(ChannelError::UnexpectedEvent)
    );
    let mut decoder = ChannelDecoder::new(ChannelProtocol::V5);
    decoder
        .feed(
            &Event::FrameStart(FrameHeader::new(Opcode::Binary, 2)),
            &mut sink,
        )
        .expect("start");
    assert_eq!(
        decoder.feed(
            &Event::Payload {
                bytes: b"xyz",
                offset: 0
            },
            &mut sink
        ),
        Err(ChannelError::UnexpectedEvent)
    );
    // A frame end before the payload is complete.
    let mut decoder = ChannelDecoder::new(ChannelProtocol::V5);
    decoder
        .feed(
            &Event::FrameStart(FrameHeader::new(Opcode::Binary, 2)),
            &mut sink,
        )
        .expect("start");
    assert_eq!(
        decoder.feed(&Event::FrameEnd, &mut sink),
        Err(ChannelError::UnexpectedEvent)
    );
    // Hand-built frames the parser would refuse.
    let mut decoder = ChannelDecoder::new(ChannelProtocol::V5);
    assert_eq!(
        decoder.feed(
            &Event::FrameStart(FrameHeader::new(Opcode::Ping, 126)),
            &mut sink
        ),
        Err(ChannelError::Frame(
            wsframe::FrameError::ControlFrameTooLong(126)
        ))
    );
}
