//! `cargo xtask bench`: every benchmark, in one run, for `docs/performance.md`.

use crate::tools::{cargo, run};

/// The crates with benchmarks.
const BENCHED: [&str; 4] = ["spdyframe", "wsframe", "sessiontap", "recorder-client"];

/// Which benchmarks to run (`cargo xtask bench [--sessions-only | --events-only]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BenchSelection {
    /// The crates' benchmarks, then the session benchmark, then the API events benchmark.
    All,
    /// `--sessions-only`: the 1 GiB session benchmark.
    Sessions,
    /// `--events-only`: the API request events benchmark.
    Events,
}

/// Runs the benchmarks of every benched crate, the 1 GiB session benchmark and the API events
/// benchmark, or only one of the last two.
pub(crate) fn bench(selection: BenchSelection) -> anyhow::Result<()> {
    match selection {
        BenchSelection::Sessions => crate::session_bench::session_bench(),
        BenchSelection::Events => crate::events_bench::events_bench(),
        BenchSelection::All => {
            let mut command = cargo();
            command.arg("bench");
            for krate in BENCHED {
                command.args(["--package", krate]);
            }
            run(&mut command)?;
            crate::session_bench::session_bench()?;
            crate::events_bench::events_bench()
        }
    }
}
