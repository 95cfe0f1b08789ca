//! What kubectl sees when something is wrong, and the other mode.

use e2e::stack::{fixture_whois, Stack, StackOptions, CALLER_TOKEN, CALLER_TOKEN_USER};
use serde_json::json;

#[test]
fn unknown_caller_gets_kubectls_unauthorized_message() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_whois("user-node")?);
    // Only some other address is known.
    options.whois = json!({ "100.64.0.99": fixture_whois("user-node")? });
    let stack = Stack::start(options)?;
    let output = stack.kubectl.run(&["get", "pods"])?;
    assert!(!output.success);
    assert!(
        output.stderr.contains("You must be logged in to the server (Unauthorized)"),
        "{}",
        output.stderr
    );
    assert!(
        stack.upstream_requests()?.is_empty(),
        "an unknown caller's request reached upstream"
    );
    Ok(())
}

#[test]
fn stopped_identity_source_is_a_clear_503() -> anyhow::Result<()> {
    let mut stack = Stack::start(StackOptions::for_caller(fixture_whois("user-node")?))?;
    assert_eq!(stack.ops("/readyz")?.status, 200, "{}", stack.logs());
    stack.localapi.terminate()?;
    let output = stack.kubectl.run(&["get", "pods"])?;
    assert!(!output.success);
    assert!(
        output.stderr.contains("identity source"),
        "kubectl should print the proxy's reason: {}",
        output.stderr
    );
    let ready = stack.ops("/readyz")?;
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("identity source"), "{}", ready.text());
    Ok(())
}

#[test]
fn malformed_capability_is_403_naming_the_problem() -> anyhow::Result<()> {
    let mut whois = fixture_whois("user-node")?;
    whois["CapMap"] = json!({
        "tailscale.com/cap/kubernetes": [{"recorderAddrs": "not-a-list"}]
    });
    let stack = Stack::start(StackOptions::for_caller(whois))?;
    let output = stack.kubectl.run(&["get", "pods"])?;
    assert!(!output.success);
    assert!(output.stderr.contains("Forbidden"), "{}", output.stderr);
    assert!(output.stderr.contains("recorderAddrs"), "{}", output.stderr);
    assert!(stack.upstream_requests()?.is_empty());
    Ok(())
}

#[test]
fn noauth_mode_passes_the_callers_own_token() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_whois("user-node")?);
    options.mode = "noauth".into();
    let stack = Stack::start(options)?;
    let output = stack
        .kubectl
        .run(&["auth", "whoami", "-o", "json"])?
        .expect_success("whoami")?;
    let review = output.json()?;
    assert_eq!(review["status"]["userInfo"]["username"], CALLER_TOKEN_USER);
    for request in stack.upstream_requests()? {
        let text = request.to_string();
        assert!(text.contains(CALLER_TOKEN), "caller token not passed: {text}");
        assert!(!text.contains("alice@example.com"), "noauth impersonated: {text}");
    }
    Ok(())
}

#[test]
fn sigterm_shuts_down_cleanly() -> anyhow::Result<()> {
    let mut stack = Stack::start(StackOptions::for_caller(fixture_whois("user-node")?))?;
    stack.kubectl.run(&["get", "pods"])?.expect_success("get pods")?;
    assert!(stack.proxy.terminate()?, "proxy did not exit 0 on SIGTERM:\n{}", stack.logs());
    Ok(())
}
