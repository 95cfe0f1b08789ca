//! SPDY stream roles as the server assigns them, against a client crafted to get output past a
//! recording: a NUL inside `streamtype`, a header name in capitals, a second stream for a role, a
//! reset of its own stdout, server bytes before the SYN_STREAM. Whatever the client does, output
//! the server writes is recorded, or the tap reports that it cannot read the session.

mod common;

use common::spdy_frames::{id, Frames, V4};
use common::Harness;
use sessiontap::{ExitStatus, OutputStream, OwnedSessionEvent, SpdyStreamError, TapError};

fn stdout(bytes: &[u8]) -> OwnedSessionEvent {
    OwnedSessionEvent::Output {
        stream: OutputStream::Stdout,
        bytes: bytes.to_vec(),
    }
}

/// The tap after the client opened `error` on 1 and then ran `open`.
fn opened(open: impl FnOnce(&mut Frames)) -> (Harness, Frames, Frames) {
    let (mut harness, mut client, server) = (Harness::new(V4), Frames::new(), Frames::new());
    client.syn_stream(1, "error");
    open(&mut client);
    harness.client(&client.take()).expect("client setup");
    (harness, client, server)
}

#[test]
fn a_nul_in_the_stream_type_value_ends_it() {
    // spdystream splits the value on NUL and the kubelet reads the first piece: this is stdout.
    for value in ["stdout\0", "stdout\0stderr", "stdout\0\0"] {
        let (mut harness, _, mut server) = opened(|c| {
            c.syn_stream(3, value);
        });
        harness
            .server(&server.syn_reply(3).data(3, b"secret").take())
            .expect("server");
        assert_eq!(harness.reported.events, [stdout(b"secret")], "{value:?}");
    }
    // A value that starts with NUL is the empty stream type: not stdout, so data on it is not
    // output the tap can attribute.
    let (mut harness, _, mut server) = opened(|c| {
        c.syn_stream(3, "\0stdout");
    });
    assert!(matches!(
        harness.server(&server.data(3, b"secret").take()),
        Err(TapError::SpdyStreams(
            SpdyStreamError::UnattributedData { .. }
        ))
    ));
}

#[test]
fn an_upper_case_header_name_still_names_the_stream_type() {
    // Go's http.Header canonicalises names, so the kubelet's Get("streamType") matches any case.
    // (spdystream even refuses a SYN_STREAM with a name in capitals, and stops reading: the tap
    // binding the role anyway is then harmless, since each role is bound once.)
    for name in ["StreamType", "STREAMTYPE", "streamType"] {
        let (mut harness, _, mut server) = opened(|c| {
            c.syn_stream_with(3, &[(name, "stdout")]);
        });
        harness
            .server(&server.data(3, b"secret").take())
            .expect("server");
        assert_eq!(harness.reported.events, [stdout(b"secret")], "{name}");
    }
    // The first value of the first occurrence wins, as with http.Header.Get.
    let (mut harness, _, mut server) = opened(|c| {
        c.syn_stream_with(3, &[("StreamType", "stdout"), ("streamtype", "stdin")]);
    });
    harness
        .server(&server.data(3, b"secret").take())
        .expect("server");
    assert_eq!(harness.reported.events, [stdout(b"secret")]);
}

#[test]
fn a_second_stream_for_a_role_is_unreadable() {
    for (role, first) in [("stdout", 3), ("stdin", 3), ("stderr", 3), ("error", 1)] {
        let (mut harness, mut client, mut server) = opened(|c| {
            if role != "error" {
                c.syn_stream(3, role);
            }
        });
        harness
            .server(&server.syn_reply(1).data(first, b"").take())
            .expect("server");
        assert_eq!(
            harness.client(&client.syn_stream(5, role).take()),
            Err(TapError::SpdyStreams(SpdyStreamError::RoleReopened {
                stream_type: role,
                first: id(first),
                second: id(5)
            })),
            "{role}"
        );
        assert!(harness.tap.is_failed());
        assert_eq!(
            harness.server(&server.data(first, b"secret").take()),
            Err(TapError::Failed)
        );
    }
    // The second claim may hide behind a NUL or capitals: it is the same role.
    let (mut harness, mut client, _) = opened(|c| {
        c.syn_stream(3, "stdout");
    });
    assert!(matches!(
        harness.client(
            &client
                .syn_stream_with(5, &[("StreamType", "stdout\0")])
                .take()
        ),
        Err(TapError::SpdyStreams(SpdyStreamError::RoleReopened { .. }))
    ));
}

#[test]
fn a_stream_id_opened_again_is_unreadable() {
    let (mut harness, mut client, _) = opened(|c| {
        c.syn_stream(3, "stdout");
    });
    assert_eq!(
        harness.client(&client.syn_stream(3, "data").take()),
        Err(TapError::SpdyStreams(SpdyStreamError::StreamReopened {
            stream_id: id(3),
            stream_type: "stdout"
        }))
    );
}

#[test]
fn output_on_a_stream_the_client_reset_is_recorded() {
    // spdystream writes on a reset stream and the client can read it: it is still output.
    let (mut harness, mut client, mut server) = opened(|c| {
        c.syn_stream(3, "stdin").syn_stream(5, "stdout");
    });
    harness
        .server(&server.data(5, b"before ").take())
        .expect("server");
    harness.client(&client.rst(5).take()).expect("rst");
    harness
        .server(&server.data(5, b"after reset ").take())
        .expect("server");
    // Nor does the server's own FIN or reset stop what follows from being recorded.
    harness
        .server(
            &server
                .fin(5)
                .data(5, b"after fin ")
                .rst(5)
                .data(5, b"after rst")
                .take(),
        )
        .expect("server");
    assert_eq!(
        common::only(
            sessiontap::Direction::ServerToClient,
            &harness.reported.events
        ),
        [stdout(b"before after reset after fin after rst")]
    );
}

#[test]
fn server_data_before_the_syn_stream_is_unreadable_and_reports_no_exit() {
    let mut harness = Harness::new(V4);
    let (mut client, mut server) = (Frames::new(), Frames::new());
    // The server's bytes for stream 3 (and its status on 1) come before the client opened them:
    // the tap cannot know what they are.
    assert_eq!(
        harness.server(&server.data(3, b"secret").take()),
        Err(TapError::SpdyStreams(SpdyStreamError::UnattributedData {
            stream_id: id(3),
            len: 6
        }))
    );
    assert_eq!(
        harness.client(&client.syn_stream(1, "error").syn_stream(3, "stdout").take()),
        Err(TapError::Failed)
    );
    harness.finish();
    assert_eq!(harness.reported.exits(), 0, "{:?}", harness.reported.events);

    // Even the status alone, before the error stream is open, is not an exit.
    let mut harness = Harness::new(V4);
    assert!(harness
        .server(
            &server
                .data(1, br#"{"metadata":{},"status":"Success"}"#)
                .take()
        )
        .is_err());
    harness.finish();
    assert_eq!(harness.reported.exits(), 0);
}

#[test]
fn without_an_error_stream_the_exit_is_unknown_not_success() {
    let mut harness = Harness::new(V4);
    let (mut client, mut server) = (Frames::new(), Frames::new());
    harness
        .client(&client.syn_stream(3, "stdout").take())
        .expect("client");
    harness
        .server(
            &server
                .data(3, b"out")
                .control(spdyframe::ControlFrame::GoAway {
                    last_good_stream_id: id(3),
                    status: 0,
                    flags: 0,
                })
                .take(),
        )
        .expect("server");
    harness.finish();
    assert_eq!(harness.reported.events, [stdout(b"out")]);
    assert!(!harness.tap.exited());

    // With the error stream open and nothing on it the status is client-go's: success.
    let (mut harness, _, _) = opened(|_| {});
    harness.finish();
    assert_eq!(
        harness.reported.events,
        [OwnedSessionEvent::Exit {
            status: ExitStatus::Success
        }]
    );
}
