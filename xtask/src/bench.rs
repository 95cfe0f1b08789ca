//! `cargo xtask bench`: every benchmark, in one run, for `docs/performance.md`.

use crate::tools::{cargo, run};

/// The crates with benchmarks.
const BENCHED: [&str; 4] = ["spdyframe", "wsframe", "sessiontap", "recorder-client"];

/// Runs the benchmarks of every benched crate, then the 1 GiB session benchmark.
/// With `sessions_only`, only the session benchmark.
pub(crate) fn bench(sessions_only: bool) -> anyhow::Result<()> {
    if sessions_only {
        return crate::session_bench::session_bench();
    }
    let mut command = cargo();
    command.arg("bench");
    for krate in BENCHED {
        command.args(["--package", krate]);
    }
    run(&mut command)?;
    crate::session_bench::session_bench()
}
