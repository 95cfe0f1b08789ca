//! Attacks on the headers the proxy sends upstream, with a raw TLS client (kubectl cannot send
//! these): whatever a caller puts in `Connection`, `Sec-WebSocket-Protocol` or look-alike header
//! names, upstream sees exactly the caller's impersonation and the proxy's own credential.

use e2e::raw::{request_bytes, RawClient, WEBSOCKET_UPGRADE};
use e2e::stack::{fixture_caller, Stack, StackOptions, PROXY_TOKEN};
use serde_json::Value;

const REVIEW: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
const EXEC: &str = "/api/v1/namespaces/default/pods/demo/exec?command=true&stdout=true&stderr=true";

/// The caller of the user-node fixture, as upstream must see it.
const ALICE: &str = "alice@example.com";
const ALICE_GROUPS: [&str; 3] = ["system:masters", "eng-admins", "viewers"];

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The last request upstream saw for a path starting with `prefix`.
fn last_upstream(stack: &Stack, prefix: &str) -> anyhow::Result<Value> {
    stack
        .upstream_requests()?
        .into_iter()
        .rev()
        .find(|r| r["path"].as_str().is_some_and(|p| p.starts_with(prefix)))
        .ok_or_else(|| anyhow::anyhow!("no upstream request for {prefix}"))
}

/// Upstream got the caller's impersonation and the proxy's token, nothing else.
fn assert_impersonated(request: &Value, what: &str) {
    assert_eq!(request["impersonateUser"], ALICE, "{what}: {request}");
    assert_eq!(
        strings(&request["impersonateGroups"]),
        ALICE_GROUPS,
        "{what}: {request}"
    );
    assert_eq!(
        request["authorization"],
        format!("Bearer {PROXY_TOKEN}"),
        "{what}: {request}"
    );
}

#[test]
fn connection_header_cannot_remove_the_proxys_impersonation() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    let body = br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
    for connection in [
        "close, Impersonate-User, Impersonate-Group",
        "keep-alive, impersonate-group",
        "Authorization, Impersonate-User",
    ] {
        let mut client = RawClient::connect(&stack.proxy_url)?;
        client.send(&request_bytes(
            "POST",
            REVIEW,
            &[
                ("Connection", connection),
                ("Content-Type", "application/json"),
                ("Accept", "application/json"),
            ],
            body,
        ))?;
        let (head, body) = client.read_response()?;
        assert_eq!(
            head.status,
            201,
            "{connection}: {}",
            String::from_utf8_lossy(&body)
        );
        let review: Value = serde_json::from_slice(&body)?;
        let user = &review["status"]["userInfo"];
        assert_eq!(user["username"], ALICE, "{connection}: acted as {user}");
        let groups = strings(&user["groups"]);
        for group in ALICE_GROUPS {
            assert!(
                groups.iter().any(|g| g == group),
                "{connection}: {groups:?}"
            );
        }
        assert_impersonated(&last_upstream(&stack, REVIEW)?, connection);
    }
    Ok(())
}

#[test]
fn connection_header_cannot_remove_impersonation_from_an_exec_upgrade() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    let mut headers = WEBSOCKET_UPGRADE.to_vec();
    headers.push(("Connection", "Upgrade, Impersonate-User, Impersonate-Group"));
    let mut client = RawClient::connect(&stack.proxy_url)?;
    client.send(&request_bytes("GET", EXEC, &headers, b""))?;
    let head = client.read_head()?;
    assert_eq!(head.status, 101, "{head:?}");
    assert_impersonated(
        &last_upstream(&stack, "/api/v1/namespaces/default/pods/demo/exec")?,
        "exec upgrade",
    );
    client.close();
    Ok(())
}

#[test]
fn caller_tokens_and_look_alike_identity_headers_never_reach_upstream() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    let mut headers = WEBSOCKET_UPGRADE.to_vec();
    headers.retain(|(name, _)| *name != "Sec-WebSocket-Protocol");
    headers.extend([
        ("Connection", "Upgrade"),
        (
            "Sec-WebSocket-Protocol",
            "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.Y2FsbGVyLW93bi10b2tlbg",
        ),
        (
            "Sec-WebSocket-Protocol",
            "Base64url.Bearer.Authorization.k8s.io.eA",
        ),
        ("Impersonate_User", "system:admin"),
        ("Impersonate_Group", "system:masters"),
        ("X_Remote_User", "system:admin"),
        ("X-Remote-Group", "system:masters"),
    ]);
    let mut client = RawClient::connect(&stack.proxy_url)?;
    client.send(&request_bytes("GET", EXEC, &headers, b""))?;
    let head = client.read_head()?;
    assert_eq!(head.status, 101, "{head:?}");
    let upstream = last_upstream(&stack, "/api/v1/namespaces/default/pods/demo/exec")?;
    assert_impersonated(&upstream, "exec upgrade");
    assert_eq!(
        strings(&upstream["websocketProtocols"]),
        ["v5.channel.k8s.io"],
        "the caller's bearer subprotocols must be gone: {upstream}"
    );
    let names = strings(&upstream["headerNames"]);
    for name in [
        "impersonate_user",
        "impersonate_group",
        "x_remote_user",
        "x-remote-group",
    ] {
        assert!(
            !names.iter().any(|n| n == name),
            "{name} reached upstream: {names:?}"
        );
    }
    client.close();
    Ok(())
}
