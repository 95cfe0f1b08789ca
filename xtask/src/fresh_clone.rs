//! `cargo xtask fresh-clone-check [--keep]`: `cargo xtask ci` in a fresh clone of `HEAD`.
//!
//! What a user who clones the project gets is the committed state alone, with nothing beside it:
//! no untracked fixtures, no folder next to the checkout, no build artefacts. This clones `HEAD`
//! into a new, empty temporary directory (`$TMPDIR/kube-auth-proxy-fresh-clone-*/kube-auth-proxy`,
//! the clone its only entry) and runs the whole CI there, with the clone's own target directory,
//! so nothing built here is reused. Uncommitted changes are not part of the check.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::tools::{cargo, git, run, workspace_root};

/// Environment variables of this run that must not reach the clone's CI: they would point it at
/// this checkout's builds or another repository.
const INHERITED_BUT_NOT_WANTED: [&str; 8] = [
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_MANIFEST_DIR",
    "E2E_BIN_DIR",
    "E2E_SKIP_BUILD",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
];

/// Clones `HEAD` into a fresh temporary directory and runs `cargo xtask ci` there; removes the
/// clone after a successful run unless `keep`, and keeps it after a failed one.
pub(crate) fn fresh_clone_check(keep: bool) -> anyhow::Result<()> {
    let root = workspace_root();
    let head = git_output(&root, &["rev-parse", "--verify", "HEAD"])?;
    let changes = git_output(&root, &["status", "--porcelain", "--untracked-files=no"])?;
    if !changes.is_empty() {
        eprintln!("note: uncommitted changes are not checked: the clone has HEAD ({head}) only");
    }

    let base = crate::tools::fresh_temp_dir("fresh-clone")?;
    let clone = base.join("kube-auth-proxy");
    println!("fresh clone of {head}: {}", clone.display());
    run(git(&base)
        .args(["clone", "--quiet", "--no-hardlinks", "--no-checkout"])
        .arg(&root)
        .arg(&clone))?;
    run(git(&clone).args(["checkout", "--quiet", "--detach", &head]))?;

    let mut ci = cargo();
    ci.current_dir(&clone).args(["xtask", "ci"]);
    for name in INHERITED_BUT_NOT_WANTED {
        ci.env_remove(name);
    }
    // The clone's own target directory (cargo's default), even if a cargo configuration outside
    // the clone names another.
    ci.env("CARGO_TARGET_DIR", clone.join("target"));
    match run(&mut ci) {
        Ok(()) => {
            if keep {
                println!(
                    "fresh-clone-check passed; the clone is kept at {}",
                    clone.display()
                );
            } else {
                std::fs::remove_dir_all(&base)
                    .with_context(|| format!("removing {}", base.display()))?;
                println!("fresh-clone-check passed; removed {}", base.display());
            }
            Ok(())
        }
        Err(error) => Err(error.context(format!(
            "cargo xtask ci failed in the fresh clone at {} (kept for inspection)",
            clone.display()
        ))),
    }
}

/// What a git command prints, trimmed; an error when it fails.
fn git_output(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = git(dir)
        .args(args)
        .output()
        .with_context(|| format!("cannot run git {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "git {} in {} failed ({}): {}",
            args.join(" "),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}
