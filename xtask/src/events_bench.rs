//! The API request events benchmark of `cargo xtask bench`: the rate of `GET` on one pod through
//! the proxy with the caller's API events off, then on (`enableEvents` with the stack's
//! `kube-recorder`, fail closed), in one run, with release builds and `testkit-load` as the
//! client. Reports rates, latencies, the ratio, the CPU time the proxy and the recorder spend per
//! request and the proxy's peak memory, and checks that the recorder stored one event per
//! request.

use std::path::Path;

use anyhow::{anyhow, ensure, Context as _};
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};

use crate::load_client::Load;
use crate::proc_stats::{cpu_seconds, mebibytes, peak_rss_kib};
use crate::tools::use_release_binaries;

/// The request measured: one small object, so that the proxy's own cost per request dominates.
const PATH: &str = "/api/v1/namespaces/default/pods/demo";
/// Keep-alive connections by default, one request in flight on each (`--event-connections`).
pub(crate) const DEFAULT_CONNECTIONS: u64 = 16;
/// Sent but not measured: TLS handshakes, the recorder's HEAD probe, warm caches.
const WARMUP: &str = "1s";
/// Measured.
const DURATION: &str = "10s";

/// One run of the load against one stack.
struct Measured {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Every request sent, warm-up and cut-off ones included.
    sent: u64,
    /// CPU time of the proxy during the run, in seconds.
    proxy_cpu_seconds: Option<f64>,
    /// CPU time of the recorder during the run, in seconds.
    recorder_cpu_seconds: Option<f64>,
    proxy_peak_kib: Option<u64>,
}

/// How much the events benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventsOptions {
    /// Rounds of events off and on.
    pub(crate) rounds: u64,
    /// Keep-alive connections of the load: more of them, bigger batches per sync.
    pub(crate) connections: u64,
}

/// Runs the load against a stack without events and one with events, `rounds` times each,
/// alternating which goes first, and prints the table for `docs/performance.md` (medians).
pub(crate) fn events_bench(options: EventsOptions) -> anyhow::Result<()> {
    let EventsOptions {
        rounds,
        connections,
    } = options;
    let release = use_release_binaries()?;
    let load = release.join("testkit-load");

    let whois = admin_caller()?;

    // What a deployment logs (the tests' per-request debug lines would be measured too).
    let mut plain_options = StackOptions::for_caller(whois.clone());
    plain_options.proxy_log = "info".into();
    let plain = Stack::start(plain_options)?;

    let mut events_options = StackOptions::for_caller(whois);
    events_options.proxy_log = "info".into();
    events_options.recording = Some(RecordingGrant {
        events: true,
        ..RecordingGrant::ENFORCED
    });
    let with_events = Stack::start(events_options)?;

    // Both stacks are up for the whole run and take turns, so that drift in the machine's
    // speed during the run hits both alike; the idle one costs nothing.
    let mut off = Vec::new();
    let mut on = Vec::new();
    for round in 0..rounds {
        let run_off = |off: &mut Vec<Measured>| -> anyhow::Result<()> {
            off.push(measure("events off", &load, &plain, connections)?);
            Ok(())
        };
        let run_on = |on: &mut Vec<Measured>| -> anyhow::Result<()> {
            on.push(measure(ON_LABEL, &load, &with_events, connections)?);
            Ok(())
        };
        if round % 2 == 0 {
            run_off(&mut off)?;
            run_on(&mut on)?;
        } else {
            run_on(&mut on)?;
            run_off(&mut off)?;
        }
    }
    let sent: u64 = on.iter().map(|m| m.sent).sum();
    let stored = stored_request_events(&with_events)?;
    // Every request sent its event before going upstream; the requests cut off at the end of
    // each window (at most one per connection) may or may not have reached the proxy.
    ensure!(
        stored <= sent && stored + connections * rounds >= sent,
        "the recorder stored {stored} request events for {sent} requests sent\n{}",
        logs(&with_events)
    );
    println!(
        "recorder: {stored} request events stored for {sent} requests sent (warm-up included)"
    );
    for line in with_events.metrics()?.lines() {
        if line.starts_with("k8s_auth_proxy_api_request_event_recording") {
            println!("proxy metric: {line}");
        }
    }
    let ratios: Vec<String> = off
        .iter()
        .zip(&on)
        .map(|(off, on)| format!("{:.2}", on.rate / off.rate))
        .collect();
    println!("events on / off, round by round: {}", ratios.join(", "));

    let results = [Summary::of("events off", &off), Summary::of(ON_LABEL, &on)];
    let base = results[0].rate;
    println!(
        "\n| API requests (GET pod, {connections} connections, medians of {rounds}) | requests/s | p50 | p99 | vs events off | CPU per request: proxy | recorder | proxy peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let micros = |value: Option<f64>| value.map_or_else(|| "-".into(), |us| format!("{us:.0} µs"));
    for result in &results {
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.2}x | {} | {} | {} |",
            result.label,
            result.rate,
            result.p50_ms,
            result.p99_ms,
            result.rate / base,
            micros(result.proxy_cpu_us),
            micros(result.recorder_cpu_us),
            mebibytes(result.proxy_peak_kib)
        );
    }
    Ok(())
}

const ON_LABEL: &str = "events on (fail closed, kube-recorder on the same machine)";

/// The rounds of one stack: medians of rates and latencies, CPU over all rounds.
struct Summary {
    label: &'static str,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    proxy_cpu_us: Option<f64>,
    recorder_cpu_us: Option<f64>,
    proxy_peak_kib: Option<u64>,
}

impl Summary {
    fn of(label: &'static str, rounds: &[Measured]) -> Summary {
        let median = |value: fn(&Measured) -> f64| {
            crate::compare_report::median(rounds.iter().map(value)).unwrap_or(f64::NAN)
        };
        let sent: u64 = rounds.iter().map(|m| m.sent).sum();
        let per_request = |used: fn(&Measured) -> Option<f64>| {
            let total: Option<f64> = rounds.iter().map(used).sum();
            total.filter(|_| sent > 0).map(|t| t / sent as f64 * 1e6)
        };
        Summary {
            label,
            rate: median(|m| m.rate),
            p50_ms: median(|m| m.p50_ms),
            p99_ms: median(|m| m.p99_ms),
            proxy_cpu_us: per_request(|m| m.proxy_cpu_seconds),
            recorder_cpu_us: per_request(|m| m.recorder_cpu_seconds),
            proxy_peak_kib: rounds.iter().filter_map(|m| m.proxy_peak_kib).max(),
        }
    }
}

/// Runs `testkit-load` against the stack's proxy.
fn measure(
    label: &'static str,
    load: &Path,
    stack: &Stack,
    connections: u64,
) -> anyhow::Result<Measured> {
    let proxy_pid = stack.proxy.pid();
    let recorder_pid = stack.recorder.as_ref().and_then(|recorder| recorder.pid());
    let cpu_before = (
        proxy_pid.and_then(cpu_seconds),
        recorder_pid.and_then(cpu_seconds),
    );
    let result = Load {
        binary: load,
        url: format!("{}{PATH}", stack.proxy_url),
        connections,
        warmup: WARMUP,
        duration: DURATION,
        headers: Vec::new(),
    }
    .run(label)
    .map_err(|error| anyhow!("{error:#}\n{}", logs(stack)))?;
    let used = |pid: Option<u32>, before: Option<f64>| Some(pid.and_then(cpu_seconds)? - before?);
    Ok(Measured {
        rate: result.rate,
        p50_ms: result.p50_ms,
        p99_ms: result.p99_ms,
        sent: result.sent,
        proxy_cpu_seconds: used(proxy_pid, cpu_before.0),
        recorder_cpu_seconds: used(recorder_pid, cpu_before.1),
        proxy_peak_kib: proxy_pid.and_then(peak_rss_kib),
    })
}

/// API request events in the recorder's event log (`events/*.jsonl`, one event per line),
/// counted from the files: asking `/api/events` for all of them would return every event's JSON.
fn stored_request_events(stack: &Stack) -> anyhow::Result<u64> {
    let dir = stack.dir.join("recordings/events");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
            count += text
                .lines()
                .filter(|line| line.contains("\"kubernetes-api-request\""))
                .count() as u64;
        }
    }
    Ok(count)
}

/// The stack's logs and the recorder's, for failure messages.
fn logs(stack: &Stack) -> String {
    let recorder = stack
        .recorder
        .as_ref()
        .map(|recorder| format!("\n--- recorder ---\n{}", recorder.log_text()))
        .unwrap_or_default();
    format!("{}{recorder}", stack.logs())
}
