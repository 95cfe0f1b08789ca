//! What the binaries write to their logs: plain text in files (no colour codes), and a start-up
//! error once.

use std::process::Command;

use e2e::binaries::binary;
use e2e::stack::{fixture_caller, RecordingGrant, Stack, StackOptions};

const ESCAPE: char = '\u{1b}';

#[test]
fn logs_written_to_files_hold_no_colour_codes() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions {
        recording: Some(RecordingGrant::ENFORCED),
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    stack
        .kubectl
        .run(&["exec", "demo", "--", "echo", "logged"])?
        .expect_success("exec")?;
    stack.finished_recordings(1)?;
    let proxy = stack.proxy.log_text();
    assert!(proxy.contains("session ended"), "{proxy}");
    assert!(
        !proxy.contains(ESCAPE),
        "escape codes in the proxy's log:\n{proxy}"
    );
    let recorder = stack
        .recorder
        .as_ref()
        .map(|r| r.log_text())
        .unwrap_or_default();
    assert!(!recorder.is_empty(), "the recorder logged nothing");
    assert!(
        !recorder.contains(ESCAPE),
        "escape codes in the recorder's log:\n{recorder}"
    );
    Ok(())
}

#[test]
fn a_start_up_error_is_printed_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let output = Command::new(binary("kube-auth-proxy")?)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--upstream-kubeconfig"])
        .arg(dir.path().join("missing.kubeconfig"))
        .args(["--localapi-socket"])
        .arg(dir.path().join("tailscaled.sock"))
        .args(["--log-color", "always"])
        .env_remove("APISERVER_PROXY")
        .env_remove("AUTH_PROXY")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("missing.kubeconfig").count(),
        1,
        "the error must be printed exactly once:\n{stderr}"
    );
    assert!(
        stderr.contains(ESCAPE),
        "--log-color always colours:\n{stderr}"
    );
    Ok(())
}
