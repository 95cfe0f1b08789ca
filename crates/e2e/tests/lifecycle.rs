//! The proxy's own life: TLS sources, slow clients, shutdown.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use e2e::stack::{fixture_caller, Stack, StackOptions};

const DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn sigterm_drains_in_flight_requests_then_exits_cleanly() -> anyhow::Result<()> {
    let mut stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    let mut watch = stack.kubectl.spawn_lines(&["get", "pods", "-w"])?;
    watch.wait_for("demo", DEADLINE)?;

    stack.proxy.signal_terminate()?;
    stack.proxy.wait_for_line("shutting down", DEADLINE)?;
    // The watch that was in flight is still served...
    stack.add_pod("default", "after-sigterm")?;
    watch.wait_for("after-sigterm", DEADLINE)?;
    // ...but new connections are not accepted.
    let refused = stack
        .kubectl
        .run(&["get", "pods", "--request-timeout=10s"])?;
    assert!(!refused.success, "a new request was served after SIGTERM");
    // Once the last client leaves, the proxy exits successfully.
    drop(watch);
    let status = stack.proxy.wait()?;
    assert!(
        status.success(),
        "proxy exited with {status}:\n{}",
        stack.logs()
    );
    Ok(())
}

#[test]
fn a_client_that_sends_nothing_is_disconnected() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.proxy_args = vec!["--header-timeout".into(), "1s".into()];
    let stack = Stack::start(options)?;
    let address = stack.proxy_url.trim_start_matches("https://");
    let mut idle = TcpStream::connect(address)?;
    idle.set_read_timeout(Some(DEADLINE))?;
    // No TLS handshake is ever sent: the proxy must close the connection rather than hold a slot.
    let mut buffer = [0u8; 64];
    let read = idle.read(&mut buffer);
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected the proxy to close the idle connection, got {read:?}"
    );
    let metrics = stack.metrics()?;
    assert!(
        metrics.contains("k8s_auth_proxy_tls_handshake_failures 1"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn serves_the_certificate_tailscaled_issues() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.tls = e2e::stack::ServingTls::FromTailscale;
    let stack = Stack::start(options)?;
    // The LocalAPI stand-in issues a certificate for proxy.tail1a2b3.ts.net; kubectl verifies it against
    // that certificate when told to expect that name.
    let output = stack
        .kubectl
        .run(&["get", "pods"])?
        .expect_success("get pods over the tailscaled certificate")?;
    assert!(output.stdout.contains("demo"));
    Ok(())
}
