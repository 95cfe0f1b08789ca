//! exec/attach policy decided before anything reaches upstream.

use e2e::stack::{fixture_whois, Stack, StackOptions};
use serde_json::json;

/// A grant that demands recording (`enforceRecorder`) but names no recorder: every exec is refused
/// with the reason, over WebSocket (kubectl's default, which then retries over SPDY) and over SPDY.
#[test]
fn enforced_recording_without_recorders_refuses_exec_before_upstream() -> anyhow::Result<()> {
    let mut whois = fixture_whois("user-node")?;
    whois["CapMap"] = json!({
        "tailscale.com/cap/kubernetes": [
            {"impersonate": {"groups": ["eng"]}, "enforceRecorder": true}
        ]
    });
    let mut stack = Stack::start(StackOptions::for_caller(whois))?;
    for websockets in ["true", "false"] {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.into(),
        )];
        let output = stack.kubectl.run(&["exec", "demo", "--", "echo", "hi"])?;
        assert!(
            !output.success,
            "websockets={websockets}: {}",
            output.stdout
        );
        assert!(
            output.stderr.contains("requires session recording"),
            "websockets={websockets}: {}",
            output.stderr
        );
    }
    let exec_requests: Vec<_> = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/exec")))
        .collect();
    assert!(exec_requests.is_empty(), "upstream saw {exec_requests:?}");
    Ok(())
}

/// `--max-sessions-per-caller 1`: while one exec runs, a second one by the same caller is refused
/// with a reason kubectl prints, over both transports, and never reaches upstream.
#[test]
fn a_caller_over_its_session_limit_is_refused_with_the_reason() -> anyhow::Result<()> {
    let mut stack = Stack::start(StackOptions {
        proxy_args: vec!["--max-sessions-per-caller".into(), "1".into()],
        ..StackOptions::for_caller(e2e::stack::fixture_caller("user-node")?)
    })?;
    let mut first =
        stack
            .kubectl
            .spawn_lines(&["exec", "demo", "--", "sh", "-c", "echo started; sleep 60"])?;
    first.wait_for("started", std::time::Duration::from_secs(60))?;
    let execs_before = upstream_execs(&stack)?;
    for websockets in ["true", "false"] {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.into(),
        )];
        let output = stack.kubectl.run(&["exec", "demo", "--", "echo", "hi"])?;
        assert!(
            !output.success,
            "websockets={websockets}: {}",
            output.stdout
        );
        assert!(
            output
                .stderr
                .contains("already has 1 sessions open (exec, attach, port-forward)"),
            "websockets={websockets}: {}",
            output.stderr
        );
    }
    assert_eq!(
        upstream_execs(&stack)?,
        execs_before,
        "a refused session reached upstream"
    );
    assert!(!first.has_exited(), "the first session must go on");
    Ok(())
}

fn upstream_execs(stack: &Stack) -> anyhow::Result<usize> {
    Ok(stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/exec")))
        .count())
}
