//! The proxy's own way to the upstream: TLS with the kubeconfig's CA, client certificates, token files
//! that rotate, and what noauth mode withholds.

use e2e::stack::{
    fixture_caller, Stack, StackOptions, UpstreamAuth, CALLER_TOKEN, CALLER_TOKEN_USER,
    PROXY_CERT_USER, ROTATED_PROXY_TOKEN, ROTATED_PROXY_USER,
};
use serde_json::Value;

fn whoami_user(stack: &Stack) -> anyhow::Result<String> {
    let output = stack
        .kubectl
        .run(&["auth", "whoami", "-o", "json"])?
        .expect_success("whoami")
        .map_err(|e| e.context(stack.logs()))?;
    Ok(output.json()?["status"]["userInfo"]["username"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

fn last_review(stack: &Stack) -> anyhow::Result<Value> {
    stack
        .upstream_requests()?
        .into_iter()
        .rev()
        .find(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("selfsubjectreviews"))
        })
        .ok_or_else(|| anyhow::anyhow!("no SelfSubjectReview reached upstream"))
}

#[test]
fn client_certificate_files_over_tls_authenticate_the_proxy() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.upstream = UpstreamAuth::TlsClientCertFiles;
    let stack = Stack::start(options)?;
    assert_eq!(whoami_user(&stack)?, "alice@example.com");
    let review = last_review(&stack)?;
    assert_eq!(review["clientCertificate"], true, "{review}");
    assert_eq!(
        review["authenticatedUser"]["username"], PROXY_CERT_USER,
        "{review}"
    );
    assert!(review["authorization"].is_null(), "{review}");
    Ok(())
}

#[test]
fn a_rotated_token_file_is_used_on_the_next_request() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.upstream = UpstreamAuth::TlsCaDataTokenFile;
    let stack = Stack::start(options)?;
    assert_eq!(whoami_user(&stack)?, "alice@example.com");
    assert_ne!(
        last_review(&stack)?["authenticatedUser"]["username"],
        ROTATED_PROXY_USER
    );

    // Rotate the way the kubelet does: write a new file and rename it over the old one.
    let next = stack.dir.join("proxy.token.next");
    std::fs::write(&next, ROTATED_PROXY_TOKEN)?;
    std::fs::rename(&next, &stack.token_file)?;

    assert_eq!(whoami_user(&stack)?, "alice@example.com");
    let review = last_review(&stack)?;
    assert_eq!(
        review["authenticatedUser"]["username"], ROTATED_PROXY_USER,
        "{review}"
    );
    Ok(())
}

#[test]
fn noauth_presents_no_client_certificate_of_its_own() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.upstream = UpstreamAuth::TlsClientCertFiles;
    options.mode = "noauth".into();
    let stack = Stack::start(options)?;
    assert_eq!(whoami_user(&stack)?, CALLER_TOKEN_USER);
    // Requests that came through the proxy carry the caller's token (nothing else has it).
    let through_proxy: Vec<Value> = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| r["authorization"] == format!("Bearer {CALLER_TOKEN}"))
        .collect();
    assert!(!through_proxy.is_empty());
    for request in through_proxy {
        assert_eq!(request["clientCertificate"], false, "{request}");
        assert!(request["impersonateUser"].is_null(), "{request}");
    }
    Ok(())
}
