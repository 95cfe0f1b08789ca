//! Attacks on connections, with a raw TLS client: hung upgrades must not hold connection slots,
//! one address must not take every slot, and a grant that changes applies to connections that
//! are already open.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use e2e::raw::{request_bytes, RawClient, WEBSOCKET_UPGRADE};
use e2e::stack::{dead_address, fixture_caller, metric_value, Stack, StackOptions};
use serde_json::json;

const EXEC: &str = "/api/v1/namespaces/default/pods/demo/exec?command=true&stdout=true&stderr=true";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn websocket_exec(extra: &[(&'static str, &'static str)]) -> Vec<u8> {
    let mut headers = WEBSOCKET_UPGRADE.to_vec();
    headers.push(("Connection", "Upgrade"));
    headers.extend_from_slice(extra);
    request_bytes("GET", EXEC, &headers, b"")
}

fn get_pods(client: &mut RawClient) -> anyhow::Result<u16> {
    client.send(&request_bytes(
        "GET",
        PODS,
        &[("Accept", "application/json")],
        b"",
    ))?;
    Ok(client.read_response()?.0.status)
}

/// An exec upgrade announcing a body it never sends used to be forwarded with its length, leaving
/// the API server waiting for the body and the caller holding a connection slot; four of them
/// locked out everyone behind `--max-connections 4`. Now each is refused at once.
#[test]
fn upgrades_announcing_a_body_are_refused_and_hold_no_slot() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions {
        proxy_args: vec!["--max-connections".into(), "4".into()],
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    for framing in [
        ("Content-Length", "10"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Length", "10"),
        ("Content-Length", "10"),
    ] {
        let mut client = RawClient::connect(&stack.proxy_url)?;
        client.send(&websocket_exec(&[framing]))?;
        let (head, body) = client.read_response()?;
        assert_eq!(
            head.status,
            400,
            "{framing:?}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            String::from_utf8_lossy(&body).contains("must not have a body"),
            "{}",
            String::from_utf8_lossy(&body)
        );
        client.close();
    }
    let mut client = RawClient::connect(&stack.proxy_url)?;
    assert_eq!(get_pods(&mut client)?, 200);
    let execs = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/exec")))
        .count();
    assert_eq!(execs, 0, "refused upgrades must not reach upstream");
    Ok(())
}

/// One address gets at most `--max-connections-per-caller` connections; further ones are closed
/// at once, and counted.
#[test]
fn one_address_cannot_take_every_connection_slot() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions {
        proxy_args: vec!["--max-connections-per-caller".into(), "2".into()],
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    let mut first = RawClient::connect(&stack.proxy_url)?;
    let _second = RawClient::connect(&stack.proxy_url)?;
    match RawClient::connect(&stack.proxy_url) {
        Err(_) => {}
        Ok(mut third) => assert!(third.is_closed_by_peer()?, "a third connection was served"),
    }
    assert_eq!(
        metric_value(
            &stack.metrics()?,
            "k8s_auth_proxy_connections_over_caller_limit"
        ),
        1
    );
    // The connections within the limit are served as usual.
    assert_eq!(get_pods(&mut first)?, 200);
    Ok(())
}

/// An upstream that accepts the connection and never answers, for the upgrade tests: each
/// connection it accepts is sent on the channel.
fn silent_upstream() -> anyhow::Result<(String, mpsc::Receiver<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if sender.send(stream).is_err() {
                return;
            }
        }
    });
    Ok((url, receiver))
}

/// Reads the proxy's request head on an upstream connection.
fn read_request_head(upstream: &mut TcpStream) -> anyhow::Result<String> {
    upstream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(upstream.read(&mut byte)? == 1, "closed inside the head");
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// An upstream that never answers an upgrade: the caller gets a 502 naming the deadline.
#[test]
fn an_upstream_that_never_answers_an_upgrade_meets_a_deadline() -> anyhow::Result<()> {
    let (url, accepted) = silent_upstream()?;
    let stack = Stack::start(StackOptions {
        upstream_override: Some(url),
        proxy_args: vec!["--upstream-handshake-timeout".into(), "1s".into()],
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    let mut client = RawClient::connect(&stack.proxy_url)?;
    client.send(&websocket_exec(&[]))?;
    let mut upstream = accepted.recv_timeout(Duration::from_secs(30))?;
    let head = read_request_head(&mut upstream)?;
    assert!(
        head.starts_with("GET /api/v1/namespaces/default/pods/demo/exec"),
        "{head}"
    );
    let (response, body) = client.read_response()?;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(response.status, 502, "{body}");
    assert!(
        body.contains("did not answer the upgrade within 1s"),
        "{body}"
    );
    Ok(())
}

/// A caller that leaves while the upstream has not answered its upgrade: the proxy notices and
/// closes the upstream connection rather than hold it (and a connection slot) until a deadline.
#[test]
fn a_caller_leaving_during_the_upgrade_frees_the_upstream_connection() -> anyhow::Result<()> {
    let (url, accepted) = silent_upstream()?;
    let stack = Stack::start(StackOptions {
        upstream_override: Some(url),
        proxy_args: vec!["--upstream-handshake-timeout".into(), "10m".into()],
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    let mut client = RawClient::connect(&stack.proxy_url)?;
    client.send(&websocket_exec(&[]))?;
    let mut upstream = accepted.recv_timeout(Duration::from_secs(30))?;
    read_request_head(&mut upstream)?;
    client.close();
    // Far shorter than the handshake deadline: only noticing the caller's departure ends it.
    let mut rest = [0u8; 64];
    match upstream.read(&mut rest) {
        Ok(0) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Ok(n) => anyhow::bail!("unexpected bytes upstream: {:?}", &rest[..n]),
        Err(error) => Err(anyhow::anyhow!(
            "the upstream connection stayed open after the caller left: {error}"
        )),
    }
}

/// A grant changed in the tailnet applies to the next request on a connection that is already
/// open: an upgrade after recording became enforced (with no reachable recorder) is refused, and
/// a request after the caller was removed is unauthorised.
#[test]
fn a_changed_grant_applies_to_an_open_connection() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions {
        proxy_args: vec!["--identity-ttl".into(), "0s".into()],
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    let mut client = RawClient::connect(&stack.proxy_url)?;
    assert_eq!(get_pods(&mut client)?, 200);

    let mut table = stack.whois_table()?;
    let rule = json!({"recorderAddrs": [dead_address()?], "enforceRecorder": true});
    for whois in table
        .as_object_mut()
        .into_iter()
        .flat_map(|t| t.values_mut())
    {
        let caps = &mut whois["CapMap"]["tailscale.com/cap/kubernetes"];
        match caps.as_array_mut() {
            Some(rules) => rules.push(rule.clone()),
            None => *caps = json!([rule.clone()]),
        }
    }
    stack.set_whois_table(&table)?;
    client.send(&websocket_exec(&[]))?;
    let (head, body) = client.read_response()?;
    assert_eq!(
        head.status,
        403,
        "an upgrade on the old grant: {}",
        String::from_utf8_lossy(&body)
    );
    let execs = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/exec")))
        .count();
    assert_eq!(execs, 0, "the refused session reached upstream");

    stack.set_whois_table(&json!({}))?;
    assert_eq!(get_pods(&mut client)?, 401, "a revoked caller kept access");
    Ok(())
}
