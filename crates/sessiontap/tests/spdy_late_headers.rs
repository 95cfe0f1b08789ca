//! A tap that knows the session's parameters stops reading the client's SPDY header blocks once
//! the client has opened every stream the server waits for (and frees their zlib context). A
//! header block the client sends after that cannot be read, so the tap refuses it: a crafted
//! client cannot open a stream, or send headers, that the tap has not read.

mod common;

use common::spdy_frames::{Frames, V4};
use common::Harness;
use sessiontap::{
    OutputStream, OwnedSessionEvent, Protocol, RemoteCommandVersion, SessionParams,
    SpdyStreamError, TapError,
};

fn params(query: &str) -> SessionParams {
    SessionParams::from_query(query).expect("query")
}

fn late_headers(result: Result<(), TapError>) -> Option<(&'static str, u32)> {
    match result {
        Err(TapError::SpdyStreams(SpdyStreamError::HeadersAfterStreamsOpen {
            frame,
            stream_id,
        })) => Some((frame, stream_id.get())),
        _ => None,
    }
}

/// `kubectl exec -i` without a tty (stdin, stdout, stderr), started: every stream open and
/// answered, a line echoed.
fn started() -> (Harness, Frames, Frames) {
    let mut harness = Harness::with_params(V4, &params("stdin=true&stdout=true&stderr=true"));
    let (mut client, mut server) = (Frames::new(), Frames::new());
    for (id, role) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
        harness
            .client(&client.syn_stream(id, role).take())
            .expect("the session's streams are read");
        harness
            .server(&server.syn_reply(id).take())
            .expect("server");
    }
    harness
        .client(&client.data(3, b"hi\n").take())
        .expect("stdin");
    harness
        .server(&server.data(5, b"hi\n").take())
        .expect("stdout");
    (harness, client, server)
}

#[test]
fn a_syn_stream_after_the_streams_are_open_is_refused() {
    for role in ["stdout", "stderr", "x-anything", "resize"] {
        let (mut harness, mut client, _) = started();
        let result = harness.client(&client.syn_stream(9, role).take());
        assert_eq!(late_headers(result), Some(("SYN_STREAM", 9)), "{role}");
        assert!(harness.tap.is_failed());
        let stdout = OwnedSessionEvent::Output {
            stream: OutputStream::Stdout,
            bytes: b"hi\n".to_vec(),
        };
        assert!(
            harness.reported.events.contains(&stdout),
            "what came before stands"
        );
    }
}

#[test]
fn headers_and_syn_reply_after_the_streams_are_open_are_refused() {
    let (mut harness, mut client, _) = started();
    let result = harness.client(&client.headers(5, &[("streamtype", "stdin")]).take());
    assert_eq!(late_headers(result), Some(("HEADERS", 5)));

    let (mut harness, mut client, _) = started();
    let result = harness.client(&client.syn_reply(2).take());
    assert_eq!(late_headers(result), Some(("SYN_REPLY", 2)));
}

#[test]
fn frames_without_header_blocks_still_pass_after_the_streams_are_open() {
    let (mut harness, mut client, mut server) = started();
    client
        .control(spdyframe::ControlFrame::Ping { id: 1, flags: 0 })
        .data(3, b"more\n")
        .fin(3)
        .rst(7)
        .control(spdyframe::ControlFrame::GoAway {
            last_good_stream_id: spdyframe::StreamId::ZERO,
            status: 0,
            flags: 0,
        });
    harness.client(&client.take()).expect("no header block");
    harness
        .server(&server.data(5, b"more\n").take())
        .expect("server");
    assert!(!harness.tap.is_failed());
}

#[test]
fn header_blocks_are_read_until_the_last_expected_stream_is_open() {
    // Before the last stream the server waits for, headers are read as before: a HEADERS frame
    // on an open stream, a stream with a type the server does not count.
    let mut harness = Harness::with_params(V4, &params("stdin=1&stdout=1&tty=1"));
    let mut client = Frames::new();
    client
        .syn_stream(1, "error")
        .headers(1, &[("x", "y")])
        .syn_stream(3, "x-unknown")
        .syn_stream(5, "stdin")
        .syn_stream(7, "stdout");
    harness
        .client(&client.take())
        .expect("still waiting for resize");
    harness
        .client(&client.syn_stream(9, "resize").take())
        .expect("the last stream");
    let result = harness.client(&client.syn_stream(11, "x-unknown").take());
    assert_eq!(late_headers(result), Some(("SYN_STREAM", 11)));
}

#[test]
fn before_v3_a_tty_session_does_not_wait_for_a_resize_stream() {
    let v2 = Protocol::Spdy {
        version: RemoteCommandVersion::V2,
    };
    let mut harness = Harness::with_params(v2, &params("stdin=1&stdout=1&tty=1"));
    let mut client = Frames::new();
    client
        .syn_stream(1, "error")
        .syn_stream(3, "stdin")
        .syn_stream(5, "stdout");
    harness.client(&client.take()).expect("streams");
    let result = harness.client(&client.syn_stream(7, "resize").take());
    assert_eq!(late_headers(result), Some(("SYN_STREAM", 7)));
}

#[test]
fn without_the_parameters_the_tap_reads_header_blocks_to_the_end() {
    let mut harness = Harness::new(V4);
    let mut client = Frames::new();
    for (id, role) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
        client.syn_stream(id, role);
    }
    client.syn_stream(9, "x-anything").headers(5, &[("x", "y")]);
    harness.client(&client.take()).expect("read");
}
