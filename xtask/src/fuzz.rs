//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets under `fuzz/`.
//!
//! cargo-fuzz needs nightly-only compiler flags (sanitizers, coverage instrumentation); the stable
//! toolchain accepts them with `RUSTC_BOOTSTRAP=1`. Each target's corpus lives in `fuzz/corpus/TARGET`
//! and is kept in the repository, so every run starts from what earlier runs found. `cargo xtask
//! fuzz` adds what it finds there (minimise with `cargo +nightly fuzz cmin TARGET` before
//! committing); the short smoke run of `cargo xtask ci` only reads it, writing its finds to a scratch
//! directory under `target/`, so CI leaves the checkout as it found it.

use anyhow::bail;

use crate::tools::{cargo, ensure_cargo_tool, run, workspace_root};

/// Every fuzz target, as listed in `fuzz/Cargo.toml`.
pub(crate) const TARGETS: [&str; 8] = [
    "spdy_frames",
    "spdy_header_block",
    "ws_frames",
    "ws_channels",
    "sessiontap",
    "spdy_routing",
    "requestinfo",
    "portforward",
];

/// Runs each chosen target (all when none is named) for `seconds`.
pub(crate) fn fuzz(args: &[String]) -> anyhow::Result<()> {
    let mut seconds = 60u64;
    let mut chosen = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().map(String::as_str).unwrap_or_default();
                seconds = value
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--seconds needs a number, got {value:?}"))?;
            }
            name if TARGETS.contains(&name) => chosen.push(name.to_string()),
            other => bail!(
                "unknown fuzz argument {other:?}; targets: {}",
                TARGETS.join(", ")
            ),
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    run_targets(&chosen, seconds, NewInputs::IntoCorpus)
}

/// Where the inputs a run finds go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewInputs {
    /// Into the repository's corpus (`cargo xtask fuzz`).
    IntoCorpus,
    /// Into a scratch directory; the repository's corpus is only read (the CI smoke run).
    Scratch,
}

/// Runs the targets for `seconds` each.
pub(crate) fn run_targets(
    targets: &[String],
    seconds: u64,
    new_inputs: NewInputs,
) -> anyhow::Result<()> {
    ensure_cargo_tool("fuzz", "cargo-fuzz")?;
    let fuzz_dir = workspace_root().join("fuzz");
    for target in targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        // libFuzzer writes new inputs to the first corpus directory and only reads the others.
        let mut corpora = vec![corpus];
        if new_inputs == NewInputs::Scratch {
            let scratch = workspace_root().join("target/fuzz-smoke").join(target);
            if scratch.exists() {
                std::fs::remove_dir_all(&scratch)?;
            }
            std::fs::create_dir_all(&scratch)?;
            corpora.insert(0, scratch);
        }
        run(cargo()
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .arg(target)
            .args(&corpora)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-max_len=262144")
            .arg("-rss_limit_mb=2048"))?;
    }
    Ok(())
}
