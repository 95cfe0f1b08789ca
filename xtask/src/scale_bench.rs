//! The scale benchmark of `cargo xtask bench` (issue 13, goal 5): 1,000 recorded exec sessions at
//! once through the proxy (release builds, fail closed), every one idle until all are open, then
//! released; every client and every recording must hold that session's own payload byte for byte.
//! Measures the proxy's resident memory per idle session (the growth of its `VmRSS` from before
//! the sessions to all of them open and idle; goal at most 64 KiB) and samples it while one
//! recorded session streams 1 GiB (goal: flat).
//!
//! The sessions are driven in-process by raw clients (`e2e::scale`: WebSocket, every fourth one
//! SPDY), one thread each; a thousand kubectl processes would measure kubectl.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context as _};
use e2e::scale::{
    check_clients, check_recordings, open_file_limit_of, raise_open_file_limit, run_sessions,
    stream_session, transport_of, Transport,
};
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};

use crate::tools::use_release_binaries;

/// Recorded sessions open at once.
const SESSIONS: usize = 1000;

/// Sessions run (and ended) first, so that what the proxy allocates once (thread pools, the
/// allocator's arenas, TLS and HTTP state) is not counted against the measured sessions.
const WARM_UP: usize = 32;

/// Sessions being opened at any one time, so that no client waits long for its turn.
const OPENING_AT_ONCE: usize = 64;

/// The goal: resident memory per idle recorded session.
const MAX_KIB_PER_IDLE_SESSION: f64 = 64.0;

/// Bytes streamed through one recorded session.
const STREAM_BYTES: u64 = 1 << 30;

/// Memory is compared from this point of the stream on: buffers have reached their working size.
const STREAM_WARM_UP_BYTES: u64 = 64 << 20;

/// How far the proxy's memory may grow over the rest of the stream: it must stay flat.
const MAX_STREAM_GROWTH_KIB: u64 = 16 * 1024;

/// How often the proxy's memory is sampled while it streams.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Open files each session may take in a process of the stack, with room to spare: the proxy holds
/// three sockets per session (client, upstream, recorder), the stand-in a socket and the pipes of
/// the process behind exec, the recorder a socket and the recording's file.
const FILES_PER_SESSION: u64 = 6;

/// Runs the benchmark and prints the table for `docs/performance.md`.
pub(crate) fn scale_bench() -> anyhow::Result<()> {
    use_release_binaries()?;
    // Before the stack starts: its processes inherit the limit.
    let own_limit = raise_open_file_limit()?;
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    // The log level a deployment has: the tests' debug lines are not what is measured.
    options.proxy_log = "info".into();
    let stack = Stack::start(options)?;
    check_open_file_limits(&stack, own_limit)?;
    let proxy = stack
        .proxy
        .pid()
        .ok_or_else(|| anyhow!("the proxy has no pid"))?;

    // Warm-up: the same sessions, fewer, ended before anything is measured.
    let warm_up: Vec<usize> = (SESSIONS..SESSIONS + WARM_UP).collect();
    let ((), warm) = run_sessions(&stack.proxy_url, &warm_up, OPENING_AT_ONCE, || Ok(()))?;
    check_clients(&warm)?;

    let idle = open_idle_sessions(&stack.proxy_url, proxy)?;
    let after_kib = vm_kib(proxy, "VmRSS")?;
    let checking = Instant::now();
    check_recordings(&stack, 0..SESSIONS, SESSIONS + WARM_UP).context("the recordings")?;
    let checked_in = checking.elapsed();
    let per_session_kib = idle.all_kib.saturating_sub(idle.before_kib) as f64 / SESSIONS as f64;

    let stream = stream_and_sample(&stack, proxy)?;
    let streamed = stack
        .finished_recordings(SESSIONS + WARM_UP + 1)?
        .into_iter()
        .find(|recording| recording["bytes"].as_u64().unwrap_or(0) > STREAM_BYTES)
        .ok_or_else(|| anyhow!("no recording of the 1 GiB session"))?;
    ensure!(
        streamed["outcome"] == "complete" && streamed["exitCode"] == 0,
        "the 1 GiB session's recording is not complete with exit 0: {streamed}"
    );

    let (websocket, spdy) = (idle.websocket, idle.spdy);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let growth = |from: u64, to: u64, count: usize| to.saturating_sub(from) as f64 / count as f64;
    println!("\n| {SESSIONS} recorded exec sessions at once (fail closed; {websocket} WebSocket, {spdy} SPDY) | measured | goal |");
    println!("|---|---|---|");
    println!(
        "| all open and idle (each printed `ready` through the proxy) | {:.1} s | - |",
        idle.opened_in.as_secs_f64()
    );
    println!(
        "| released (about 4 KiB each), all ended | {:.1} s | - |",
        idle.ended_in.as_secs_f64()
    );
    println!(
        "| clients and recordings byte-exact, recordings complete | {SESSIONS} of {SESSIONS} (checked in {:.1} s) | all |",
        checked_in.as_secs_f64()
    );
    println!(
        "| proxy RSS: before, {websocket} WebSocket idle, all {SESSIONS} idle, all ended | {:.1} / {:.1} / {:.1} / {:.1} MiB | - |",
        mib(idle.before_kib),
        mib(idle.websocket_kib),
        mib(idle.all_kib),
        mib(after_kib)
    );
    println!(
        "| proxy RSS per idle recorded session: WebSocket / SPDY | {:.1} / {:.1} KiB | - |",
        growth(idle.before_kib, idle.websocket_kib, websocket),
        growth(idle.websocket_kib, idle.all_kib, spdy)
    );
    println!(
        "| proxy RSS per idle recorded session, all {SESSIONS} | {per_session_kib:.1} KiB | <= {MAX_KIB_PER_IDLE_SESSION:.0} KiB |"
    );
    println!(
        "| 1 GiB through one recorded session (WebSocket) | {:.1} s, {:.0} MiB/s | - |",
        stream.seconds,
        STREAM_BYTES as f64 / (1024.0 * 1024.0) / stream.seconds
    );
    println!(
        "| proxy RSS while streaming, after the first 64 MiB: start / min / max ({} samples) | {:.1} / {:.1} / {:.1} MiB | max <= start + {} MiB |",
        stream.samples,
        mib(stream.start_kib),
        mib(stream.min_kib),
        mib(stream.max_kib),
        MAX_STREAM_GROWTH_KIB / 1024
    );

    ensure!(
        per_session_kib <= MAX_KIB_PER_IDLE_SESSION,
        "the proxy's memory grew by {per_session_kib:.1} KiB per idle recorded session (goal: at most {MAX_KIB_PER_IDLE_SESSION} KiB)"
    );
    ensure!(
        stream.max_kib <= stream.start_kib + MAX_STREAM_GROWTH_KIB,
        "the proxy's memory grew from {} KiB to {} KiB while streaming (at most {MAX_STREAM_GROWTH_KIB} KiB allowed)",
        stream.start_kib,
        stream.max_kib
    );
    Ok(())
}

/// The proxy's memory with the measured sessions idle.
struct Idle {
    /// Sessions over each transport.
    websocket: usize,
    spdy: usize,
    /// `VmRSS` before the sessions, with the WebSocket ones idle, with all of them idle.
    before_kib: u64,
    websocket_kib: u64,
    all_kib: u64,
    /// From the first session opening until all were idle.
    opened_in: Duration,
    /// From releasing them until all had ended.
    ended_in: Duration,
}

/// Opens the [`SESSIONS`] measured sessions, the WebSocket ones first (kubectl's default), then
/// the SPDY ones, reading the proxy's memory before, with the first group idle and with all idle;
/// then releases them and checks what every client received.
fn open_idle_sessions(proxy_url: &str, proxy: u32) -> anyhow::Result<Idle> {
    let (websocket, spdy): (Vec<usize>, Vec<usize>) =
        (0..SESSIONS).partition(|&index| transport_of(index) == Transport::WebSocket);
    let before_kib = vm_kib(proxy, "VmRSS")?;
    let started = Instant::now();
    // The SPDY sessions open (and, released, end) while the WebSocket ones wait.
    let ((websocket_kib, all_kib, opened_in, released, spdy_finished), websocket_finished) =
        run_sessions(proxy_url, &websocket, OPENING_AT_ONCE, || {
            let websocket_kib = vm_kib(proxy, "VmRSS")?;
            let ((all_kib, opened_in, released), spdy_finished) =
                run_sessions(proxy_url, &spdy, OPENING_AT_ONCE, || {
                    Ok((vm_kib(proxy, "VmRSS")?, started.elapsed(), Instant::now()))
                })?;
            Ok((websocket_kib, all_kib, opened_in, released, spdy_finished))
        })?;
    let ended_in = released.elapsed();
    let finished: Vec<_> = websocket_finished
        .into_iter()
        .chain(spdy_finished)
        .collect();
    ensure!(
        finished.len() == SESSIONS,
        "{} of {SESSIONS} sessions ended",
        finished.len()
    );
    check_clients(&finished).context("what the clients received")?;
    Ok(Idle {
        websocket: websocket.len(),
        spdy: spdy.len(),
        before_kib,
        websocket_kib,
        all_kib,
        opened_in,
        ended_in,
    })
}

/// Fails unless this process and each of the stack's processes may open enough files for
/// [`SESSIONS`] sessions.
fn check_open_file_limits(stack: &Stack, own: Option<u64>) -> anyhow::Result<()> {
    let needed = SESSIONS as u64 * FILES_PER_SESSION + 256;
    let mut processes = vec![
        ("this benchmark", Some(std::process::id())),
        ("kube-auth-proxy", stack.proxy.pid()),
        ("testkit-apiserver", stack.apiserver.pid()),
    ];
    if let Some(recorder) = &stack.recorder {
        processes.push(("kube-recorder", recorder.pid()));
    }
    for (name, pid) in processes {
        let pid = pid.ok_or_else(|| anyhow!("{name} has no pid"))?;
        let limit = open_file_limit_of(pid)?;
        ensure!(
            limit.is_none_or(|limit| limit >= needed),
            "{name} may open only {limit:?} files, {needed} are needed for {SESSIONS} sessions \
             (this process's soft limit after raising it to the hard limit: {own:?}); raise the \
             hard limit (`ulimit -Hn`) and retry"
        );
    }
    Ok(())
}

/// The proxy's memory while one recorded session streams [`STREAM_BYTES`].
struct Streamed {
    seconds: f64,
    samples: usize,
    /// The first sample after [`STREAM_WARM_UP_BYTES`].
    start_kib: u64,
    min_kib: u64,
    max_kib: u64,
}

/// Streams [`STREAM_BYTES`] through one recorded session while another thread samples the proxy's
/// `VmRSS` every [`SAMPLE_EVERY`].
fn stream_and_sample(stack: &Stack, proxy: u32) -> anyhow::Result<Streamed> {
    let received = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let (streamed, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let at = received.load(Ordering::Relaxed);
                if let Ok(kib) = vm_kib(proxy, "VmRSS") {
                    samples.push((at, kib));
                }
                // A sampling period, not a wait for anything.
                std::thread::sleep(SAMPLE_EVERY);
            }
            samples
        });
        let streamed = stream_session(&stack.proxy_url, STREAM_BYTES, &received);
        done.store(true, Ordering::Relaxed);
        let samples = sampler.join().unwrap_or_default();
        (streamed, samples)
    });
    streamed.context("streaming 1 GiB through a recorded session")?;
    let seconds = started.elapsed().as_secs_f64();
    let measured: Vec<u64> = samples
        .iter()
        .filter(|(at, _)| *at >= STREAM_WARM_UP_BYTES)
        .map(|(_, kib)| *kib)
        .collect();
    let start_kib = *measured
        .first()
        .ok_or_else(|| anyhow!("no memory sample after the first 64 MiB"))?;
    Ok(Streamed {
        seconds,
        samples: measured.len(),
        start_kib,
        min_kib: measured.iter().copied().min().unwrap_or(start_kib),
        max_kib: measured.iter().copied().max().unwrap_or(start_kib),
    })
}

/// A `Vm*` line of `/proc/PID/status` (`VmRSS`: resident memory now), in KiB.
fn vm_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}
