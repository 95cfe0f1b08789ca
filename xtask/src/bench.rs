//! `cargo xtask bench`: every benchmark, in one run, for `docs/performance.md`.

use crate::tools::{cargo, run};

/// The crates with benchmarks.
const BENCHED: [&str; 4] = ["spdyframe", "wsframe", "sessiontap", "recorder-client"];

/// Which benchmarks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BenchSelection {
    /// The crates' benchmarks, then the session benchmark, then the API events benchmark.
    All,
    /// `--sessions-only`: the 1 GiB session benchmark.
    Sessions,
    /// `--events-only`: the API request events benchmark.
    Events,
}

impl BenchSelection {
    /// From the arguments after `bench`; an unknown one is an error naming it.
    pub(crate) fn from_args(args: &[String]) -> anyhow::Result<Self> {
        match args {
            [] => Ok(Self::All),
            [only] if only == "--sessions-only" => Ok(Self::Sessions),
            [only] if only == "--events-only" => Ok(Self::Events),
            other => anyhow::bail!(
                "bench: expected nothing, --sessions-only or --events-only, got {other:?}"
            ),
        }
    }
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
