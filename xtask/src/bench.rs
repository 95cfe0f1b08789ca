//! `cargo xtask bench`: every benchmark, in one run, for `docs/performance.md`.

use crate::compare_bench::CompareOptions;
use crate::events_bench::EventsOptions;
use crate::tools::{cargo, run};

/// The crates with benchmarks.
const BENCHED: [&str; 5] = [
    "spdyframe",
    "wsframe",
    "sessiontap",
    "recorder-client",
    "recorder-server",
];

/// Which benchmarks to run (`cargo xtask bench [--compare-only | --events-only | --scale-only]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BenchSelection {
    /// The crates' benchmarks, then the comparison benchmark, the API events benchmark and the
    /// scale benchmark.
    All(CompareOptions, EventsOptions),
    /// `--compare-only` (formerly `--sessions-only`): direct, nginx and kube-auth-proxy side by
    /// side.
    Compare(CompareOptions),
    /// `--events-only`: the API request events benchmark.
    Events(EventsOptions),
    /// `--scale-only`: 1,000 recorded sessions at once, then 1 GiB through one.
    Scale,
}

/// Runs the benchmarks of every benched crate, the comparison benchmark, the API events
/// benchmark and the scale benchmark, or only one of the last three.
pub(crate) fn bench(selection: BenchSelection) -> anyhow::Result<()> {
    match selection {
        BenchSelection::Compare(options) => crate::compare_bench::compare_bench(options),
        BenchSelection::Events(options) => crate::events_bench::events_bench(options),
        BenchSelection::Scale => crate::scale_bench::scale_bench(),
        BenchSelection::All(options, events) => {
            let mut command = cargo();
            command.arg("bench");
            for krate in BENCHED {
                command.args(["--package", krate]);
            }
            run(&mut command)?;
            crate::compare_bench::compare_bench(options)?;
            crate::events_bench::events_bench(events)?;
            crate::scale_bench::scale_bench()
        }
    }
}
