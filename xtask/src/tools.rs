//! Running commands and making sure the tools they need are installed (idempotently).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `cargo` as invoked by the user (rustup's proxy or the toolchain's binary).
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// `git` run in `dir`, without the variables that would point it at another repository (git sets
/// them for hooks).
pub(crate) fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command.current_dir(dir);
    for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] {
        command.env_remove(name);
    }
    command
}

/// Runs a command, echoing it, and fails with its exit status.
pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", describe(command)))?;
    if !status.success() {
        bail!("{} failed with {status}", describe(command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a cargo subcommand is installed.
fn has_cargo_subcommand(name: &str) -> bool {
    cargo()
        .args([name, "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Installs a cargo subcommand from crates.io unless it is already there.
pub(crate) fn ensure_cargo_tool(subcommand: &str, krate: &str) -> anyhow::Result<()> {
    if has_cargo_subcommand(subcommand) {
        return Ok(());
    }
    eprintln!("installing {krate} (once)");
    run(cargo().args(["install", "--locked", krate]))
}

/// kubectl must be the machine's own (it cannot be installed here); fail clearly without it.
pub(crate) fn ensure_kubectl() -> anyhow::Result<()> {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        bail!(
            "kubectl not found on PATH: the end-to-end suite drives the real kubectl (1.32 expected at /usr/bin/kubectl); install it and retry"
        );
    }
    Ok(())
}

/// `asciinema` 2.4.0 (PyPI), which the end-to-end suite uses to check recordings replay; installed
/// with pip when missing.
pub(crate) fn ensure_asciinema() -> anyhow::Result<()> {
    // Run as a module: a fresh pip install's console script may not be on PATH yet (pyenv shims).
    let present = Command::new("python3")
        .args(["-m", "asciinema", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    eprintln!("installing asciinema 2.4.0 (once)");
    run(Command::new("python3").args(["-m", "pip", "install", "--quiet", "asciinema==2.4.0"]))
}

/// Installs moto's S3 server (PyPI), the object storage kube-recorder's S3 tests run against,
/// unless it is already importable (idempotent).
pub(crate) fn ensure_moto() -> anyhow::Result<()> {
    let present = Command::new("python3")
        .args(["-c", "import moto.server"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    eprintln!("installing {MOTO_REQUIREMENT} (once)");
    run(Command::new("python3").args(["-m", "pip", "install", "--quiet", MOTO_REQUIREMENT]))
}

/// The moto release the S3 tests run against; `testkit::s3_server::MOTO_REQUIREMENT` names the
/// same in its error message.
const MOTO_REQUIREMENT: &str = "moto[server]==5.2.1";

/// The packages whose binaries the end-to-end suite, the demo and the benchmarks start.
const STACK_PACKAGES: [&str; 6] = [
    "--package",
    "proxy-bin",
    "--package",
    "testkit",
    "--package",
    "recorder-server",
];

/// Builds the binaries the end-to-end suite and the demo start.
pub(crate) fn build_binaries() -> anyhow::Result<()> {
    run(cargo().arg("build").args(STACK_PACKAGES).arg("--bins"))
}

/// Builds the stack's binaries with the release profile and makes the stacks started from now on
/// use them; returns their directory.
pub(crate) fn use_release_binaries() -> anyhow::Result<std::path::PathBuf> {
    run(cargo()
        .args(["build", "--release"])
        .args(STACK_PACKAGES)
        .arg("--bins"))?;
    let release = workspace_root().join("target/release");
    // The stack starts these binaries (edition 2021: setting the environment is safe here, and
    // xtask is single-threaded at this point).
    std::env::set_var("E2E_BIN_DIR", &release);
    std::env::set_var("E2E_SKIP_BUILD", "1");
    Ok(release)
}

/// A new, empty directory `kube-auth-proxy-PURPOSE-PID-NANOS` under the system's temporary
/// directory; never one that existed before.
pub(crate) fn fresh_temp_dir(purpose: &str) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context as _;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "kube-auth-proxy-{purpose}-{}-{nanos}",
        std::process::id()
    ));
    // `create_dir`, not `create_dir_all`: it fails when the directory is already there.
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
