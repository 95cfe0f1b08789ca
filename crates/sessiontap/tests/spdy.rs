//! SPDY sessions built frame by frame: roles, resizes, the error stream, unknown streams, errors.

mod common;

use common::spdy_frames::{exec_it, id, Frames, V4};
use common::Harness;
use sessiontap::{
    Direction, ExitStatus, OutputStream, OwnedSessionEvent, Protocol, RemoteCommandVersion,
    SpdyStreamError, TapError, TapLimits,
};
use spdyframe::{ControlFrame, HeaderError, StreamId};

fn resize(cols: u16, rows: u16) -> OwnedSessionEvent {
    OwnedSessionEvent::Resize { cols, rows }
}

fn exit(status: ExitStatus) -> OwnedSessionEvent {
    OwnedSessionEvent::Exit { status }
}

#[test]
fn several_resizes_in_one_frame_and_one_split_across_frames() {
    let (mut harness, mut client, mut server) = (Harness::new(V4), Frames::new(), Frames::new());
    exec_it(&mut harness, &mut client, &mut server);
    // kubectl attach: size+1 then the real size, in one frame here.
    client.data(
        7,
        b"{\"Width\":81,\"Height\":25}\n{\"Width\":80,\"Height\":24}\n",
    );
    client
        .data(7, b"{\"Width\":1")
        .data(7, b"20,\"Hei")
        .data(7, b"ght\":40}\n");
    client.data(7, b"{\"Width\":0,\"Height\":0}\n");
    harness.client(&client.take()).expect("resizes");
    assert_eq!(
        harness.reported.events,
        [
            resize(81, 25),
            resize(80, 24),
            resize(120, 40),
            resize(0, 0)
        ]
    );
}

#[test]
fn status_split_across_data_frames_is_reported_when_complete() {
    let (mut harness, mut client, mut server) = (Harness::new(V4), Frames::new(), Frames::new());
    exec_it(&mut harness, &mut client, &mut server);
    let status = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: exit status 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
    let (a, rest) = status.split_at(40);
    let (b, c) = rest.split_at(60);
    harness
        .server(&server.data(1, a).data(1, b).take())
        .expect("first pieces");
    assert!(harness.reported.events.is_empty(), "not complete yet");
    // No FIN needed: the object is complete.
    harness
        .server(&server.data(1, c).take())
        .expect("last piece");
    assert_eq!(harness.reported.events, [exit(ExitStatus::Code(3))]);
    // The FIN, GOAWAY and end of the session report nothing more.
    harness
        .server(
            &server
                .fin(1)
                .control(ControlFrame::GoAway {
                    last_good_stream_id: StreamId::ZERO,
                    status: 0,
                    flags: 0,
                })
                .take(),
        )
        .expect("end");
    harness.finish();
    assert_eq!(harness.reported.exits(), 1);
}

#[test]
fn client_data_the_server_does_not_read_is_ignored_and_counted() {
    let (mut harness, mut client, mut server) = (Harness::new(V4), Frames::new(), Frames::new());
    exec_it(&mut harness, &mut client, &mut server);
    // Stream 9 was never opened; stream 11 has a streamtype the tap does not know; the client
    // writing on its stdout stream is not read either.
    client
        .syn_stream(11, "data")
        .data(9, b"who am i")
        .data(11, b"xyz")
        .data(5, b"no");
    harness.client(&client.take()).expect("client");
    harness
        .server(&server.data(5, b"out").take())
        .expect("server");
    assert_eq!(
        harness.reported.events,
        [OwnedSessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: b"out".to_vec()
        }]
    );
    let stats = harness.tap.stats();
    assert_eq!((stats.ignored_frames, stats.ignored_bytes), (3, 13));
}

#[test]
fn server_data_on_a_stream_without_output_is_unreadable() {
    // Never opened, opened with an unknown streamtype, the stdin stream, the resize stream: the
    // kubelet writes on none of them, so the client could only be reading such bytes as output.
    for stream in [9, 11, 3, 7] {
        let (mut harness, mut client, mut server) =
            (Harness::new(V4), Frames::new(), Frames::new());
        exec_it(&mut harness, &mut client, &mut server);
        harness
            .client(&client.syn_stream(11, "data").take())
            .expect("client");
        assert_eq!(
            harness.server(&server.data(stream, b"hidden").take()),
            Err(TapError::SpdyStreams(SpdyStreamError::UnattributedData {
                stream_id: id(stream),
                len: 6
            })),
            "stream {stream}"
        );
        // An empty frame (a FIN) on such a stream carries nothing and is fine.
        let (mut harness, mut client, mut server) =
            (Harness::new(V4), Frames::new(), Frames::new());
        exec_it(&mut harness, &mut client, &mut server);
        harness.server(&server.fin(stream).take()).expect("FIN");
    }
}

#[test]
fn client_fin_on_the_error_stream_does_not_end_it() {
    let (mut harness, mut client, mut server) = (Harness::new(V4), Frames::new(), Frames::new());
    exec_it(&mut harness, &mut client, &mut server);
    harness
        .client(&client.fin(1).take())
        .expect("client half-close");
    assert!(harness.reported.events.is_empty());
    harness
        .server(
            &server
                .data(1, br#"{"metadata":{},"status":"Success"}"#)
                .take(),
        )
        .expect("status");
    assert_eq!(harness.reported.events, [exit(ExitStatus::Success)]);
}

#[test]
fn plain_text_error_stream_before_v4() {
    for version in [
        RemoteCommandVersion::V1,
        RemoteCommandVersion::V2,
        RemoteCommandVersion::V3,
    ] {
        let protocol = Protocol::Spdy { version };
        let (mut harness, mut client, mut server) =
            (Harness::new(protocol), Frames::new(), Frames::new());
        exec_it(&mut harness, &mut client, &mut server);
        harness
            .server(&server.data(1, b"container not ").data(1, b"found").take())
            .expect("text");
        assert!(
            harness.reported.events.is_empty(),
            "plain text waits for the end"
        );
        harness.server(&server.fin(1).take()).expect("fin");
        assert_eq!(
            harness.reported.events,
            [exit(ExitStatus::Failure {
                message: "container not found".into()
            })]
        );

        // Success is an error stream that ends empty.
        let (mut harness, mut client, mut server) =
            (Harness::new(protocol), Frames::new(), Frames::new());
        exec_it(&mut harness, &mut client, &mut server);
        harness.server(&server.fin(1).take()).expect("fin");
        assert_eq!(harness.reported.events, [exit(ExitStatus::Success)]);
    }
}

#[test]
fn fin_goaway_and_finish_end_the_error_stream() {
    let v3 = Protocol::Spdy {
        version: RemoteCommandVersion::V3,
    };
    type Ending = Box<dyn Fn(&mut Harness, &mut Frames, &mut Frames)>;
    let endings: [(&str, Ending); 3] = [
        (
            "server FIN",
            Box::new(|h, _, s| h.server(&s.fin(1).take()).expect("fin")),
        ),
        (
            "server GOAWAY",
            Box::new(|h, _, s| {
                h.server(
                    &s.control(ControlFrame::GoAway {
                        last_good_stream_id: id(7),
                        status: 0,
                        flags: 0,
                    })
                    .take(),
                )
                .expect("goaway");
            }),
        ),
        ("finish", Box::new(|h, _, _| h.finish())),
    ];
    for (what, end) in endings {
        let (mut harness, mut client, mut server) =
            (Harness::new(v3), Frames::new(), Frames::new());
        exec_it(&mut harness, &mut client, &mut server);
        harness
            .server(&server.data(1, b"exit status 2").take())
            .expect("text");
        end(&mut harness, &mut client, &mut server);
        assert_eq!(
            harness.reported.events,
            [exit(ExitStatus::Failure {
                message: "exit status 2".into()
            })],
            "{what}"
        );
        harness.finish();
        assert_eq!(harness.reported.exits(), 1, "{what}");
    }
}

#[test]
fn rst_stream_does_not_end_the_error_stream() {
    // spdystream writes on a reset stream: kubelet's v1 handler even resets the error stream
    // before it writes the status, and a client may reset it to have an early "success"
    // recorded. The status is what the server writes, whoever reset the stream.
    let v3 = Protocol::Spdy {
        version: RemoteCommandVersion::V3,
    };
    for server_resets in [true, false] {
        let (mut harness, mut client, mut server) =
            (Harness::new(v3), Frames::new(), Frames::new());
        exec_it(&mut harness, &mut client, &mut server);
        if server_resets {
            harness.server(&server.rst(1).take()).expect("rst");
        } else {
            harness.client(&client.rst(1).take()).expect("rst");
        }
        harness
            .server(&server.data(1, b"exit status 2").take())
            .expect("text");
        assert!(harness.reported.events.is_empty(), "no early exit");
        harness.finish();
        assert_eq!(
            harness.reported.events,
            [exit(ExitStatus::Failure {
                message: "exit status 2".into()
            })],
            "server resets: {server_resets}"
        );
    }
}

#[test]
fn headers_frames_keep_the_zlib_context_in_step() {
    let (mut harness, mut client, mut server) = (Harness::new(V4), Frames::new(), Frames::new());
    // HEADERS and SYN_REPLY blocks in both directions between the SYN_STREAMs: each must be
    // inflated or the next SYN_STREAM's block would not decompress.
    client
        .syn_stream(1, "error")
        .headers(1, &[("x-extra", "1")])
        .headers(1, &[]);
    server.syn_reply(1).headers(1, &[("x-server", "yes")]);
    harness.client(&client.take()).expect("client");
    harness.server(&server.take()).expect("server");
    client
        .syn_stream(3, "stdout")
        .headers(3, &[("streamtype", "stderr")]);
    harness.client(&client.take()).expect("client");
    harness
        .server(&server.syn_reply(3).data(3, b"still stdout").take())
        .expect("server");
    assert_eq!(
        harness.reported.events,
        [OwnedSessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: b"still stdout".to_vec()
        }],
        "a role comes from the SYN_STREAM only"
    );
}

#[test]
fn stream_ids_near_2_31_and_many_frames_in_one_chunk() {
    let (mut harness, mut client, mut server) = (Harness::new(V4), Frames::new(), Frames::new());
    let max = StreamId::MAX.get();
    client
        .syn_stream(max, "stdout")
        .syn_stream(129, "stderr")
        .syn_stream(max - 2, "stdin");
    harness.client(&client.take()).expect("client");
    for n in 0..100u8 {
        server.data(max, &[n]).data(129, &[n]);
    }
    harness.server(&server.take()).expect("server");
    harness
        .client(&client.data(max - 2, b"in").take())
        .expect("stdin");
    let out = |stream: OutputStream| -> Vec<u8> {
        harness
            .reported
            .events
            .iter()
            .filter_map(|e| match e {
                OwnedSessionEvent::Output { stream: s, bytes } if *s == stream => {
                    Some(bytes.clone())
                }
                _ => None,
            })
            .flatten()
            .collect()
    };
    let expected: Vec<u8> = (0..100).collect();
    assert_eq!(out(OutputStream::Stdout), expected);
    assert_eq!(out(OutputStream::Stderr), expected);
    assert_eq!(
        harness.reported.direction(Direction::ServerToClient).len(),
        200,
        "interleaved streams"
    );
    assert_eq!(
        harness.reported.direction(Direction::ClientToServer),
        [OwnedSessionEvent::Input {
            bytes: b"in".to_vec()
        }]
    );
}

#[test]
fn framing_errors_stop_the_tap_for_good() {
    let (mut harness, mut client, mut server) = (Harness::new(V4), Frames::new(), Frames::new());
    exec_it(&mut harness, &mut client, &mut server);
    // A control frame of version 2.
    let bad = [0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1];
    assert!(matches!(
        harness.server(&bad),
        Err(TapError::SpdyFrame {
            direction: Direction::ServerToClient,
            ..
        })
    ));
    assert!(harness.tap.is_failed());
    assert_eq!(
        harness.client(&client.data(3, b"x").take()),
        Err(TapError::Failed)
    );
    assert_eq!(harness.server(&[]), Err(TapError::Failed));
    harness.finish();
    assert!(harness.reported.events.is_empty());
}

#[test]
fn a_header_block_bomb_is_an_error() {
    let mut harness = Harness::new(V4);
    let mut client = Frames::new();
    let huge = "a".repeat(1 << 20);
    client.headers(1, &[("x-bomb", &huge)]);
    assert!(client.out.len() < 16 * 1024, "compresses well");
    assert!(matches!(
        harness.client(&client.take()),
        Err(TapError::SpdyHeaders {
            source: HeaderError::TooLarge { .. },
            ..
        })
    ));
}

#[test]
fn an_oversized_error_stream_is_an_error() {
    let limits = TapLimits {
        max_error_stream: 100,
        ..TapLimits::default()
    };
    let mut harness = Harness::with_limits(V4, limits);
    let (mut client, mut server) = (Frames::new(), Frames::new());
    exec_it(&mut harness, &mut client, &mut server);
    let mut long = br#"{"status":"Failure","message":""#.to_vec();
    long.extend_from_slice(&[b'x'; 200]);
    assert!(matches!(
        harness.server(&server.data(1, &long).take()),
        Err(TapError::ErrorStream(_))
    ));
}

#[test]
fn an_invalid_resize_is_an_error() {
    let (mut harness, mut client, mut server) = (Harness::new(V4), Frames::new(), Frames::new());
    exec_it(&mut harness, &mut client, &mut server);
    assert!(matches!(
        harness.client(&client.data(7, b"{\"Width\":-1,\"Height\":2}").take()),
        Err(TapError::Resize(_))
    ));
}

#[test]
fn the_error_stream_id_is_known_once_the_client_opens_it() {
    use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
    use sessiontap::{SessionParams, SessionTap};

    let session = ScriptedSession {
        protocol: V4,
        params: SessionParams::from_query("command=true&stdout=true").expect("query"),
        steps: vec![Step::Exit(0)],
    };
    let wire = session.encode(&EncodeOptions::default());
    let mut tap = SessionTap::new(V4, TapLimits::default());
    assert_eq!(tap.spdy_error_stream(), None);
    tap.client_bytes(&wire.client_to_server[..wire.client_setup_len], &mut |_| {})
        .expect("client setup");
    // client-go opens the error stream first, with the first client stream id.
    assert_eq!(tap.spdy_error_stream(), Some(id(1)));
}
