//! The comparison benchmark of `cargo xtask bench` (`--compare-only`): kube-auth-proxy beside
//! the apiserver stand-in reached directly and through nginx, in one run, with release builds.
//!
//! Exec sessions (`kubectl exec` streaming N bytes of stdout, over WebSocket and over SPDY) and a
//! GET load (`testkit-load`, 32 connections, on one pod) go over every path; rounds are
//! interleaved across the paths so that drift in the machine's load hits them all alike, and
//! medians are reported (`compare_report`).

use std::path::Path;

use anyhow::anyhow;

use crate::compare_paths::{check_upgrades, PathKind, Paths};
use crate::compare_report::{print_report, GetSample, Results};
use crate::exec_session::{exec_session, Protocol};
use crate::load_client::Load;
use crate::proc_stats::{cpu_times, peak_rss_kib};
use crate::tools::use_release_binaries;

/// The object every GET of the load asks for: one small pod, so that the cost per request of
/// each path dominates.
pub(crate) const GET_PATH: &str = "/api/v1/namespaces/default/pods/demo";
/// Keep-alive connections of the GET load, one request in flight on each.
pub(crate) const GET_CONNECTIONS: u64 = 32;
/// Sent but not measured: TLS handshakes, warm caches.
const GET_WARMUP: &str = "1s";
/// Measured, per path and round.
pub(crate) const GET_DURATION: &str = "8s";
/// Default bytes of stdout per exec session.
pub(crate) const DEFAULT_EXEC_BYTES: u64 = 300_000_000;
/// Default rounds.
pub(crate) const DEFAULT_ROUNDS: u64 = 3;

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompareOptions {
    /// Bytes of stdout per exec session.
    pub(crate) exec_bytes: u64,
    /// Rounds; each runs every path once per protocol and once under GET load.
    pub(crate) rounds: u64,
    /// Whether the exec sessions run (`--get-only`: only the GET load).
    pub(crate) exec: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            exec_bytes: DEFAULT_EXEC_BYTES,
            rounds: DEFAULT_ROUNDS,
            exec: true,
        }
    }
}

/// Starts everything, runs the exec rounds (unless `--get-only`), then the GET rounds, and
/// prints the tables.
pub(crate) fn compare_bench(options: CompareOptions) -> anyhow::Result<()> {
    let release = use_release_binaries()?;
    let paths = Paths::start()?;
    let mut results = Results::new(options);
    results.nginx_version = crate::nginx::version()?;
    if options.exec {
        exec_rounds(&paths, options, &mut results)?;
    }
    get_rounds(&paths, options, &release.join("testkit-load"), &mut results)?;
    print_report(&results);
    Ok(())
}

/// Every path's exec sessions, over both protocols, round after round.
fn exec_rounds(
    paths: &Paths,
    options: CompareOptions,
    results: &mut Results,
) -> anyhow::Result<()> {
    // Exec first: the stand-ins' request logs (bounded) then hold only these sessions' upgrades,
    // which check_upgrades counts.
    let mut recorded_sessions = 0;
    for round in 0..options.rounds {
        for protocol in Protocol::ALL {
            for path in rotated(&paths.paths, round) {
                let recorded = path.kind == PathKind::Recorded;
                recorded_sessions += usize::from(recorded);
                let settle = || {
                    if recorded {
                        paths.recorded.finished_recordings(recorded_sessions)?;
                    }
                    Ok(())
                };
                let sample = exec_session(
                    &path.kubectl,
                    protocol,
                    options.exec_bytes,
                    &path.watched,
                    settle,
                )
                .map_err(|error| anyhow!("{}: {error:#}\n{}", path.kind.label(), paths.logs()))?;
                eprintln!(
                    "round {}: exec over {} {}: {:.2} s",
                    round + 1,
                    protocol.name(),
                    path.kind.label(),
                    sample.seconds
                );
                results.exec[path.kind.index()][protocol as usize].push(sample);
            }
        }
    }
    let rounds = usize::try_from(options.rounds)?;
    // Direct, nginx and the unrecorded proxy share the first stack's stand-in.
    check_upgrades(paths.stack_of(PathKind::Direct), 3 * rounds)?;
    check_upgrades(paths.stack_of(PathKind::Recorded), rounds)?;
    results.proxy_peak_kib = [
        paths.plain.proxy.pid().and_then(peak_rss_kib),
        paths.recorded.proxy.pid().and_then(peak_rss_kib),
    ];
    Ok(())
}

/// The GET load on every path that has one, round after round, with the CPU the proxy on the
/// path (nginx: master and workers) used for it.
fn get_rounds(
    paths: &Paths,
    options: CompareOptions,
    binary: &Path,
    results: &mut Results,
) -> anyhow::Result<()> {
    for round in 0..options.rounds {
        for path in rotated(&paths.paths, round) {
            let Some((url, authorization)) = &path.load else {
                continue;
            };
            let load = Load {
                binary,
                url: url.clone(),
                connections: GET_CONNECTIONS,
                warmup: GET_WARMUP,
                duration: GET_DURATION,
                headers: vec![authorization.clone()],
            };
            let label = format!("round {}: GET {}", round + 1, path.kind.label());
            let cpu_before = cpu_times(&path.watched.proxy);
            let load = load
                .run(&label)
                .map_err(|error| anyhow!("{error:#}\n{}", paths.logs()))?;
            let cpu = cpu_times(&path.watched.proxy)
                .zip(cpu_before)
                .map(|(after, before)| after.since(before));
            results.get[path.kind.index()].push(GetSample {
                cpu_per_request_us: cpu
                    .filter(|_| load.sent > 0)
                    .map(|cpu| cpu.scaled(1e6 / load.sent as f64)),
                load,
            });
        }
    }
    Ok(())
}

/// The paths starting at a different one each round, so that no path always runs first (after
/// an idle pause) or right after the heaviest one.
fn rotated<T>(items: &[T], round: u64) -> impl Iterator<Item = &T> {
    let start = usize::try_from(round).unwrap_or(0) % items.len().max(1);
    items[start..].iter().chain(&items[..start])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_starts_at_the_next_path() {
        let items = [1, 2, 3, 4];
        let order = |round| rotated(&items, round).copied().collect::<Vec<_>>();
        assert_eq!(order(0), [1, 2, 3, 4]);
        assert_eq!(order(1), [2, 3, 4, 1]);
        assert_eq!(order(5), [2, 3, 4, 1]);
        assert!(rotated(&[] as &[u8], 3).next().is_none());
    }
}
