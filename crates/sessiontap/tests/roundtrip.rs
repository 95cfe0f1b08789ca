//! Property tests: random scripted sessions in every protocol, encoded, fed to a tap split at random
//! boundaries, yield exactly the scripted events.

mod common;

use common::{feed_session, only, Harness, Rng};
use proptest::prelude::*;
use sessiontap::script::{EncodeOptions, EncodedSession, ScriptedSession, Step};
use sessiontap::{ChannelProtocol, Direction, Protocol, RemoteCommandVersion, SessionParams};

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        proptest::sample::select(RemoteCommandVersion::ALL.to_vec())
            .prop_map(|version| Protocol::Spdy { version }),
        proptest::sample::select(ChannelProtocol::ALL.to_vec()).prop_map(Protocol::WebSocket),
    ]
}

fn params() -> impl Strategy<Value = SessionParams> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.9),
        any::<bool>(),
    )
        .prop_map(|(tty, stdin, stdout, stderr)| SessionParams {
            tty,
            stdin,
            stdout,
            stderr,
            command: vec!["sh".into()],
            container: None,
        })
}

/// Output sizes from 0 to 1 MiB: most small, a few large.
fn output_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        60 => 0usize..300,
        8 => 300usize..40_000,
        1 => 40_000usize..=(1 << 20),
    ]
}

/// A step, its bytes made from a seed (cheap to generate and to shrink, whatever their size).
fn step() -> impl Strategy<Value = Step> {
    let bytes = |len: usize, seed: u64| Rng::new(seed).bytes(len);
    prop_oneof![
        3 => (0usize..100, any::<u64>()).prop_map(move |(len, seed)| Step::Stdin(bytes(len, seed))),
        4 => (output_len(), any::<u64>()).prop_map(move |(len, seed)| Step::Stdout(bytes(len, seed))),
        2 => (output_len(), any::<u64>()).prop_map(move |(len, seed)| Step::Stderr(bytes(len, seed))),
        2 => (any::<u16>(), any::<u16>()).prop_map(|(cols, rows)| Step::Resize { cols, rows }),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    (
        prop::collection::vec(step(), 0..12),
        prop_oneof![1 => Just(None), 4 => (0i32..=255).prop_map(Some)],
    )
        .prop_map(|(mut steps, exit)| {
            if let Some(code) = exit {
                steps.push(Step::Exit(code));
            }
            steps
        })
}

fn options() -> impl Strategy<Value = EncodeOptions> {
    (
        prop_oneof![Just(32 * 1024), 1usize..5000],
        prop_oneof![
            Just(Some(33_792)),
            Just(None),
            (1usize..3000).prop_map(Some)
        ],
        any::<bool>(),
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(
            |(max_write, max_websocket_frame, pings, client_text_frames, mask_seed)| {
                EncodeOptions {
                    max_write,
                    max_websocket_frame,
                    pings,
                    client_text_frames,
                    mask_seed,
                }
            },
        )
}

fn session() -> impl Strategy<Value = ScriptedSession> {
    (protocol(), params(), steps()).prop_map(|(protocol, params, steps)| ScriptedSession {
        protocol,
        params,
        steps,
    })
}

fn check(session: &ScriptedSession, options: &EncodeOptions, max_chunk: usize, seed: u64) {
    let wire = session.encode(options);
    // As the proxy makes the tap (it knows the parameters, and over SPDY stops reading the
    // client's header blocks once the streams are open), and without the parameters.
    for params in [Some(&session.params), None] {
        check_tap(session, &wire, params, max_chunk, seed);
    }
}

fn check_tap(
    session: &ScriptedSession,
    wire: &EncodedSession,
    params: Option<&SessionParams>,
    max_chunk: usize,
    seed: u64,
) {
    let harness = feed_session(session.protocol, params, wire, max_chunk, seed)
        .unwrap_or_else(|e| panic!("tap failed: {e}"));
    let expected = session.expected_events();
    let reported = &harness.reported;
    for direction in [Direction::ClientToServer, Direction::ServerToClient] {
        let (got, want) = (reported.direction(direction), only(direction, &expected));
        assert!(
            got == want,
            "{direction:?}: reported {} events, expected {}; first difference at {:?}",
            got.len(),
            want.len(),
            got.iter().zip(&want).position(|(g, w)| g != w)
        );
    }
    assert_eq!(reported.exits(), 1, "exactly one exit");
    assert_eq!(
        harness.tap.stats().ignored_bytes,
        0,
        "nothing of a faithful session is ignored"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn scripted_sessions_round_trip(
        session in session(),
        options in options(),
        max_chunk in prop_oneof![Just(1usize), 2usize..64, 64usize..5000, 5000usize..100_000],
        seed in any::<u64>(),
    ) {
        let size: usize = session.steps.iter().map(|s| match s {
            Step::Stdin(b) | Step::Stdout(b) | Step::Stderr(b) => b.len(),
            _ => 0,
        }).sum();
        // 1-byte (and tiny) splits for small sessions; large ones in bigger pieces to keep the
        // test quick.
        let max_chunk = if size > 64 * 1024 { max_chunk.max(4096) } else { max_chunk };
        check(&session, &options, max_chunk, seed);
    }

    /// Whatever the bytes, a tap reports or fails; it never panics, and once failed stays failed.
    #[test]
    fn arbitrary_bytes_never_panic(
        protocol in protocol(),
        client in prop::collection::vec(any::<u8>(), 0..512),
        server in prop::collection::vec(any::<u8>(), 0..512),
        max_chunk in 1usize..64,
        seed in any::<u64>(),
    ) {
        let mut harness = Harness::new(protocol);
        let mut rng = Rng::new(seed);
        let mut failed = false;
        for chunk in common::split(&client, max_chunk, &mut rng) {
            failed |= harness.client(chunk).is_err();
            prop_assert_eq!(harness.tap.is_failed(), failed);
        }
        for chunk in common::split(&server, max_chunk, &mut rng) {
            failed |= harness.server(chunk).is_err();
            prop_assert_eq!(harness.tap.is_failed(), failed);
        }
        harness.finish();
        prop_assert!(harness.reported.exits() <= 1);
    }
}

/// Every protocol and shape once, deterministically, with 1-byte splits.
#[test]
fn every_protocol_byte_by_byte() {
    let protocols = RemoteCommandVersion::ALL
        .into_iter()
        .map(|version| Protocol::Spdy { version })
        .chain(ChannelProtocol::ALL.into_iter().map(Protocol::WebSocket));
    for protocol in protocols {
        for tty in [false, true] {
            for exit in [None, Some(0), Some(7)] {
                let mut steps = vec![
                    Step::Resize { cols: 81, rows: 25 },
                    Step::Resize { cols: 80, rows: 24 },
                    Step::Stdin(b"echo hi\n".to_vec()),
                    Step::Stdout(b"hi\n".to_vec()),
                    Step::Stderr(b"warning\n".to_vec()),
                    Step::Stdout(Vec::new()),
                    Step::Resize { cols: 0, rows: 0 },
                ];
                steps.extend(exit.map(Step::Exit));
                let session = ScriptedSession {
                    protocol,
                    params: SessionParams {
                        tty,
                        stdin: true,
                        stdout: true,
                        stderr: !tty,
                        ..SessionParams::default()
                    },
                    steps,
                };
                let options = EncodeOptions {
                    pings: true,
                    max_websocket_frame: Some(3),
                    ..EncodeOptions::default()
                };
                check(&session, &options, 1, 42);
            }
        }
    }
}

/// A mebibyte of output on each stream, in every protocol, fed in read-sized chunks.
#[test]
fn one_mebibyte_of_output_in_every_protocol() {
    let protocols = RemoteCommandVersion::ALL
        .into_iter()
        .map(|version| Protocol::Spdy { version })
        .chain(ChannelProtocol::ALL.into_iter().map(Protocol::WebSocket));
    let mut rng = Rng::new(7);
    let big = rng.bytes(1 << 20);
    for protocol in protocols {
        let session = ScriptedSession {
            protocol,
            params: SessionParams {
                stdin: true,
                stdout: true,
                stderr: true,
                ..SessionParams::default()
            },
            steps: vec![
                Step::Stdin(big[..40_001].to_vec()),
                Step::Stdout(big.clone()),
                Step::Stderr(big.clone()),
                Step::Exit(1),
            ],
        };
        check(&session, &EncodeOptions::default(), 70_000, 3);
    }
}

#[test]
fn the_tap_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<sessiontap::SessionTap>();
}
