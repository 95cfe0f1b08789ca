//! WebSocket sessions built frame by frame: channels, base64, the v5 close signal, the error
//! channel, close frames.

mod common;

use common::Harness;
use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
use sessiontap::{
    ChannelProtocol, Direction, ExitStatus, OutputStream, OwnedSessionEvent, Protocol,
    SessionParams, TapError,
};
use wsframe::{
    encode_channel_message, encode_close, encode_close_signal, encode_frame, encode_message,
    encode_ping, FrameHeader, Opcode, ERROR, RESIZE, STDERR, STDIN, STDOUT,
};

const MASK: Option<[u8; 4]> = Some([0x12, 0x34, 0x56, 0x78]);

fn msg(protocol: ChannelProtocol, channel: u8, data: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_channel_message(protocol, channel, data, mask, None, &mut out);
    out
}

fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_close(Some(code), reason, None, &mut out);
    out
}

fn output(stream: OutputStream, bytes: &[u8]) -> OwnedSessionEvent {
    OwnedSessionEvent::Output {
        stream,
        bytes: bytes.to_vec(),
    }
}

fn exit(status: ExitStatus) -> OwnedSessionEvent {
    OwnedSessionEvent::Exit { status }
}

const CODE_3: &[u8] = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;

#[test]
fn base64_protocol_sessions() {
    for (protocol, status, expected) in [
        (ChannelProtocol::V4Base64, CODE_3, ExitStatus::Code(3)),
        (
            ChannelProtocol::Base64,
            &b"command terminated with non-zero exit code: exit status 3"[..],
            ExitStatus::Failure {
                message: "command terminated with non-zero exit code: exit status 3".into(),
            },
        ),
    ] {
        let mut h = Harness::new(Protocol::WebSocket(protocol));
        let mut server = msg(protocol, STDOUT, b"", None);
        server.extend(msg(protocol, STDOUT, b"hello \xff\x00 world\n", None));
        server.extend(msg(protocol, STDERR, b"warn", None));
        server.extend(msg(protocol, ERROR, status, None));
        server.extend(close(1000, ""));
        let mut client = msg(protocol, STDIN, b"ls\n", MASK);
        client.extend(msg(protocol, RESIZE, br#"{"Width":100,"Height":30}"#, MASK));
        for chunk in client.chunks(3) {
            h.client(chunk).expect("client");
        }
        for chunk in server.chunks(5) {
            h.server(chunk).expect("server");
        }
        assert_eq!(
            h.reported.direction(Direction::ServerToClient),
            [
                output(OutputStream::Stdout, b"hello \xff\x00 world\n"),
                output(OutputStream::Stderr, b"warn"),
                exit(expected),
            ],
            "{protocol}"
        );
        assert_eq!(
            h.reported.direction(Direction::ClientToServer),
            [
                OwnedSessionEvent::Input {
                    bytes: b"ls\n".to_vec()
                },
                OwnedSessionEvent::Resize {
                    cols: 100,
                    rows: 30
                },
            ]
        );
    }
}

#[test]
fn v5_close_signal() {
    let v5 = ChannelProtocol::V5;
    let mut h = Harness::new(Protocol::WebSocket(v5));
    // The client closes stdin with [255, 0]: no event, no error, later messages still read.
    let mut client = msg(v5, STDIN, b"data", MASK);
    encode_close_signal(STDIN, MASK, &mut client);
    client.extend(msg(v5, RESIZE, br#"{"Width":5,"Height":6}"#, MASK));
    h.client(&client).expect("client");
    assert_eq!(
        h.reported.events,
        [
            OwnedSessionEvent::Input {
                bytes: b"data".to_vec()
            },
            OwnedSessionEvent::Resize { cols: 5, rows: 6 },
        ]
    );
    // A server close signal on the error channel ends it: nothing written is a success.
    let mut server = Vec::new();
    encode_close_signal(ERROR, None, &mut server);
    h.server(&server).expect("server");
    assert_eq!(h.reported.events.last(), Some(&exit(ExitStatus::Success)));
    // On v4 the same bytes are a message on channel 255, ignored.
    let mut v4 = Harness::new(Protocol::WebSocket(ChannelProtocol::V4));
    v4.server(&server).expect("server");
    assert!(v4.reported.events.is_empty());
    assert_eq!(v4.tap.stats().ignored_frames, 1);
    // A malformed close signal is an error.
    let mut bad = Vec::new();
    encode_message(Opcode::Binary, &[255, 0, 0], None, None, &mut bad);
    let mut h = Harness::new(Protocol::WebSocket(v5));
    assert!(matches!(h.server(&bad), Err(TapError::WebSocket { .. })));
}

#[test]
fn status_split_across_frames_with_a_ping_between() {
    let v5 = ChannelProtocol::V5;
    let mut payload = vec![ERROR];
    payload.extend_from_slice(CODE_3);
    let mut server = Vec::new();
    let (a, rest) = payload.split_at(50);
    let (b, c) = rest.split_at(70);
    encode_frame(
        &FrameHeader {
            fin: false,
            ..FrameHeader::new(Opcode::Binary, 0)
        },
        a,
        &mut server,
    );
    encode_ping(b"", None, &mut server);
    encode_frame(
        &FrameHeader {
            fin: false,
            ..FrameHeader::new(Opcode::Continuation, 0)
        },
        b,
        &mut server,
    );
    let first_part = server.len();
    encode_frame(&FrameHeader::new(Opcode::Continuation, 0), c, &mut server);
    server.extend(close(1000, ""));
    let mut h = Harness::new(Protocol::WebSocket(v5));
    h.server(&server[..first_part]).expect("first frames");
    assert!(h.reported.events.is_empty());
    h.server(&server[first_part..]).expect("rest");
    assert_eq!(h.reported.events, [exit(ExitStatus::Code(3))]);
}

#[test]
fn several_resizes_in_one_message_and_one_split_across_messages() {
    let v4 = ChannelProtocol::V4;
    let mut client = msg(
        v4,
        RESIZE,
        b"{\"Width\":81,\"Height\":25}\n{\"Width\":80,\"Height\":24}\n{\"Wid",
        MASK,
    );
    client.extend(msg(v4, RESIZE, b"th\":132,\"Height\":43}\n", MASK));
    let mut h = Harness::new(Protocol::WebSocket(v4));
    for byte in client.chunks(1) {
        h.client(byte).expect("client");
    }
    let sizes: Vec<_> = h
        .reported
        .events
        .iter()
        .map(|e| match e {
            OwnedSessionEvent::Resize { cols, rows } => (*cols, *rows),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(sizes, [(81, 25), (80, 24), (132, 43)]);
}

#[test]
fn the_empty_first_message_on_the_error_channel_is_not_the_status() {
    // Neither stdout nor stderr: the server's first message goes to the error channel.
    for protocol in ChannelProtocol::ALL {
        let mut h = Harness::new(Protocol::WebSocket(protocol));
        h.server(&msg(protocol, ERROR, b"", None)).expect("hello");
        assert!(h.reported.events.is_empty(), "{protocol}");
        h.server(&close(1000, "")).expect("close");
        assert_eq!(h.reported.events, [exit(ExitStatus::Success)], "{protocol}");
    }
}

#[test]
fn an_abnormal_close_before_the_status_is_a_failure() {
    let mut h = Harness::new(Protocol::WebSocket(ChannelProtocol::V5));
    h.server(&msg(ChannelProtocol::V5, STDOUT, b"partial", None))
        .expect("output");
    h.server(&close(1011, "internal error")).expect("close");
    h.finish();
    assert_eq!(
        h.reported.events.last(),
        Some(&exit(ExitStatus::Failure {
            message: "connection closed with status 1011: internal error".into()
        }))
    );
    assert_eq!(h.reported.exits(), 1);
}

#[test]
fn text_frames_with_a_raw_channel_byte() {
    // The Python client sends TEXT frames with a raw channel byte on binary protocols.
    let mut client = Vec::new();
    encode_message(Opcode::Text, b"\x00uptime\n", MASK, None, &mut client);
    encode_message(
        Opcode::Text,
        b"\x04{\"Width\":1,\"Height\":2}",
        MASK,
        Some(4),
        &mut client,
    );
    let mut h = Harness::new(Protocol::WebSocket(ChannelProtocol::V4));
    h.client(&client).expect("client");
    assert_eq!(
        h.reported.events,
        [
            OwnedSessionEvent::Input {
                bytes: b"uptime\n".to_vec()
            },
            OwnedSessionEvent::Resize { cols: 1, rows: 2 },
        ]
    );
}

#[test]
fn channels_without_a_meaning_are_ignored_and_counted() {
    let v5 = ChannelProtocol::V5;
    let mut h = Harness::new(Protocol::WebSocket(v5));
    let mut client = msg(v5, STDOUT, b"not from a client", MASK);
    client.extend(msg(v5, 9, b"??", MASK));
    h.client(&client).expect("client");
    let mut server = msg(v5, STDIN, b"nor this", None);
    server.extend(msg(v5, RESIZE, b"{}", None));
    h.server(&server).expect("server");
    assert!(h.reported.events.is_empty());
    let stats = h.tap.stats();
    assert_eq!(
        (stats.ignored_frames, stats.ignored_bytes),
        (4, 17 + 2 + 8 + 2)
    );
}

#[test]
fn a_whole_short_session_in_one_read() {
    // docs/protocols.md section 7: the empty first message, the output, the status and the close
    // can all arrive in one read.
    let session = ScriptedSession {
        protocol: Protocol::WebSocket(ChannelProtocol::V5),
        params: SessionParams {
            stdout: true,
            stderr: true,
            ..SessionParams::default()
        },
        steps: vec![Step::Stdout(b"Linux\n".to_vec()), Step::Exit(0)],
    };
    let wire = session.encode(&EncodeOptions::default());
    let mut h = Harness::new(session.protocol);
    h.server(&wire.server_to_client).expect("server");
    h.client(&wire.client_to_server).expect("client");
    assert_eq!(
        h.reported.events,
        [
            output(OutputStream::Stdout, b"Linux\n"),
            exit(ExitStatus::Success)
        ]
    );
}

#[test]
fn framing_errors_stop_the_tap_for_good() {
    let mut h = Harness::new(Protocol::WebSocket(ChannelProtocol::V5));
    // RSV1 set: permessage-deflate, unsupported.
    assert!(matches!(
        h.client(&[0xc2, 0x80, 0, 0, 0, 0]),
        Err(TapError::WebSocket {
            direction: Direction::ClientToServer,
            ..
        })
    ));
    assert_eq!(
        h.server(&msg(ChannelProtocol::V5, STDOUT, b"x", None)),
        Err(TapError::Failed)
    );
    let mut h = Harness::new(Protocol::WebSocket(ChannelProtocol::Base64));
    assert!(
        h.server(&msg(ChannelProtocol::V5, STDOUT, b"x", None))
            .is_err(),
        "binary channel byte is not a digit"
    );
}
