//! Ending a session: the bytes that carry the reason land on a frame boundary of the server's
//! stream, and a client reading like kubectl sees the output so far and then a Failure status.

use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
use sessiontap::{
    ending_bytes, ChannelProtocol, ExitStatus, FrameBoundary, OwnedSessionEvent, Protocol,
    RemoteCommandVersion, SessionParams, SessionTap, TapLimits,
};

fn session(protocol: Protocol) -> ScriptedSession {
    ScriptedSession {
        protocol,
        params: SessionParams::from_query("command=sh&stdout=true&stderr=true").expect("query"),
        steps: vec![Step::Stdout(vec![b'x'; 100_000]), Step::Exit(0)],
    }
}

/// Cuts the server stream at the first boundary after `at`, adds the failure there, and checks
/// that a client (the tap, reading like kubectl) sees the output so far and then the failure.
fn cut_and_inject(protocol: Protocol) {
    let wire = session(protocol).encode(&EncodeOptions::default());
    let at = wire.server_to_client.len() / 2;
    assert!(
        !boundary_after(&wire.server_to_client[..at], protocol).at_boundary(),
        "the middle of a 100 kB frame is not a boundary"
    );
    cut_at_and_inject(protocol, at);
}

fn boundary_after(forwarded: &[u8], protocol: Protocol) -> FrameBoundary {
    let mut boundary = FrameBoundary::new(protocol);
    boundary.track(forwarded);
    boundary
}

/// Cuts the server stream at the first boundary at or after `at` and checks the ending there.
fn cut_at_and_inject(protocol: Protocol, at: usize) {
    let wire = session(protocol).encode(&EncodeOptions::default());
    let mut tap = SessionTap::new(protocol, TapLimits::default());
    tap.client_bytes(&wire.client_to_server, &mut |_| {})
        .expect("client stream");
    let server = &wire.server_to_client;
    let mut boundary = boundary_after(&server[..at], protocol);
    let cut = at
        + boundary
            .until_boundary(&server[at..], true)
            .unwrap_or(server.len() - at);
    assert!(boundary.at_boundary());
    // A session already over has its own exit status; the ending goes only before it.
    let mut stream = server[..cut].to_vec();
    let mut before = SessionTap::new(protocol, TapLimits::default());
    before
        .client_bytes(&wire.client_to_server, &mut |_| {})
        .expect("client stream");
    let mut exited = false;
    before
        .server_bytes(&stream, &mut |event| {
            exited |= matches!(event, sessiontap::SessionEvent::Exit { .. })
        })
        .expect("the stream up to the cut");
    if exited {
        return;
    }
    stream.extend(tap.ending_bytes("recorder gone").expect("failure bytes"));
    let mut events = Vec::new();
    tap.server_bytes(&stream, &mut |event| events.push(event.to_owned_event()))
        .expect("well-formed server stream");
    let exit = events.iter().find_map(|event| match event {
        OwnedSessionEvent::Exit { status } => Some(status.clone()),
        _ => None,
    });
    assert_eq!(
        exit,
        Some(ExitStatus::Failure {
            message: "recorder gone".into()
        }),
        "{protocol:?}"
    );
}

#[test]
fn failure_lands_on_a_boundary_and_reads_as_a_failure_status() {
    cut_and_inject(Protocol::Spdy {
        version: RemoteCommandVersion::V4,
    });
    for channels in [
        ChannelProtocol::V5,
        ChannelProtocol::V4,
        ChannelProtocol::V4Base64,
    ] {
        cut_and_inject(Protocol::WebSocket(channels));
    }
}

#[test]
fn spdy_needs_the_error_stream() {
    let protocol = Protocol::Spdy {
        version: RemoteCommandVersion::V4,
    };
    assert!(ending_bytes(protocol, None, "x").is_none());
    let tap = SessionTap::new(protocol, TapLimits::default());
    assert!(
        tap.ending_bytes("x").is_none(),
        "no error stream opened yet"
    );
}

#[test]
fn garbage_loses_the_boundary_for_good() {
    let mut boundary = FrameBoundary::new(Protocol::Spdy {
        version: RemoteCommandVersion::V4,
    });
    // A control frame with version 9.
    boundary.track(&[0x80, 0x09, 0x00, 0x01, 0, 0, 0, 0]);
    assert!(!boundary.at_boundary());
    assert_eq!(boundary.until_boundary(b"anything", true), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Wherever the recording fails, the ending goes at the next boundary and reads as the
    /// failure, over every protocol that carries a Status.
    #[test]
    fn the_ending_reads_as_a_failure_wherever_the_stream_is_cut(
        fraction in 0.0f64..1.0,
        which in 0usize..4,
    ) {
        let protocol = [
            Protocol::Spdy { version: RemoteCommandVersion::V4 },
            Protocol::WebSocket(ChannelProtocol::V5),
            Protocol::WebSocket(ChannelProtocol::V4),
            Protocol::WebSocket(ChannelProtocol::V4Base64),
        ][which];
        let len = session(protocol).encode(&EncodeOptions::default()).server_to_client.len();
        // Truncation is the point: a position inside the stream.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let at = (fraction * len as f64) as usize;
        cut_at_and_inject(protocol, at.min(len));
    }
}
