//! A model of where the server of a SPDY exec session writes output, and a checker that drives a
//! `SessionTap` against it: the oracle of `tests/spdy_model.rs` (proptest) and of the
//! `spdy_routing` fuzz target (which includes this file and `crafted.rs` by path, so they depend on
//! nothing but `sessiontap`, `spdyframe` and each other).
//!
//! The model follows the sources, not the tap:
//! - moby/spdystream v0.5.0 reading client frames (`spdy/read.go` `parseHeaderValueBlock`: a
//!   header name that is not lowercase, or that repeats, fails the frame; `readSynStreamFrame`:
//!   `invalidReqHeaders` and stream 0 too; a failed frame or a GOAWAY ends `Connection.Serve`'s
//!   reading for good), creating streams (`validateStreamId`: an id below the next expected one is
//!   refused), and writing on a stream whatever the client did to it (`Stream.Write`, with
//!   `handleResetFrame` only forgetting the stream for reading);
//! - the kubelet's `waitForStreams` (`httpstream.go`): `Headers().Get("streamType")` is the first
//!   NUL-separated piece of the value; while waiting each stream with a known type takes its
//!   role, a later one replacing an earlier one in an order the frame workers decide (the
//!   scenario's `races` bits decide it here), until `expectedStreams` of them have been answered;
//!   a stream that reaches the loop before it notices can still be taken; after that none is.
//!   Output then goes to the stdout and stderr streams taken, the status to the error stream.
//!
//! [`super::crafted`] holds what a crafted client sends and reads scenarios out of raw bytes.
//!
//! The property checked: every byte the model's server sends on a stream it took as stdout or
//! stderr is reported by the tap as output of that stream, unless the tap has reported itself
//! unreadable; every other data byte from the server is reported as output, or is on the tap's
//! error stream, or the tap has reported itself unreadable. A tap that never saw an error stream
//! reports no exit status.

use sessiontap::{
    OutputStream, OwnedSessionEvent, Protocol, RemoteCommandVersion, SessionParams, SessionTap,
    TapLimits,
};
use spdyframe::{encode_control, encode_data, ControlFrame, HeaderBlock, HeaderDeflater, StreamId};

/// The streams the request implies (query parameters).
#[derive(Debug, Clone, Copy, Default)]
pub struct Implied {
    /// `stdin=true`.
    pub stdin: bool,
    /// `stdout=true`.
    pub stdout: bool,
    /// `stderr=true`.
    pub stderr: bool,
    /// `tty=true`.
    pub tty: bool,
}

/// One step of a session.
#[derive(Debug, Clone)]
pub enum Action {
    /// The client opens stream `id` with exactly these header pairs.
    Open {
        id: u32,
        headers: Vec<(String, String)>,
    },
    /// The client resets stream `id`.
    Reset { id: u32 },
    /// The client sends data on stream `id`.
    ClientData { id: u32, bytes: Vec<u8>, fin: bool },
    /// The client says GOAWAY.
    ClientGoAway,
    /// The container writes: the kubelet sends it on the stream it took for `stream`, if any.
    Output {
        stream: OutputStream,
        bytes: Vec<u8>,
    },
    /// The server sends data on stream `id`, whatever a kubelet would do.
    ServerData { id: u32, bytes: Vec<u8>, fin: bool },
    /// The server resets stream `id`.
    ServerReset { id: u32 },
    /// The kubelet writes the exit status on the error stream it took.
    Status,
}

/// A session to check.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    /// The request's streams.
    pub implied: Implied,
    /// What happens, in order.
    pub actions: Vec<Action>,
    /// The frame workers' races: bit `i` says whether the `i`-th contested stream is taken.
    pub races: u64,
    /// Where each action's frame is split when fed to the tap (index by action, modulo length).
    pub splits: Vec<u8>,
}

/// What a checked scenario did, for tests that want to know they were not vacuous.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Bytes the model's server sent as stdout/stderr output.
    pub delivered: usize,
    /// Bytes of those the tap reported before it failed, if it did.
    pub recorded: usize,
    /// The tap reported itself unreadable.
    pub tap_failed: bool,
}

/// `invalidReqHeaders` (spdystream `spdy/types.go`), lowercase.
const INVALID_REQUEST_HEADERS: [&str; 5] = [
    "connection",
    "host",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// The roles in the kubelet's switch, indexing [`Server::taken`].
const ROLES: [&str; 5] = ["error", "stdin", "stdout", "stderr", "resize"];

/// The server: spdystream reading the client, the kubelet taking streams.
struct Server {
    reading: bool,
    next_stream_id: u32,
    expected: usize,
    answered: usize,
    started: bool,
    output_begun: bool,
    taken: [Option<u32>; 5],
    races: u64,
}

impl Server {
    fn new(implied: Implied, races: u64) -> Self {
        let expected = 1 + [
            implied.stdin,
            implied.stdout,
            implied.stderr && !implied.tty,
            implied.tty,
        ]
        .into_iter()
        .filter(|&b| b)
        .count();
        Server {
            reading: true,
            next_stream_id: 1,
            expected,
            answered: 0,
            started: false,
            output_begun: false,
            taken: [None; 5],
            races,
        }
    }

    fn race(&mut self) -> bool {
        let won = self.races & 1 == 1;
        self.races = self.races.rotate_right(1);
        won
    }

    /// A SYN_STREAM; returns the id to answer with a SYN_REPLY, if the kubelet answers it.
    fn open(&mut self, id: u32, headers: &[(String, String)]) -> Option<u32> {
        if !self.reading {
            return None;
        }
        let mut names: Vec<String> = Vec::new();
        for (name, _) in headers {
            let lower = name.to_lowercase();
            if lower != *name
                || names.contains(&lower)
                || INVALID_REQUEST_HEADERS.contains(&lower.as_str())
            {
                self.reading = false;
                return None;
            }
            names.push(lower);
        }
        if id == 0 {
            self.reading = false;
            return None;
        }
        if id < self.next_stream_id {
            return None;
        }
        self.next_stream_id = id.saturating_add(2);
        let stream_type = headers
            .iter()
            .find(|(name, _)| name == "streamtype")
            .map(|(_, value)| value.split('\0').next().unwrap_or_default())
            .unwrap_or_default();
        let role = ROLES.iter().position(|&r| r == stream_type);
        if self.started {
            // Taken only if it reached the loop before the loop noticed it was done.
            if let Some(role) = role {
                if !self.output_begun && self.race() {
                    self.taken[role] = Some(id);
                }
            }
            return None;
        }
        if let Some(role) = role {
            if self.taken[role].is_none() || self.race() {
                self.taken[role] = Some(id);
            }
            self.answered += 1;
            self.started = self.answered >= self.expected;
        }
        Some(id)
    }

    /// The stream the kubelet writes `stream` to, once the session runs.
    fn output(&mut self, stream: OutputStream) -> Option<u32> {
        if !self.started {
            return None;
        }
        self.output_begun = true;
        match stream {
            OutputStream::Stdout => self.taken[2],
            OutputStream::Stderr => self.taken[3],
        }
    }

    /// What the client reads data on `id` as: output of a stream the kubelet writes.
    fn delivers(&self, id: u32) -> Option<OutputStream> {
        if !self.started {
            return None;
        }
        if self.taken[2] == Some(id) {
            Some(OutputStream::Stdout)
        } else if self.taken[3] == Some(id) {
            Some(OutputStream::Stderr)
        } else {
            None
        }
    }
}

/// The tap under test, fed frame by frame.
struct Tapped {
    tap: SessionTap,
    failed: bool,
}

impl Tapped {
    fn feed(&mut self, from_client: bool, frame: &[u8], split: u8) -> Vec<OwnedSessionEvent> {
        let mut events = Vec::new();
        let at = usize::from(split) % (frame.len() + 1);
        for piece in [&frame[..at], &frame[at..]] {
            let mut sink = |e: sessiontap::SessionEvent<'_>| events.push(e.to_owned_event());
            let result = if from_client {
                self.tap.client_bytes(piece, &mut sink)
            } else {
                self.tap.server_bytes(piece, &mut sink)
            };
            self.failed |= result.is_err();
        }
        events
    }
}

fn stream_id(id: u32) -> StreamId {
    StreamId::from_masked(id)
}

fn data_frame(id: u32, bytes: &[u8], fin: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let flags = if fin { spdyframe::FLAG_FIN } else { 0 };
    // Payloads here are far below the 2^24 frame limit.
    let _ = encode_data(stream_id(id), flags, bytes, &mut out);
    out
}

fn control_frame(frame: &ControlFrame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_control(frame, &mut out);
    out
}

fn block(deflater: &mut HeaderDeflater, pairs: &[(String, String)]) -> Vec<u8> {
    let headers: HeaderBlock = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut out = Vec::new();
    // Deflating into a Vec does not fail.
    let _ = deflater.deflate(&headers, &mut out);
    out
}

const V4: Protocol = Protocol::Spdy {
    version: RemoteCommandVersion::V4,
};

/// Runs `scenario` through a fresh tap and the model, panicking where the property fails.
pub fn check(scenario: &Scenario) -> Report {
    run(scenario, SessionTap::new(V4, TapLimits::default()))
}

/// [`check`] with a tap that knows the request's parameters, as the proxy makes it: it stops
/// reading the client's header blocks once the streams the kubelet waits for are open.
pub fn check_with_params(scenario: &Scenario) -> Report {
    let implied = scenario.implied;
    let params = SessionParams {
        stdin: implied.stdin,
        stdout: implied.stdout,
        stderr: implied.stderr,
        tty: implied.tty,
        ..SessionParams::default()
    };
    run(
        scenario,
        SessionTap::with_params(V4, &params, TapLimits::default()),
    )
}

fn run(scenario: &Scenario, tap: SessionTap) -> Report {
    let mut server = Server::new(scenario.implied, scenario.races);
    let mut tapped = Tapped { tap, failed: false };
    let (mut client_deflater, mut server_deflater) = (HeaderDeflater::new(), HeaderDeflater::new());
    let mut report = Report::default();
    for (index, action) in scenario.actions.iter().enumerate() {
        let split = scenario
            .splits
            .get(index % scenario.splits.len().max(1))
            .copied()
            .unwrap_or(0);
        // The server frame this action makes, and what the client reads it as.
        let mut server_frame: Option<(u32, Vec<u8>, bool)> = None;
        match action {
            Action::Open { id, headers } => {
                let compressed = block(&mut client_deflater, headers);
                let frame = control_frame(&ControlFrame::SynStream {
                    stream_id: stream_id(*id),
                    associated_stream_id: StreamId::ZERO,
                    priority: 0,
                    slot: 0,
                    flags: 0,
                    header_block: &compressed,
                });
                tapped.feed(true, &frame, split);
                if let Some(answered) = server.open(*id, headers) {
                    let compressed = block(&mut server_deflater, &[]);
                    let reply = control_frame(&ControlFrame::SynReply {
                        stream_id: stream_id(answered),
                        flags: 0,
                        header_block: &compressed,
                    });
                    tapped.feed(false, &reply, split);
                }
            }
            Action::Reset { id } => {
                let frame = control_frame(&ControlFrame::RstStream {
                    stream_id: stream_id(*id),
                    status: 5,
                    flags: 0,
                });
                tapped.feed(true, &frame, split);
            }
            Action::ClientData { id, bytes, fin } => {
                tapped.feed(true, &data_frame(*id, bytes, *fin), split);
            }
            Action::ClientGoAway => {
                let frame = control_frame(&ControlFrame::GoAway {
                    last_good_stream_id: StreamId::ZERO,
                    status: 0,
                    flags: 0,
                });
                tapped.feed(true, &frame, split);
                // spdystream's Serve stops reading at a GOAWAY.
                server.reading = false;
            }
            Action::Output { stream, bytes } => {
                if let Some(id) = server.output(*stream) {
                    server_frame = Some((id, bytes.clone(), false));
                }
            }
            Action::ServerData { id, bytes, fin } => {
                server_frame = Some((*id, bytes.clone(), *fin));
            }
            Action::ServerReset { id } => {
                let frame = control_frame(&ControlFrame::RstStream {
                    stream_id: stream_id(*id),
                    status: 5,
                    flags: 0,
                });
                tapped.feed(false, &frame, split);
            }
            Action::Status => {
                if let (true, Some(id)) = (server.started, server.taken[0]) {
                    let status = br#"{"metadata":{},"status":"Success"}"#.to_vec();
                    server_frame = Some((id, status, false));
                }
            }
        }
        let Some((id, bytes, fin)) = server_frame else {
            continue;
        };
        let delivered = server.delivers(id);
        let failed_before = tapped.failed;
        let events = tapped.feed(false, &data_frame(id, &bytes, fin), split);
        let mut roles = Vec::new();
        let mut recorded = Vec::new();
        for event in &events {
            if let OwnedSessionEvent::Output { stream, bytes } = event {
                roles.push(*stream);
                recorded.extend_from_slice(bytes);
            }
        }
        if delivered.is_some() {
            report.delivered += bytes.len();
            report.recorded += recorded.len();
        }
        if failed_before || tapped.failed || bytes.is_empty() {
            continue;
        }
        let on_error_stream = tapped.tap.spdy_error_stream() == Some(stream_id(id));
        match delivered {
            Some(role) => assert!(
                recorded == bytes && roles.iter().all(|&r| r == role),
                "{role:?} output on stream {id} was recorded as {roles:?} {recorded:?}, not \
                 {bytes:?}, and the tap did not fail; scenario {scenario:?}"
            ),
            None => assert!(
                recorded == bytes || (recorded.is_empty() && on_error_stream),
                "server data on stream {id} was neither recorded ({recorded:?} of {bytes:?}) nor \
                 the tap's error stream, and the tap did not fail; scenario {scenario:?}"
            ),
        }
    }
    let error_stream_seen = tapped.tap.spdy_error_stream().is_some();
    let mut exits = 0;
    tapped.tap.finish(&mut |event| {
        if matches!(event, sessiontap::SessionEvent::Exit { .. }) {
            exits += 1;
        }
    });
    if !error_stream_seen || tapped.failed {
        assert_eq!(
            exits, 0,
            "finish reported an exit without an error stream or after a failure; scenario \
             {scenario:?}"
        );
    }
    report.tap_failed = tapped.failed;
    report
}
