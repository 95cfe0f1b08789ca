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
