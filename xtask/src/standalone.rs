//! `cargo xtask standalone`: the reusable crates stand alone, outside this workspace.
//!
//! Other teams take the library crates one by one, so two things must hold that a build inside
//! the workspace never shows:
//!
//! 1. They package together: `cargo package --no-verify --allow-dirty -p ...` over every reusable
//!    crate (a manifest field missing, a dependency with a version on an unpublishable crate, or
//!    a workspace-only setting fails here).
//! 2. They build as path dependencies of a crate that is not a member of this workspace: a
//!    scratch crate, generated in a new temporary directory outside the checkout (its own empty
//!    `[workspace]` table makes it a workspace of its own), depends on `spdyframe` and
//!    `sessiontap` by absolute path and is built with `cargo build`. It uses the `StreamId`
//!    `sessiontap` re-exports as `spdyframe`'s, so the two crates' public APIs must line up.
//!
//! The absolute paths are computed at run time from the workspace root and live only in the
//! temporary directory, which is removed after a successful run (kept after a failed one). The
//! build uses a target directory of its own under the workspace's `target/`, so later runs reuse
//! it.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::tools::{cargo, run, workspace_root};

/// The reusable library and I/O crates that must package together, in a stable order.
const REUSABLE: [&str; 12] = [
    "capmodel",
    "impersonate",
    "spdyframe",
    "wsframe",
    "sessiontap",
    "requestinfo",
    "localapi",
    "recorder-client",
    "recorder-server",
    "castfmt",
    "kubestatus",
    "tlsedge",
];

/// The scratch crate's `src/main.rs`: uses both crates, and `sessiontap`'s re-exported
/// `StreamId` as `spdyframe`'s own type.
const SCRATCH_MAIN: &str = r#"//! Built by `cargo xtask standalone`: spdyframe and sessiontap as path dependencies.

fn main() {
    let stream: sessiontap::StreamId = spdyframe::StreamId::new(1).expect("a 31-bit stream id");
    let mut wire = Vec::new();
    spdyframe::encode_data(stream, spdyframe::FLAG_FIN, b"hello", &mut wire).expect("fits");
    let mut parser = spdyframe::FrameParser::default();
    let mut input = wire.as_slice();
    let event = parser.next_event(&mut input).expect("a valid frame");
    assert!(matches!(event, Some(spdyframe::Event::Data { .. })));

    let protocol = sessiontap::Protocol::from_websocket_subprotocol("v5.channel.k8s.io")
        .expect("a known protocol");
    let tap = sessiontap::SessionTap::new(protocol, sessiontap::TapLimits::default());
    let error_stream: Option<spdyframe::StreamId> = tap.spdy_error_stream();
    assert_eq!(error_stream, None);
    println!("standalone: spdyframe and sessiontap build and run outside the workspace");
}
"#;

/// Runs both checks.
pub(crate) fn standalone() -> anyhow::Result<()> {
    let root = workspace_root();
    run(cargo().args(package_args(&REUSABLE)))?;
    build_scratch_crate(&root)
}

/// `cargo package` over `packages` together, without building them (the scratch crate does).
fn package_args(packages: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["package", "--no-verify", "--allow-dirty"]
        .map(String::from)
        .to_vec();
    for name in packages {
        args.push("-p".into());
        args.push((*name).into());
    }
    args
}

/// Generates the scratch crate in a new temporary directory and builds it (and runs it).
fn build_scratch_crate(root: &Path) -> anyhow::Result<()> {
    let crates = root.join("crates");
    let dir = crate::tools::fresh_temp_dir("standalone")?;
    if dir.starts_with(root) {
        bail!(
            "the temporary directory {} is inside the workspace {}: set TMPDIR elsewhere",
            dir.display(),
            root.display()
        );
    }
    eprintln!("scratch crate outside the workspace: {}", dir.display());
    std::fs::create_dir(dir.join("src")).context("creating the scratch crate's src")?;
    let manifest = scratch_manifest(&crates.join("spdyframe"), &crates.join("sessiontap"))?;
    std::fs::write(dir.join("Cargo.toml"), manifest).context("writing the scratch manifest")?;
    std::fs::write(dir.join("src").join("main.rs"), SCRATCH_MAIN)
        .context("writing the scratch main.rs")?;
    // The workspace's lock file: the same versions the workspace is tested with (cargo drops the
    // entries the scratch crate does not need).
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))
        .context("copying Cargo.lock into the scratch crate")?;

    let target = root.join("target").join("standalone");
    let result = run(scratch_cargo(&dir, &target).args(["build", "--quiet"]))
        .and_then(|()| run(scratch_cargo(&dir, &target).args(["run", "--quiet"])));
    match result {
        Ok(()) => {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
        }
        Err(error) => Err(error.context(format!(
            "the scratch crate at {} did not build (kept for inspection)",
            dir.display()
        ))),
    }
}

/// `cargo` run in the scratch crate with its target directory, and none of the variables that
/// would tie it to this workspace's build.
fn scratch_cargo(dir: &Path, target: &Path) -> Command {
    let mut command = cargo();
    command.current_dir(dir);
    for name in ["CARGO_MANIFEST_DIR", "CARGO_BUILD_TARGET_DIR"] {
        command.env_remove(name);
    }
    command.env("CARGO_TARGET_DIR", target);
    command
}

/// The scratch crate's `Cargo.toml`: a package of its own workspace (the empty `[workspace]`
/// table, so that no `Cargo.toml` above it claims it) with `spdyframe` and `sessiontap` as path
/// dependencies.
fn scratch_manifest(spdyframe: &Path, sessiontap: &Path) -> anyhow::Result<String> {
    Ok(format!(
        r#"[package]
name = "standalone-check"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
spdyframe = {{ path = {} }}
sessiontap = {{ path = {} }}

[workspace]
"#,
        toml_string(spdyframe)?,
        toml_string(sessiontap)?
    ))
}

/// `path` as a TOML basic string.
fn toml_string(path: &Path) -> anyhow::Result<String> {
    let text = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    Ok(quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scratch_manifest_is_its_own_workspace_with_both_path_dependencies() {
        let manifest = scratch_manifest(
            Path::new("/src/kap/crates/spdyframe"),
            Path::new("/src/kap/crates/sessiontap"),
        )
        .expect("UTF-8 paths");
        assert_eq!(
            manifest,
            r#"[package]
name = "standalone-check"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
spdyframe = { path = "/src/kap/crates/spdyframe" }
sessiontap = { path = "/src/kap/crates/sessiontap" }

[workspace]
"#
        );
    }

    #[test]
    fn paths_are_quoted_as_toml_basic_strings() {
        assert_eq!(
            toml_string(Path::new(r#"C:\a "b"\c"#)).expect("UTF-8"),
            r#""C:\\a \"b\"\\c""#
        );
        assert_eq!(
            toml_string(Path::new("/tmp/x\ty")).expect("UTF-8"),
            r#""/tmp/x\u0009y""#
        );
    }

    #[test]
    fn every_reusable_crate_is_packaged_together() {
        let args = package_args(&["spdyframe", "sessiontap"]);
        assert_eq!(
            args,
            [
                "package",
                "--no-verify",
                "--allow-dirty",
                "-p",
                "spdyframe",
                "-p",
                "sessiontap"
            ]
        );
    }

    #[test]
    fn every_reusable_crate_is_a_workspace_member() {
        let root = workspace_root();
        for name in REUSABLE {
            let manifest = root.join("crates").join(name).join("Cargo.toml");
            assert!(manifest.is_file(), "{} is missing", manifest.display());
        }
    }

    #[test]
    fn the_scratch_program_uses_both_crates() {
        assert!(SCRATCH_MAIN.contains("sessiontap::StreamId"));
        assert!(SCRATCH_MAIN.contains("spdyframe::StreamId"));
    }
}
