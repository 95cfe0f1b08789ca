//! Who upstream sees: `kubectl auth whoami` through the proxy for each kind of caller.

use e2e::stack::{fixture_caller, Stack, StackOptions, PROXY_TOKEN};
use serde_json::{json, Value};

fn whoami(stack: &Stack, extra: &[&str]) -> anyhow::Result<(String, Vec<String>)> {
    let mut args = extra.to_vec();
    args.extend(["auth", "whoami", "-o", "json"]);
    let output = stack
        .kubectl
        .run(&args)?
        .expect_success("auth whoami")
        .map_err(|e| e.context(stack.logs()))?;
    let review = output.json()?;
    let info = &review["status"]["userInfo"];
    let user = info["username"].as_str().unwrap_or_default().to_string();
    let groups = info["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok((user, groups))
}

/// The groups the proxy asked for, without the `system:authenticated` the apiserver adds itself.
fn granted(groups: &[String]) -> Vec<&str> {
    groups
        .iter()
        .map(String::as_str)
        .filter(|g| *g != "system:authenticated")
        .collect()
}

#[test]
fn user_node_is_its_login_name_with_rule_groups_distinct_and_in_order() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    let (user, groups) = whoami(&stack, &[])?;
    assert_eq!(user, "alice@example.com");
    assert_eq!(
        granted(&groups),
        ["system:masters", "eng-admins", "viewers"]
    );
    Ok(())
}

#[test]
fn tagged_node_without_rule_groups_gets_its_tags() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("tagged-node")?))?;
    let (user, groups) = whoami(&stack, &[])?;
    assert_eq!(user, "ci-runner-7.tail1a2b3.ts.net");
    assert_eq!(granted(&groups), ["tag:ci", "tag:deployer"]);
    Ok(())
}

#[test]
fn tagged_node_with_rule_groups_gets_the_groups_not_its_tags() -> anyhow::Result<()> {
    let mut whois = fixture_caller("tagged-node")?;
    whois["CapMap"] = json!({
        "tailscale.com/cap/kubernetes": [{"impersonate": {"groups": ["deployers"]}}]
    });
    let stack = Stack::start(StackOptions::for_caller(whois))?;
    let (user, groups) = whoami(&stack, &[])?;
    assert_eq!(user, "ci-runner-7.tail1a2b3.ts.net");
    assert_eq!(granted(&groups), ["deployers"]);
    Ok(())
}

#[test]
fn legacy_capability_name_gives_its_groups() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("legacy-cap")?))?;
    let (user, groups) = whoami(&stack, &[])?;
    assert_eq!(user, "bob@example.com");
    assert_eq!(granted(&groups), ["legacy-ops"]);
    Ok(())
}

#[test]
fn callers_impersonation_and_token_never_reach_upstream() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    let (user, groups) = whoami(
        &stack,
        &[
            "--as=someone-else",
            "--as-group=system:masters",
            "--as-uid=42",
        ],
    )?;
    assert_eq!(user, "alice@example.com");
    assert_eq!(
        granted(&groups),
        ["system:masters", "eng-admins", "viewers"]
    );

    let requests = stack.upstream_requests()?;
    assert!(!requests.is_empty(), "the stand-in saw no request");
    for request in &requests {
        let text = request.to_string();
        assert!(
            !text.contains("someone-else"),
            "caller impersonation leaked: {text}"
        );
        assert!(
            !text.contains("caller-own-token"),
            "caller token leaked: {text}"
        );
        assert!(
            text.contains(&format!("Bearer {PROXY_TOKEN}")),
            "request without the proxy's credentials: {text}"
        );
        assert!(
            text.contains("alice@example.com"),
            "request not impersonating the caller: {text}"
        );
    }
    Ok(())
}
