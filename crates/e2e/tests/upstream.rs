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
fn a_rotated_token_file_is_used_once_the_proxy_rechecks_it() -> anyhow::Result<()> {
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

    // The proxy checks the file at most once a second: within that a request may still carry
    // the old token (valid for far longer), after it every request carries the new one.
    let rotated = || -> anyhow::Result<bool> {
        let user = whoami_user(&stack)?;
        anyhow::ensure!(user == "alice@example.com", "whoami said {user}");
        Ok(last_review(&stack)?["authenticatedUser"]["username"] == ROTATED_PROXY_USER)
    };
    stack.wait_until("the rotated token", rotated)?;
    for _ in 0..3 {
        anyhow::ensure!(
            rotated()?,
            "a request after the rotation went with the old token\n{}",
            stack.logs()
        );
    }
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

/// An upstream serving a self-signed `CA:TRUE` certificate (as `openssl req -x509` makes), trusted
/// through the kubeconfig's `certificate-authority`: kubectl reaches it directly, and so does the
/// proxy.
#[test]
fn a_self_signed_ca_certificate_trusted_as_itself_is_accepted() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.upstream = UpstreamAuth::TlsSelfSignedCa;
    let stack = Stack::start(options)?;
    stack
        .kubectl
        .direct(&stack.upstream_kubeconfig)
        .run(&["get", "pods"])?
        .expect_success("kubectl directly against the self-signed upstream")?;
    let output = stack
        .kubectl
        .run(&["get", "pods"])?
        .expect_success("get pods through the proxy")
        .map_err(|e| e.context(stack.logs()))?;
    assert!(output.stdout.contains("demo"), "{}", output.stdout);
    Ok(())
}

/// The same server, with the kubeconfig trusting a different self-signed certificate: refused.
#[test]
fn a_different_self_signed_certificate_is_refused() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.upstream = UpstreamAuth::TlsForeignSelfSignedCa;
    let stack = Stack::start(options)?;
    let output = stack.kubectl.run(&["get", "pods"])?;
    assert!(!output.success, "{}", output.stdout);
    assert!(
        output.stderr.contains("invalid peer certificate"),
        "kubectl should print the proxy's reason: {}",
        output.stderr
    );
    let reached: Vec<Value> = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| r["authorization"] == format!("Bearer {}", e2e::stack::PROXY_TOKEN))
        .collect();
    assert!(
        reached.is_empty(),
        "requests reached the untrusted server: {reached:?}"
    );
    Ok(())
}
