//! `sessiontap::portforward::PortForwardTap` over either transport, fed arbitrary splits: it must
//! never panic, keep its state within its limits, report `SessionEnded` at most once and last,
//! and stay failed after an error.
//!
//! The first byte chooses the transport (bit 0), the mode (bit 1), small limits (bit 2) and
//! payload capture (bit 3); the second the largest chunk (1 to 256 bytes); the third seeds the
//! interleaving of the two directions.
//! - Raw mode: the rest is split into chunks, each fed to the client or the server side.
//! - Script mode: the rest describes a kubectl session (`sessiontap::script::portforward`),
//!   encoded and fed in order with its segments split; the tap must then report exactly the
//!   scripted events (a round-trip oracle).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiontap::portforward::{
    coalesce, PortForwardEvent, PortForwardLimits, PortForwardTap, PortForwardTransport,
};
use sessiontap::script::portforward::{PortForwardScript, PortForwardStep, TunnelOptions};
use sessiontap::Direction;

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
    tap: PortForwardTap,
    limits: PortForwardLimits,
    events: Vec<PortForwardEvent>,
    failed: bool,
}

impl Fed {
    fn feed(&mut self, direction: Direction, chunk: &[u8]) {
        let events = &mut self.events;
        let result = self.tap.feed(direction, chunk, &mut |e| events.push(e));
        if self.failed {
            assert!(result.is_err());
        }
        self.failed |= result.is_err();
        assert_eq!(self.tap.is_failed(), self.failed);
        let stats = self.tap.stats();
        assert!(stats.connections_held <= self.limits.max_connections);
        assert!(stats.error_bytes_held <= self.limits.max_connections * self.limits.max_error_text);
    }

    fn finish(&mut self) {
        let events = &mut self.events;
        self.tap.finish(&mut |e| events.push(e));
        let ends = self
            .events
            .iter()
            .filter(|e| matches!(e, PortForwardEvent::SessionEnded { .. }))
            .count();
        assert!(ends <= 1);
        if ends == 1 {
            assert!(matches!(
                self.events.last(),
                Some(PortForwardEvent::SessionEnded { .. })
            ));
        }
    }
}

/// At most this many steps: fewer connections than the default limit allows.
const MAX_STEPS: usize = 512;

/// Reads a kubectl session out of fuzz bytes.
fn script(bytes: &[u8]) -> PortForwardScript {
    let mut steps = Vec::new();
    let mut rest = bytes;
    while let Some((&op, tail)) = rest.split_first() {
        if steps.len() == MAX_STEPS {
            break;
        }
        let connection = usize::from(op >> 3 & 3);
        let len = usize::from(op >> 5).min(tail.len()) * 8;
        let len = len.min(tail.len());
        let (data, tail) = tail.split_at(len);
        rest = tail;
        steps.push(match op & 7 {
            0 => PortForwardStep::Connect {
                port: u16::from(op) + 1,
            },
            1 => PortForwardStep::ClientData {
                connection,
                bytes: data.to_vec(),
            },
            2 => PortForwardStep::ServerData {
                connection,
                bytes: data.to_vec(),
            },
            3 => PortForwardStep::ServerError {
                connection,
                message: String::from_utf8_lossy(&data[..data.len().min(40)]).into_owned(),
            },
            4 => PortForwardStep::ClientClose { connection },
            5 => PortForwardStep::ServerClose { connection },
            6 => PortForwardStep::ClientReset { connection },
            _ => PortForwardStep::Ping,
        });
    }
    PortForwardScript { steps }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[selector, chunk, seed], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let transport = if selector & 1 == 0 {
        PortForwardTransport::Spdy
    } else {
        PortForwardTransport::WebSocketTunnel
    };
    let limits = if selector & 4 != 0 {
        PortForwardLimits {
            max_connections: 3,
            max_header_block: 256,
            max_control_frame: 512,
            max_error_text: 16,
            max_request_id: 4,
            max_websocket_frame: 4096,
        }
    } else {
        PortForwardLimits::default()
    };
    let capture = selector & 8 != 0;
    let max_chunk = 1 + usize::from(chunk);
    let mut coin = Coin(u32::from(seed) | 0x100);
    let mut fed = Fed {
        tap: PortForwardTap::new(transport, limits).with_payload_capture(capture),
        limits,
        events: Vec::new(),
        failed: false,
    };

    if selector & 2 != 0 {
        let script = script(rest);
        let wire = match transport {
            PortForwardTransport::Spdy => script.encode_spdy(),
            _ => script.encode_tunnel(&TunnelOptions {
                server_message_size: 1 + usize::from(seed),
                server_fragment_size: Some(1 + usize::from(chunk / 2)),
                pings: seed & 1 != 0,
                mask_seed: u32::from(seed),
            }),
        };
        for segment in &wire.segments {
            for piece in segment.bytes.chunks(max_chunk) {
                fed.feed(segment.direction, piece);
            }
        }
        fed.finish();
        if selector & 4 == 0 {
            assert!(!fed.failed, "a kubectl session must not fail the tap");
            let expected = if capture {
                script.expected_events_with_payload()
            } else {
                script.expected_events()
            };
            assert_eq!(coalesce(fed.events), expected);
        }
    } else {
        for piece in rest.chunks(max_chunk) {
            let direction = if coin.flip() {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            fed.feed(direction, piece);
        }
        fed.finish();
    }
});
