//! `cargo xtask ci` and `cargo xtask e2e`.

use crate::tools::{
    build_binaries, cargo, ensure_asciinema, ensure_cargo_tool, ensure_kubectl, ensure_moto, run,
    workspace_root,
};

/// How long each fuzz target runs in CI.
const FUZZ_SMOKE_SECONDS: u64 = 15;

/// Everything CI checks.
pub(crate) fn ci() -> anyhow::Result<()> {
    // First and fast: a fresh clone has nothing beside it.
    crate::outside_paths::check(&workspace_root())?;
    // kube-recorder's encryption tests check that the standard age CLI decrypts its files.
    crate::apt::ensure_debian_packages(&["/usr/bin/age", "/usr/bin/age-keygen"], &["age"])?;
    // kube-recorder's web UI test drives a real headless Chromium through chromedriver.
    crate::apt::ensure_debian_packages(
        &["/usr/bin/chromium", "/usr/bin/chromedriver"],
        &["chromium", "chromium-driver"],
    )?;
    ensure_kubectl()?;
    ensure_asciinema()?;
    ensure_moto()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    crate::standalone::standalone()?;
    eprintln!("$ cargo xtask deploy-check");
    crate::deploy_check::deploy_check()?;
    ensure_cargo_tool("deny", "cargo-deny")?;
    // Advisories need the advisory database from the network, which these machines do not reach.
    run(cargo().args(["deny", "check", "licenses", "bans", "sources"]))?;
    ensure_cargo_tool("nextest", "cargo-nextest")?;
    build_binaries()?;
    // The binaries were just built: the end-to-end harness need not ask cargo again per test.
    run(cargo()
        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
        .env("E2E_SKIP_BUILD", "1"))?;
    run(cargo().args(["test", "--workspace", "--doc"]))?;
    // A short smoke of every fuzz target (the long runs are `cargo xtask fuzz --seconds 600`).
    let targets: Vec<String> = crate::fuzz::TARGETS.iter().map(|t| t.to_string()).collect();
    crate::fuzz::run_targets(
        &targets,
        FUZZ_SMOKE_SECONDS,
        crate::fuzz::NewInputs::Scratch,
    )?;
    eprintln!("$ cargo xtask demo --script");
    crate::demo::demo(true)?;
    Ok(())
}

/// Only the end-to-end suite.
pub(crate) fn e2e() -> anyhow::Result<()> {
    // The encrypted-storage test decrypts with the standard age CLI too.
    crate::apt::ensure_debian_packages(&["/usr/bin/age", "/usr/bin/age-keygen"], &["age"])?;
    // kube-recorder's web UI test drives a real headless Chromium through chromedriver.
    crate::apt::ensure_debian_packages(
        &["/usr/bin/chromium", "/usr/bin/chromedriver"],
        &["chromium", "chromium-driver"],
    )?;
    ensure_kubectl()?;
    ensure_asciinema()?;
    ensure_moto()?;
    ensure_cargo_tool("nextest", "cargo-nextest")?;
    build_binaries()?;
    run(cargo()
        .args(["nextest", "run", "--package", "e2e", "--no-fail-fast"])
        .env("E2E_SKIP_BUILD", "1"))
}
