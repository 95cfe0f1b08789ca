//! Installing Debian packages the checks and benchmarks need (nginx, Chromium, age), once and
//! only when missing.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use crate::tools::run;

/// Installs the Debian `packages` with apt-get unless every one of `binaries` is already there
/// (idempotent). Runs apt-get directly as root and through sudo otherwise; fails with what to do
/// when neither works. A machine whose package lists were never fetched is updated first.
pub(crate) fn ensure_debian_packages(binaries: &[&str], packages: &[&str]) -> anyhow::Result<()> {
    if binaries.iter().all(|binary| Path::new(binary).exists()) {
        return Ok(());
    }
    let wanted = packages.join(" ");
    let root = is_root()?;
    let has_sudo = !root
        && Command::new("sudo")
            .args(["-n", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
    if !root && !has_sudo {
        bail!(
            "{} is missing and this user can neither run apt-get (not root) nor sudo without a \
             password: install Debian's {wanted} (`apt-get install -y {wanted}`) and retry",
            binaries.join(", ")
        );
    }
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            // Benchmarks print their tables on stdout; apt's progress goes with the messages.
            .stdout(std::io::stderr());
        command
    };
    let install: Vec<&str> = ["install", "-y"].iter().chain(packages).copied().collect();
    eprintln!(
        "installing {wanted} (once): {} missing",
        binaries.join(", ")
    );
    if run(&mut apt(&install)).is_err() {
        run(&mut apt(&["update"]))?;
        run(&mut apt(&install)).with_context(|| format!("installing {wanted} with apt-get"))?;
    }
    if let Some(missing) = binaries.iter().find(|binary| !Path::new(binary).exists()) {
        bail!("{wanted} installed but {missing} is still missing");
    }
    Ok(())
}

/// Whether this process runs as root (`Uid:` in `/proc/self/status`, real uid first).
fn is_root() -> anyhow::Result<bool> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .context("no Uid: line in /proc/self/status")?;
    Ok(uid == "0")
}
