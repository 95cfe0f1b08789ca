//! Finding (and building) the binaries the stack starts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::bail;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The directory holding the workspace's debug binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("E2E_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug")
}

/// The path of a workspace binary, building the binaries once per test process so the suite never runs
/// stale ones (a no-op when `cargo xtask` built them already).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        if std::env::var_os("E2E_SKIP_BUILD").is_some() {
            return Ok(());
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                "-p",
                "proxy-bin",
                "-p",
                "testkit",
                "-p",
                "recorder-server",
                "--bins",
            ])
            .output()
            .map_err(|e| format!("cannot run cargo build: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "cargo build of the binaries failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(message) = built {
        bail!("{message}");
    }
    let path = bin_dir().join(name);
    if !path.exists() {
        bail!(
            "binary {} not found (build with `cargo xtask e2e`)",
            path.display()
        );
    }
    Ok(path)
}

/// The real kubectl; the suite fails clearly without it.
pub fn kubectl_path() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    if !path.exists() {
        bail!(
            "kubectl not found at {} (set KUBECTL): the end-to-end suite needs the real kubectl 1.32",
            path.display()
        );
    }
    Ok(path)
}
