//! What kubectl prints when something is wrong, and the other mode.
//!
//! Each failure is checked twice: on kubectl's first (discovery) request with a cold cache, and on a
//! plain API request (`get --raw`), where kubectl decodes the proxy's `Status` body.

use e2e::stack::{fixture_caller, Stack, StackOptions, CALLER_TOKEN, CALLER_TOKEN_USER};
use serde_json::json;

const PODS: &str = "/api/v1/namespaces/default/pods";

#[test]
fn unknown_caller_gets_kubectls_unauthorized_message() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    // Only some other address is known.
    options.whois = json!({ "100.64.0.99": fixture_caller("user-node")? });
    let stack = Stack::start(options)?;

    let output = stack.kubectl.run(&["get", "pods"])?;
    assert!(!output.success, "{}", output.stdout);
    assert!(
        output
            .stderr
            .contains("error: You must be logged in to the server"),
        "{}",
        output.stderr
    );
    let output = stack.kubectl.run(&["get", "--raw", PODS])?;
    assert!(!output.success, "{}", output.stdout);
    assert!(
        output
            .stderr
            .contains("error: You must be logged in to the server (the caller at 127.0.0.1:"),
        "{}",
        output.stderr
    );
    assert!(
        output
            .stderr
            .contains("not known to the tailnet identity source"),
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
    let mut stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    assert_eq!(stack.ops("/readyz")?.status, 200, "{}", stack.logs());
    stack.localapi.terminate()?;

    let output = stack.kubectl.run(&["get", "pods"])?;
    assert!(!output.success, "{}", output.stdout);
    assert!(
        output
            .stderr
            .contains("Error from server (ServiceUnavailable)"),
        "{}",
        output.stderr
    );
    let output = stack.kubectl.run(&["get", "--raw", PODS])?;
    assert!(!output.success, "{}", output.stdout);
    assert!(
        output
            .stderr
            .contains("Error from server (ServiceUnavailable)")
            && output
                .stderr
                .contains("identity source (tailscaled LocalAPI) is unavailable"),
        "kubectl should print the proxy's reason: {}",
        output.stderr
    );
    let ready = stack.ops("/readyz")?;
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("identity source"), "{}", ready.text());
    assert!(stack.upstream_requests()?.iter().all(|r| r["path"] != PODS));
    Ok(())
}

#[test]
fn malformed_capability_is_403_naming_the_problem() -> anyhow::Result<()> {
    let mut whois = fixture_caller("user-node")?;
    whois["CapMap"] = json!({
        "tailscale.com/cap/kubernetes": [{"recorderAddrs": "not-a-list"}]
    });
    let stack = Stack::start(StackOptions::for_caller(whois))?;
    for args in [&["get", "pods"][..], &["get", "--raw", PODS][..]] {
        let output = stack.kubectl.run(args)?;
        assert!(!output.success, "{args:?}: {}", output.stdout);
        assert!(
            output.stderr.contains("Error from server (Forbidden)")
                && output.stderr.contains("tailscale.com/cap/kubernetes")
                && output.stderr.contains("recorderAddrs"),
            "{args:?}: {}",
            output.stderr
        );
    }
    assert!(stack.upstream_requests()?.is_empty());
    Ok(())
}

#[test]
fn noauth_mode_passes_the_callers_own_token() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.mode = "noauth".into();
    let stack = Stack::start(options)?;
    let output = stack
        .kubectl
        .run(&["auth", "whoami", "-o", "json"])?
        .expect_success("whoami")?;
    let review = output.json()?;
    assert_eq!(review["status"]["userInfo"]["username"], CALLER_TOKEN_USER);
    let requests = stack.upstream_requests()?;
    assert!(!requests.is_empty());
    for request in requests {
        let text = request.to_string();
        assert!(
            text.contains(CALLER_TOKEN),
            "caller token not passed: {text}"
        );
        assert!(
            !text.contains("alice@example.com"),
            "noauth impersonated: {text}"
        );
    }
    Ok(())
}

#[test]
fn unreachable_upstream_is_a_502_naming_it() -> anyhow::Result<()> {
    let mut stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    stack.apiserver.terminate()?;
    let output = stack.kubectl.run(&["get", "--raw", PODS])?;
    assert!(!output.success, "{}", output.stdout);
    assert!(
        output.stderr.contains("upstream API server") && output.stderr.contains("unreachable"),
        "{}",
        output.stderr
    );
    let metrics = stack.metrics()?;
    let refused = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("k8s_auth_proxy_requests_refused{reason=\"upstream_unreachable\"} ")
        })
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(refused >= 1, "{metrics}");
    Ok(())
}
