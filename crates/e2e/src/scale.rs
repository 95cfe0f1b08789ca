//! Many recorded exec sessions at once, driven in-process by raw clients (one thread each, not one
//! kubectl each), for the scale test and `cargo xtask bench --scale-only`.
//!
//! Every session runs the same small shell script behind exec: it prints `ready`, waits for a line
//! on stdin (so an open session is idle without anyone sleeping), then prints a payload derived
//! from its index and the line, and exits 0. Most sessions use WebSocket (`v5.channel.k8s.io`,
//! kubectl's default); every fourth uses SPDY/3.1 (`v4.channel.k8s.io`). A session counts as open
//! once its `ready` has come through the proxy: then the command runs, its first output has been
//! recorded and nothing moves until the harness releases it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

use anyhow::{anyhow, bail, ensure, Context as _};
use sessiontap::wsframe::{encode_frame, FrameHeader, Opcode};
use sessiontap::{ChannelProtocol, ExitStatus, Protocol, SessionEvent, SessionTap, TapLimits};

use crate::cast::output_of;
use crate::raw::{RawClient, WEBSOCKET_UPGRADE};
use crate::raw_spdy::SpdySession;
use crate::stack::Stack;

/// Lines of payload each session prints once released (about 4 KiB).
pub const PAYLOAD_LINES: usize = 64;

/// What a session prints before it waits: a session is open and idle once this came through.
const READY: &[u8] = b"ready\n";

/// The script: `$1` is the session's index, `$2` the number of lines ([`PAYLOAD_LINES`]).
const SCRIPT: &str = "printf 'ready\\n'; read line; i=0; while [ $i -lt \"$2\" ]; do \
     printf 'session %05d line %02d %s abcdefghijklmnopqrstuvwxyz0123456789\\n' \"$1\" \"$i\" \"$line\"; \
     i=$((i+1)); done";

/// A thread's stack: the raw clients need little, and a thousand of them run at once.
const THREAD_STACK: usize = 256 * 1024;

/// The SPDY stream ids the client opens, in client-go's order (error first): the error stream.
const SPDY_ERROR: u32 = 1;
/// The stdin stream.
const SPDY_STDIN: u32 = 3;
/// The stdout stream.
const SPDY_STDOUT: u32 = 5;

/// How a session reaches the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket, `v5.channel.k8s.io`.
    WebSocket,
    /// SPDY/3.1, `v4.channel.k8s.io`.
    Spdy,
}

/// The transport of session `index`: every fourth over SPDY.
pub fn transport_of(index: usize) -> Transport {
    if index % 4 == 3 {
        Transport::Spdy
    } else {
        Transport::WebSocket
    }
}

/// The line session `index` is released with (it is part of its payload, so stdin reaching the
/// wrong process would show).
fn release_line(index: usize) -> String {
    format!("go-{index}\n")
}

/// Everything session `index` prints, `ready` included: what the client must receive and the
/// recording must hold, byte for byte.
pub fn expected_output(index: usize) -> Vec<u8> {
    let mut text = String::from_utf8_lossy(READY).into_owned();
    for line in 0..PAYLOAD_LINES {
        text.push_str(&format!(
            "session {index:05} line {line:02} go-{index} abcdefghijklmnopqrstuvwxyz0123456789\n"
        ));
    }
    text.into_bytes()
}

/// `value` percent-encoded for a query.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The exec path of pod `demo` running `sh -c SCRIPT` with `args`, with stdout and, when `stdin`
/// says so, stdin.
fn exec_path(script: &str, args: &[&str], stdin: bool) -> String {
    let mut path = format!(
        "/api/v1/namespaces/default/pods/demo/exec?command=sh&command=-c&command={}",
        encode(script)
    );
    for arg in args {
        path.push_str(&format!("&command={}", encode(arg)));
    }
    path.push_str("&container=main&stdout=true");
    if stdin {
        path.push_str("&stdin=true");
    }
    path
}

/// A WebSocket session as its client follows it: the client's own session tap reads the frames.
struct WebSocketSession {
    client: RawClient,
    tap: SessionTap,
    output: Vec<u8>,
    exit: Option<ExitStatus>,
    closed: bool,
}

impl WebSocketSession {
    /// Sends the upgrade for `path`; fails unless the answer is `101`.
    fn start(proxy_url: &str, path: &str) -> anyhow::Result<WebSocketSession> {
        let mut headers = vec![("Connection", "Upgrade")];
        headers.extend(WEBSOCKET_UPGRADE);
        let client = RawClient::upgraded(proxy_url, "GET", path, &headers)?;
        Ok(WebSocketSession {
            client,
            tap: SessionTap::new(
                Protocol::WebSocket(ChannelProtocol::V5),
                TapLimits::default(),
            ),
            output: Vec::new(),
            exit: None,
            closed: false,
        })
    }

    /// Reads once (first whatever came with the response head), handing each output slice to
    /// `on_output`; false at the end of the stream.
    fn read_more(&mut self, on_output: &mut dyn FnMut(&[u8])) -> anyhow::Result<bool> {
        let bytes = self.client.read_some().context("reading the session")?;
        if bytes.is_empty() {
            self.closed = true;
            let exit = &mut self.exit;
            self.tap.finish(&mut |event| {
                if let SessionEvent::Exit { status } = event {
                    *exit = Some(status.clone());
                }
            });
            return Ok(false);
        }
        self.observe(&bytes, on_output)?;
        Ok(true)
    }

    /// Shows server bytes to the client's tap: output goes to `on_output`, the exit status is kept.
    fn observe(&mut self, bytes: &[u8], on_output: &mut dyn FnMut(&[u8])) -> anyhow::Result<()> {
        let exit = &mut self.exit;
        self.tap
            .server_bytes(bytes, &mut |event| match event {
                SessionEvent::Output { bytes, .. } => on_output(bytes),
                SessionEvent::Exit { status } => *exit = Some(status.clone()),
                _ => {}
            })
            .map_err(|error| anyhow!("the client could not read the session: {error}"))
    }

    /// Reads until the output ends with `suffix`; false when the session ended first.
    fn read_until_output_ends_with(&mut self, suffix: &[u8]) -> anyhow::Result<bool> {
        while !self.output.ends_with(suffix) {
            if self.closed || self.exit.is_some() {
                return Ok(false);
            }
            let mut seen = Vec::new();
            self.read_more(&mut |bytes| seen.extend_from_slice(bytes))?;
            self.output.extend(seen);
        }
        Ok(true)
    }

    /// Sends `bytes` on stdin: one masked binary message on channel 0.
    fn stdin(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let mut payload = vec![0u8];
        payload.extend_from_slice(bytes);
        let mut frame = Vec::new();
        let header = FrameHeader {
            mask: Some([0x5a, 0x17, 0xc3, 0x08]),
            ..FrameHeader::new(Opcode::Binary, 0)
        };
        encode_frame(&header, &payload, &mut frame);
        self.client.send(&frame)
    }

    /// Reads until the exit status arrives or the proxy closes the connection.
    fn read_to_exit(&mut self, on_output: &mut dyn FnMut(&[u8])) -> anyhow::Result<()> {
        while self.exit.is_none() && !self.closed {
            self.read_more(on_output)?;
        }
        Ok(())
    }
}

/// The client of one session, by transport.
enum Client {
    WebSocket(WebSocketSession),
    Spdy(SpdySession),
}

/// A session that is open and waiting for its stdin line.
pub struct IdleSession {
    index: usize,
    client: Client,
}

/// What the client of a session received, once it ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The session's index.
    pub index: usize,
    /// Everything it received on stdout.
    pub output: Vec<u8>,
    /// Whether the command's exit status said success.
    pub success: bool,
}

impl IdleSession {
    /// Opens session `index` through the proxy at `proxy_url` and returns once its `ready` has
    /// come through.
    pub fn open(proxy_url: &str, index: usize) -> anyhow::Result<IdleSession> {
        let index_arg = index.to_string();
        let lines_arg = PAYLOAD_LINES.to_string();
        let path = exec_path(SCRIPT, &["sh", &index_arg, &lines_arg], true);
        let client = match transport_of(index) {
            Transport::WebSocket => {
                let mut session = WebSocketSession::start(proxy_url, &path)?;
                ensure!(
                    session.read_until_output_ends_with(READY)?,
                    "session {index} ended before it was ready: {:?}, exit {:?}",
                    String::from_utf8_lossy(&session.output),
                    session.exit
                );
                Client::WebSocket(session)
            }
            Transport::Spdy => {
                let mut session = SpdySession::start(proxy_url, &path)?;
                session.open(SPDY_ERROR, "error")?;
                session.open(SPDY_STDIN, "stdin")?;
                session.open(SPDY_STDOUT, "stdout")?;
                ensure!(
                    session.read_until(|s| s.received(SPDY_STDOUT).ends_with(READY))?,
                    "session {index} (SPDY) ended before it was ready: {:?}",
                    String::from_utf8_lossy(session.received(SPDY_STDOUT))
                );
                Client::Spdy(session)
            }
        };
        Ok(IdleSession { index, client })
    }

    /// Sends the session its line and reads until it has ended.
    pub fn release(self) -> anyhow::Result<Finished> {
        let index = self.index;
        let line = release_line(index);
        match self.client {
            Client::WebSocket(mut session) => {
                session.stdin(line.as_bytes())?;
                let mut output = std::mem::take(&mut session.output);
                session.read_to_exit(&mut |bytes| output.extend_from_slice(bytes))?;
                let success = session.exit == Some(ExitStatus::Success);
                session.client.close();
                Ok(Finished {
                    index,
                    output,
                    success,
                })
            }
            Client::Spdy(mut session) => {
                session.data(SPDY_STDIN, 0, line.as_bytes())?;
                session.read_to_end()?;
                // v4: the error stream carries a Status; `Success` for exit 0.
                let status = String::from_utf8_lossy(session.received(SPDY_ERROR)).into_owned();
                let success = status.is_empty() || status.contains("\"Success\"");
                let output = session.received(SPDY_STDOUT).to_vec();
                session.close();
                Ok(Finished {
                    index,
                    output,
                    success,
                })
            }
        }
    }
}

/// A counting semaphore for threads: how many sessions are being opened at once.
struct Gate {
    free: Mutex<usize>,
    changed: Condvar,
}

impl Gate {
    fn enter(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.changed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }

    fn leave(&self) {
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_one();
    }
}

/// The word every waiting session gets: go on (true) or close (false).
struct Release {
    word: Mutex<Option<bool>>,
    said: Condvar,
}

impl Release {
    fn say(&self, go: bool) {
        *self.word.lock().unwrap_or_else(|p| p.into_inner()) = Some(go);
        self.said.notify_all();
    }

    fn wait(&self) -> bool {
        let mut word = self.word.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(go) = *word {
                return go;
            }
            word = self.said.wait(word).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Opens the sessions `indices` through the proxy at `proxy_url`, at most `opening_at_once` of them
/// being opened at any time (so no client waits long for its turn). Once every one of them is open
/// and idle it calls `when_idle` (to measure), then releases them all and waits until every one
/// has ended; returns what `when_idle` returned and what each client received, in the order of
/// `indices`.
/// Fails when any session fails to open or to end; the others are then closed.
pub fn run_sessions<T>(
    proxy_url: &str,
    indices: &[usize],
    opening_at_once: usize,
    when_idle: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Vec<Finished>)> {
    let gate = Gate {
        free: Mutex::new(opening_at_once.max(1)),
        changed: Condvar::new(),
    };
    let release = Release {
        word: Mutex::new(None),
        said: Condvar::new(),
    };
    let count = indices.len();
    std::thread::scope(|scope| {
        let (opened_tx, opened_rx) = mpsc::channel::<anyhow::Result<()>>();
        let mut threads = Vec::with_capacity(count);
        for &index in indices {
            let opened = opened_tx.clone();
            let (gate, release) = (&gate, &release);
            let thread = std::thread::Builder::new()
                .name(format!("session-{index}"))
                .stack_size(THREAD_STACK)
                .spawn_scoped(scope, move || -> anyhow::Result<Option<Finished>> {
                    gate.enter();
                    let session = IdleSession::open(proxy_url, index)
                        .with_context(|| format!("opening session {index}"));
                    gate.leave();
                    let session = match session {
                        Ok(session) => {
                            let _ = opened.send(Ok(()));
                            session
                        }
                        Err(error) => {
                            let _ = opened.send(Err(anyhow!("{error:#}")));
                            return Err(error);
                        }
                    };
                    if !release.wait() {
                        return Ok(None);
                    }
                    session
                        .release()
                        .with_context(|| format!("session {index}"))
                        .map(Some)
                })
                .with_context(|| format!("starting the thread of session {index}"));
            match thread {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    release.say(false);
                    return Err(error);
                }
            }
        }
        drop(opened_tx);
        let mut first_error = None;
        for _ in 0..count {
            match opened_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    first_error.get_or_insert(error);
                }
                Err(_) => break,
            }
        }
        let measured = match first_error {
            Some(error) => Err(error),
            None => when_idle(),
        };
        release.say(measured.is_ok());
        let mut finished = Vec::with_capacity(count);
        let mut failures = Vec::new();
        for thread in threads {
            match thread.join() {
                Ok(Ok(Some(done))) => finished.push(done),
                Ok(Ok(None)) => {}
                Ok(Err(error)) => failures.push(format!("{error:#}")),
                Err(_) => failures.push("a session thread panicked".to_string()),
            }
        }
        let measured = measured?;
        if !failures.is_empty() {
            bail!(
                "{} of {count} sessions failed; the first: {}",
                failures.len(),
                failures[0]
            );
        }
        Ok((measured, finished))
    })
}

/// Checks what each client received: its own payload, byte for byte, and success.
pub fn check_clients(finished: &[Finished]) -> anyhow::Result<()> {
    for done in finished {
        ensure!(
            done.output == expected_output(done.index),
            "session {} received {} bytes that are not its payload: {:?}",
            done.index,
            done.output.len(),
            String::from_utf8_lossy(&done.output[..done.output.len().min(200)])
        );
        ensure!(done.success, "session {} did not exit 0", done.index);
    }
    Ok(())
}

/// Waits until the stack's recorder has finished at least `total` recordings, then checks that
/// the recordings of sessions `indices` are all there, each exactly once: complete, exit 0, and its
/// output (the `o` events of the cast) byte for byte the session's payload. Other recordings (of
/// other sessions) are left alone.
pub fn check_recordings(
    stack: &Stack,
    indices: std::ops::Range<usize>,
    total: usize,
) -> anyhow::Result<()> {
    let recordings = stack.finished_recordings(total)?;
    let mut wanted: HashMap<String, usize> = indices
        .clone()
        .map(|index| {
            (
                String::from_utf8_lossy(&expected_output(index)).into_owned(),
                index,
            )
        })
        .collect();
    for recording in &recordings {
        let id = recording["id"]
            .as_str()
            .ok_or_else(|| anyhow!("a recording without an id: {recording}"))?;
        let cast = stack.recording_cast(id)?;
        let output = output_of(&cast)?;
        let Some(index) = wanted.remove(&output) else {
            continue;
        };
        ensure!(
            recording["outcome"] == "complete" && recording["exitCode"] == 0,
            "the recording of session {index} is not complete with exit 0: {recording}"
        );
    }
    if !wanted.is_empty() {
        let mut missing: Vec<usize> = wanted.into_values().collect();
        missing.sort_unstable();
        bail!(
            "{} of {} sessions have no byte-exact recording (of {} recordings), e.g. session {}",
            missing.len(),
            indices.len(),
            recordings.len(),
            missing[0]
        );
    }
    Ok(())
}

/// Runs one WebSocket session whose command writes `bytes` bytes of `x` to stdout, reading all of
/// it; `received` counts the output bytes as they arrive (for a sampler in another thread).
/// Fails unless exactly `bytes` arrived and the command exited 0.
pub fn stream_session(proxy_url: &str, bytes: u64, received: &AtomicU64) -> anyhow::Result<()> {
    let script = format!("head -c {bytes} /dev/zero | tr '\\000' x");
    let path = exec_path(&script, &[], false);
    let mut session = WebSocketSession::start(proxy_url, &path)?;
    let mut wrong = 0u64;
    session.read_to_exit(&mut |output| {
        received.fetch_add(output.len() as u64, Ordering::Relaxed);
        wrong += output.iter().filter(|&&b| b != b'x').count() as u64;
    })?;
    let total = received.load(Ordering::Relaxed);
    ensure!(
        total == bytes && wrong == 0 && session.exit == Some(ExitStatus::Success),
        "the streaming session received {total} of {bytes} bytes ({wrong} not `x`), exit {:?}",
        session.exit
    );
    session.client.close();
    Ok(())
}

/// Raises this process's soft limit on open files to its hard limit, so that it, and the stack's
/// processes it starts afterwards (they inherit it), can hold thousands of connections. Returns
/// the soft limit now (`None`: unlimited).
pub fn raise_open_file_limit() -> anyhow::Result<Option<u64>> {
    tlsedge::raise_open_file_limit()
        .context("raising the soft limit on open files to the hard limit")
}

/// The soft limit on open files of process `pid`, from `/proc/PID/limits` (`None`: unlimited).
pub fn open_file_limit_of(pid: u32) -> anyhow::Result<Option<u64>> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .with_context(|| format!("reading the limits of process {pid}"))?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .ok_or_else(|| anyhow!("process {pid} has no open-file limit line"))?;
    // `Max open files  <soft>  <hard>  files`
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow!("unreadable limit line {line:?}"))?;
    if soft == "unlimited" {
        return Ok(None);
    }
    Ok(Some(soft.parse().with_context(|| {
        format!("unreadable limit line {line:?}")
    })?))
}
