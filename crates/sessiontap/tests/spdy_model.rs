//! The tap against a model of the server's stream routing (`common/server_model.rs`: spdystream
//! under the kubelet's `waitForStreams`): random clients, crafted ones included, and random server
//! writes. No byte the server writes as stdout or stderr may go unrecorded unless the tap reported
//! itself unreadable. The same oracle runs under libFuzzer as the `spdy_routing` fuzz target.

mod common;

use common::crafted::{scenario_from_bytes, EXTRA, NAMES, VALUES};
use common::server_model::{check, check_with_params, Action, Implied, Scenario};
use proptest::collection::vec;
use proptest::prelude::*;
use sessiontap::OutputStream;

fn open(id: u32, pairs: &[(&str, &str)]) -> Action {
    Action::Open {
        id,
        headers: pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

fn output(bytes: &[u8]) -> Action {
    Action::Output {
        stream: OutputStream::Stdout,
        bytes: bytes.to_vec(),
    }
}

fn stream_ids() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => prop::sample::select(vec![1u32, 3, 5, 7, 9, 11, 13]),
        1 => Just(0u32),
        1 => 2u32..40,
    ]
}

fn open_action() -> impl Strategy<Value = Action> {
    (
        stream_ids(),
        // Mostly the real name, so that sessions start.
        prop_oneof![3 => Just(0usize), 1 => 0..NAMES.len()],
        0..VALUES.len(),
        prop_oneof![3 => Just(0usize), 1 => 0..EXTRA.len()],
    )
        .prop_map(|(id, name, value, extra)| {
            let mut headers = vec![(NAMES[name].to_string(), VALUES[value].to_string())];
            if let Some((n, v)) = EXTRA[extra] {
                headers.push((n.to_string(), v.to_string()));
            }
            Action::Open { id, headers }
        })
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..24)
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => open_action(),
        1 => stream_ids().prop_map(|id| Action::Reset { id }),
        1 => (stream_ids(), payload(), any::<bool>())
            .prop_map(|(id, bytes, fin)| Action::ClientData { id, bytes, fin }),
        1 => Just(Action::ClientGoAway),
        5 => (any::<bool>(), vec(any::<u8>(), 1..24)).prop_map(|(stdout, bytes)| Action::Output {
            stream: if stdout { OutputStream::Stdout } else { OutputStream::Stderr },
            bytes,
        }),
        2 => (stream_ids(), payload(), any::<bool>())
            .prop_map(|(id, bytes, fin)| Action::ServerData { id, bytes, fin }),
        1 => stream_ids().prop_map(|id| Action::ServerReset { id }),
        1 => Just(Action::Status),
    ]
}

/// kubectl's own setup for `implied`, so that a good share of sessions start before the tricks.
fn kubectl_setup(implied: Implied) -> Vec<Action> {
    let mut roles = vec!["error"];
    if implied.stdin {
        roles.push("stdin");
    }
    if implied.stdout {
        roles.push("stdout");
    }
    if implied.stderr && !implied.tty {
        roles.push("stderr");
    }
    if implied.tty {
        roles.push("resize");
    }
    (1u32..)
        .step_by(2)
        .zip(roles)
        .map(|(id, role)| open(id, &[("streamtype", role)]))
        .collect()
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<[bool; 4]>(),
        any::<bool>(),
        vec(action(), 0..24),
        any::<u64>(),
        vec(any::<u8>(), 1..8),
    )
        .prop_map(|(flags, setup, tail, races, splits)| {
            let implied = Implied {
                stdin: flags[0],
                stdout: flags[1],
                stderr: flags[2],
                tty: flags[3],
            };
            let mut actions = if setup {
                kubectl_setup(implied)
            } else {
                Vec::new()
            };
            actions.extend(tail);
            Scenario {
                implied,
                actions,
                races,
                splits,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_server_output_escapes_the_tap(scenario in scenario()) {
        check(&scenario);
        check_with_params(&scenario);
    }

    #[test]
    fn no_server_output_escapes_the_tap_from_raw_bytes(bytes in vec(any::<u8>(), 0..160)) {
        let scenario = scenario_from_bytes(&bytes);
        check(&scenario);
        check_with_params(&scenario);
    }
}

/// The three tricks, against the model: the server delivers output each time, and the tap
/// records all of it or says it cannot read the session.
#[test]
fn the_tricks_deliver_output_that_the_tap_records_or_refuses() {
    let implied = Implied {
        stdin: true,
        stdout: true,
        ..Implied::default()
    };
    let setup = kubectl_setup(implied);
    let tricks: [(&str, Vec<Action>, bool); 3] = [
        (
            "a NUL after stdout",
            vec![
                open(1, &[("streamtype", "error")]),
                open(3, &[("streamtype", "stdin")]),
                open(5, &[("streamtype", "stdout\0")]),
                output(b"secret"),
                Action::Status,
            ],
            false,
        ),
        (
            "a second stdout stream",
            [
                setup.clone(),
                vec![
                    output(b"first"),
                    open(7, &[("streamtype", "stdout")]),
                    output(b"secret"),
                ],
            ]
            .concat(),
            true,
        ),
        (
            "a reset stdout stream",
            [
                setup.clone(),
                vec![Action::Reset { id: 5 }, output(b"secret"), Action::Status],
            ]
            .concat(),
            false,
        ),
    ];
    for (what, actions, refused) in tricks {
        let scenario = Scenario {
            implied,
            actions,
            races: 0,
            splits: vec![3],
        };
        // The same verdicts whether the tap reads every header block or stops once the streams
        // are open (then the second stdout stream is refused as a late header block).
        for report in [check(&scenario), check_with_params(&scenario)] {
            assert!(report.delivered > 0, "{what}: {report:?}");
            assert_eq!(report.tap_failed, refused, "{what}: {report:?}");
            if !refused {
                assert_eq!(report.recorded, report.delivered, "{what}: {report:?}");
            }
        }
    }
}

/// While the kubelet waits, the later of two stdout streams may win the race: the tap must not
/// have bound the wrong one silently.
#[test]
fn a_race_between_two_stdout_streams_is_refused() {
    let implied = Implied {
        stdout: true,
        stderr: true,
        ..Implied::default()
    };
    for races in [0, u64::MAX] {
        let report = check(&Scenario {
            implied,
            actions: vec![
                open(1, &[("streamtype", "error")]),
                open(3, &[("streamtype", "stdout")]),
                open(5, &[("streamtype", "stdout")]),
                output(b"secret"),
            ],
            races,
            splits: vec![0],
        });
        assert!(report.tap_failed, "{report:?}");
        assert!(report.delivered > 0, "{report:?}");
    }
}
