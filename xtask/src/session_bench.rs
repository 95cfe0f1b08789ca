//! The session benchmark of `cargo xtask bench`: one `kubectl exec` streaming 1 GiB of stdout,
//! direct to the apiserver stand-in, through the proxy unrecorded, and through the proxy recorded,
//! in one run, with release builds. Reports throughput, ratios and the proxy's peak memory.

use std::io::Read;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{ensure, Context as _};
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};

use crate::tools::use_release_binaries;

/// Bytes of stdout per session.
const BYTES: u64 = 1 << 30;

struct Measured {
    label: &'static str,
    seconds: f64,
    proxy_peak_kib: Option<u64>,
}

/// Runs the three sessions and prints the table for `docs/performance.md`.
pub(crate) fn session_bench() -> anyhow::Result<()> {
    use_release_binaries()?;

    let whois = admin_caller()?;
    let plain = Stack::start(StackOptions::for_caller(whois.clone()))?;
    let mut recorded_options = StackOptions::for_caller(whois);
    recorded_options.recording = Some(RecordingGrant::ENFORCED);
    let recorded = Stack::start(recorded_options)?;

    let direct = plain.kubectl.direct(&plain.upstream_kubeconfig);
    let results = [
        measure("direct to the stand-in", &direct, None)?,
        measure(
            "through the proxy, unrecorded",
            &plain.kubectl,
            plain.proxy.pid(),
        )?,
        measure(
            "through the proxy, recorded",
            &recorded.kubectl,
            recorded.proxy.pid(),
        )?,
    ];
    let base = results[0].seconds;
    println!("\n| session (1 GiB of stdout, kubectl exec over WebSocket) | time | throughput | vs direct | proxy peak RSS |");
    println!("|---|---|---|---|---|");
    for result in &results {
        println!(
            "| {} | {:.2} s | {:.0} MiB/s | {:.2}x | {} |",
            result.label,
            result.seconds,
            BYTES as f64 / (1024.0 * 1024.0) / result.seconds,
            base / result.seconds,
            result
                .proxy_peak_kib
                .map(|kib| format!("{:.1} MiB", kib as f64 / 1024.0))
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

fn measure(
    label: &'static str,
    kubectl: &e2e::kubectl::Kubectl,
    proxy_pid: Option<u32>,
) -> anyhow::Result<Measured> {
    let script = format!("head -c {BYTES} /dev/zero | tr '\\000' x");
    let started = Instant::now();
    let mut child = kubectl
        .command(&["exec", "demo", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting kubectl")?;
    let mut stdout = child.stdout.take().context("kubectl stdout")?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut received = 0u64;
    loop {
        let n = stdout.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    let output = child.wait_with_output()?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        output.status.success() && received == BYTES,
        "{label}: kubectl {} after {received} bytes: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let proxy_peak_kib = proxy_pid.and_then(peak_rss_kib);
    Ok(Measured {
        label,
        seconds,
        proxy_peak_kib,
    })
}

/// `VmHWM` of a process: its peak resident memory.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}
