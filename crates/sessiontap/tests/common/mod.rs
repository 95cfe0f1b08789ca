//! Helpers shared by the integration tests: feeding a tap and comparing what it reported.

#![allow(dead_code, unreachable_pub)]

pub mod crafted;
pub mod server_model;
pub mod spdy_frames;

use sessiontap::script::EncodedSession;
use sessiontap::{
    coalesce, Direction, OwnedSessionEvent, Protocol, SessionParams, SessionTap, TapError,
    TapLimits,
};

/// What a tap reported, owned.
#[derive(Debug, Default)]
pub struct Reported {
    pub events: Vec<OwnedSessionEvent>,
}

impl Reported {
    /// The coalesced events of one direction.
    pub fn direction(&self, direction: Direction) -> Vec<OwnedSessionEvent> {
        only(direction, &self.events)
    }

    pub fn exits(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, OwnedSessionEvent::Exit { .. }))
            .count()
    }
}

/// The coalesced events of one direction.
pub fn only(direction: Direction, events: &[OwnedSessionEvent]) -> Vec<OwnedSessionEvent> {
    coalesce(
        events
            .iter()
            .filter(|e| e.direction() == direction)
            .cloned(),
    )
}

/// A tap with default limits and a place for its events.
pub struct Harness {
    pub tap: SessionTap,
    pub reported: Reported,
}

impl Harness {
    pub fn new(protocol: Protocol) -> Self {
        Self::with_limits(protocol, TapLimits::default())
    }

    pub fn with_limits(protocol: Protocol, limits: TapLimits) -> Self {
        Harness {
            tap: SessionTap::new(protocol, limits),
            reported: Reported::default(),
        }
    }

    /// A tap that knows the session's parameters, as the proxy makes it (over SPDY it stops
    /// reading the client's header blocks once the server has its streams).
    pub fn with_params(protocol: Protocol, params: &SessionParams) -> Self {
        Harness {
            tap: SessionTap::with_params(protocol, params, TapLimits::default()),
            reported: Reported::default(),
        }
    }

    pub fn client(&mut self, chunk: &[u8]) -> Result<(), TapError> {
        let events = &mut self.reported.events;
        self.tap
            .client_bytes(chunk, &mut |e| events.push(e.to_owned_event()))
    }

    pub fn server(&mut self, chunk: &[u8]) -> Result<(), TapError> {
        let events = &mut self.reported.events;
        self.tap
            .server_bytes(chunk, &mut |e| events.push(e.to_owned_event()))
    }

    pub fn finish(&mut self) {
        let events = &mut self.reported.events;
        self.tap.finish(&mut |e| events.push(e.to_owned_event()));
    }
}

/// A deterministic pseudo-random sequence (xorshift64*), for split points and payloads.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `1..=max`.
    pub fn len(&mut self, max: usize) -> usize {
        1 + (self.next() % max.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Splits `bytes` into chunks of 1 to `max_chunk` bytes.
pub fn split<'a>(bytes: &'a [u8], max_chunk: usize, rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rng.len(max_chunk).min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// Feeds an encoded session to a fresh tap (made with the session's parameters when `params`
/// is given): the client's setup bytes first, then both directions' chunks interleaved at
/// random, then `finish`.
pub fn feed_session(
    protocol: Protocol,
    params: Option<&SessionParams>,
    wire: &EncodedSession,
    max_chunk: usize,
    seed: u64,
) -> Result<Harness, TapError> {
    let mut rng = Rng::new(seed);
    let mut harness = match params {
        Some(params) => Harness::with_params(protocol, params),
        None => Harness::new(protocol),
    };
    let (setup, client_rest) = wire.client_to_server.split_at(wire.client_setup_len);
    for chunk in split(setup, max_chunk, &mut rng) {
        harness.client(chunk)?;
    }
    let client = split(client_rest, max_chunk, &mut rng);
    let server = split(&wire.server_to_client, max_chunk, &mut rng);
    let (mut c, mut s) = (client.into_iter().peekable(), server.into_iter().peekable());
    loop {
        let take_client = match (c.peek(), s.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(_), Some(_)) => rng.next() % 2 == 0,
        };
        if take_client {
            if let Some(chunk) = c.next() {
                harness.client(chunk)?;
            }
        } else if let Some(chunk) = s.next() {
            harness.server(chunk)?;
        }
    }
    harness.finish();
    Ok(harness)
}
