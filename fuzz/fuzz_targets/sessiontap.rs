//! `sessiontap::SessionTap` fed from both directions: it must never panic, report at most one
//! exit, and stay failed after an error.
//!
//! The first byte chooses the protocol (five SPDY versions, five WebSocket channel protocols) and
//! the mode; the second the largest chunk (1 to 256 bytes); the third seeds the interleaving of the
//! two directions.
//! - Raw mode: the rest is split into chunks, each fed to the client or the server side.
//! - Script mode: the rest describes a scripted session (steps and parameters), which is encoded
//!   with `sessiontap::script` and fed split and interleaved; the tap must then report exactly the
//!   scripted events (a round-trip oracle, so the fuzzer also searches for wrong answers).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
use sessiontap::{
    coalesce, ChannelProtocol, Direction, OwnedSessionEvent, Protocol, RemoteCommandVersion,
    SessionParams, SessionTap, TapError, TapLimits,
};

fn protocol(selector: u8) -> Protocol {
    let index = usize::from(selector % 10);
    match RemoteCommandVersion::ALL.get(index) {
        Some(&version) => Protocol::Spdy { version },
        None => Protocol::WebSocket(ChannelProtocol::ALL[index - 5]),
    }
}

/// A small deterministic generator for the interleaving.
struct Coin(u32);

impl Coin {
    fn flip(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0 & 1 == 0
    }
}

struct Fed {
    tap: SessionTap,
    events: Vec<OwnedSessionEvent>,
    failed: bool,
}

impl Fed {
    fn feed(&mut self, client: bool, chunk: &[u8]) {
        let events = &mut self.events;
        let mut sink = |e: sessiontap::SessionEvent<'_>| events.push(e.to_owned_event());
        let result = if client {
            self.tap.client_bytes(chunk, &mut sink)
        } else {
            self.tap.server_bytes(chunk, &mut sink)
        };
        if self.failed {
            assert_eq!(result, Err(TapError::Failed));
        }
        self.failed |= result.is_err();
        assert_eq!(self.tap.is_failed(), self.failed);
    }
}

/// Reads a scripted session out of fuzz bytes.
fn script(protocol: Protocol, bytes: &[u8]) -> (ScriptedSession, EncodeOptions) {
    let flags = bytes.first().copied().unwrap_or(0);
    let params = SessionParams {
        tty: flags & 1 != 0,
        stdin: flags & 2 != 0,
        stdout: flags & 4 != 0,
        stderr: flags & 8 != 0,
        ..SessionParams::default()
    };
    let options = EncodeOptions {
        max_write: 1 + usize::from(bytes.get(1).copied().unwrap_or(0)),
        max_websocket_frame: Some(1 + usize::from(bytes.get(2).copied().unwrap_or(255))),
        pings: flags & 16 != 0,
        client_text_frames: flags & 32 != 0,
        mask_seed: 7,
    };
    let mut steps = Vec::new();
    let mut rest = bytes.get(3..).unwrap_or_default();
    while let Some((&op, tail)) = rest.split_first() {
        let len = usize::from(op >> 3).min(tail.len());
        let (data, tail) = tail.split_at(len);
        rest = tail;
        steps.push(match op & 7 {
            0 | 1 => Step::Stdout(data.to_vec()),
            2 => Step::Stderr(data.to_vec()),
            3 | 4 => Step::Stdin(data.to_vec()),
            5 | 6 => Step::Resize {
                cols: u16::from(op),
                rows: data.first().copied().map_or(0, u16::from),
            },
            _ => Step::Exit(i32::from(data.first().copied().unwrap_or(0))),
        });
    }
    (
        ScriptedSession {
            protocol,
            params,
            steps,
        },
        options,
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&[selector, chunk, seed], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let protocol = protocol(selector);
    let max_chunk = 1 + usize::from(chunk);
    let mut coin = Coin(u32::from(seed) | 0x100);
    let mut fed = Fed {
        tap: SessionTap::new(protocol, TapLimits::default()),
        events: Vec::new(),
        failed: false,
    };

    if selector >= 128 {
        let (session, options) = script(protocol, rest);
        let wire = session.encode(&options);
        let (setup, client) = wire.client_to_server.split_at(wire.client_setup_len);
        for piece in setup.chunks(max_chunk) {
            fed.feed(true, piece);
        }
        let mut client = client.chunks(max_chunk).peekable();
        let mut server = wire.server_to_client.chunks(max_chunk).peekable();
        while client.peek().is_some() || server.peek().is_some() {
            let to_client = server.peek().is_none() || (client.peek().is_some() && coin.flip());
            let next = if to_client {
                client.next()
            } else {
                server.next()
            };
            if let Some(piece) = next {
                fed.feed(to_client, piece);
            }
        }
        let events = &mut fed.events;
        fed.tap.finish(&mut |e| events.push(e.to_owned_event()));
        assert!(!fed.failed, "a faithful session must not fail the tap");
        let expected = session.expected_events();
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            let only = |events: &[OwnedSessionEvent]| {
                coalesce(
                    events
                        .iter()
                        .filter(|e| e.direction() == direction)
                        .cloned(),
                )
            };
            assert_eq!(only(&fed.events), only(&expected), "{direction:?}");
        }
    } else {
        for piece in rest.chunks(max_chunk) {
            fed.feed(coin.flip(), piece);
        }
        let events = &mut fed.events;
        fed.tap.finish(&mut |e| events.push(e.to_owned_event()));
    }
    let exits = fed
        .events
        .iter()
        .filter(|e| matches!(e, OwnedSessionEvent::Exit { .. }))
        .count();
    assert!(exits <= 1);
});
