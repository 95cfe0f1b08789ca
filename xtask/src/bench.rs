//! `cargo xtask bench`: every benchmark, in one run, for `docs/performance.md`.

use crate::tools::{cargo, run};

/// The crates with benchmarks.
const BENCHED: [&str; 4] = ["spdyframe", "wsframe", "sessiontap", "recorder-client"];

/// Runs the benchmarks of every benched crate.
pub(crate) fn bench() -> anyhow::Result<()> {
    let mut command = cargo();
    command.arg("bench");
    for krate in BENCHED {
        command.args(["--package", krate]);
    }
    run(&mut command)
}
