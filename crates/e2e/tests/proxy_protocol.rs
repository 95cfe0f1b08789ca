//! `--proxy-protocol`: behind an L4 forwarder the caller is the address in the forwarder's PROXY
//! protocol header (v1 or v2), whois is asked about that address, and a header is believed only
//! from `--proxy-protocol-from`. Raw clients play the forwarder (kubectl cannot speak the PROXY
//! protocol): every connection comes from 127.0.0.1, and the whois table knows only tailnet
//! addresses, so a request is served only if the header's address is the one asked about.

use e2e::raw::{closed_without_answer, request_bytes, RawClient};
use e2e::stack::{fixture_caller, metric_value, Stack, StackOptions};
use serde_json::{json, Value};

const PODS: &str = "/api/v1/namespaces/default/pods";
/// The user-node fixture's tailnet addresses, and who it is upstream.
const ALICE_V4: &str = "100.101.102.103";
const ALICE_V6: &str = "fd7a:115c:a1e0::9f01:6667";
const ALICE: &str = "alice@example.com";
/// The tagged-node fixture's address, and who it is upstream.
const CI_V4: &str = "100.77.12.34";
const CI: &str = "ci-runner-7.tail1a2b3.ts.net";

/// A stack behind a forwarder trusted in `from`, whose whois table knows alice and the CI node by
/// their tailnet addresses only (not 127.0.0.1).
fn stack(from: &str, extra: &[&str]) -> anyhow::Result<Stack> {
    let mut proxy_args: Vec<String> = ["--proxy-protocol", "--proxy-protocol-from", from]
        .iter()
        .map(|s| s.to_string())
        .collect();
    proxy_args.extend(extra.iter().map(|s| s.to_string()));
    let alice = fixture_caller("user-node")?;
    Stack::start(StackOptions {
        whois: json!({
            ALICE_V4: alice.clone(),
            ALICE_V6: alice,
            CI_V4: fixture_caller("tagged-node")?,
        }),
        proxy_args,
        ..StackOptions::for_caller(Value::Null)
    })
}

fn v1(source: &str, port: u16) -> Vec<u8> {
    let family = if source.contains(':') { "TCP6" } else { "TCP4" };
    let destination = if source.contains(':') {
        "::1"
    } else {
        "127.0.0.1"
    };
    format!("PROXY {family} {source} {destination} {port} 443\r\n").into_bytes()
}

/// A v2 PROXY header over TCP/IPv4, with a NOOP TLV the proxy must skip.
fn v2(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11]);
    header.extend_from_slice(&(12u16 + 5).to_be_bytes());
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&443u16.to_be_bytes());
    header.extend_from_slice(&[0x04, 0x00, 0x02, b'a', b'b']);
    header
}

/// GET pods on a connection that starts with `header`: the status, and the impersonated user
/// upstream saw for it (`None` when nothing reached upstream).
fn get_pods(stack: &Stack, header: &[u8]) -> anyhow::Result<(u16, Option<Value>)> {
    let before = stack.upstream_requests()?.len();
    let mut client = RawClient::connect_with_preamble(&stack.proxy_url, header)?;
    client.send(&request_bytes(
        "GET",
        PODS,
        &[("Accept", "application/json")],
        b"",
    ))?;
    let (head, _) = client.read_response()?;
    let requests = stack.upstream_requests()?;
    let upstream = requests
        .into_iter()
        .skip(before)
        .rev()
        .find(|r| r["path"].as_str().is_some_and(|p| p.starts_with(PODS)));
    Ok((head.status, upstream))
}

fn refused(stack: &Stack, reason: &str) -> anyhow::Result<u64> {
    Ok(metric_value(
        &stack.metrics()?,
        &format!("k8s_auth_proxy_proxy_protocol_refused{{reason=\"{reason}\"}}"),
    ))
}

#[test]
fn whois_is_asked_about_the_address_in_a_v1_or_v2_header() -> anyhow::Result<()> {
    let stack = stack("127.0.0.0/8", &[])?;
    for (what, header, user) in [
        ("v1 TCP4", v1(ALICE_V4, 50123), ALICE),
        ("v1 TCP6", v1(ALICE_V6, 50124), ALICE),
        ("v2 TCP4", v2([100, 101, 102, 103], 50125), ALICE),
        ("v1 TCP4, another caller", v1(CI_V4, 50126), CI),
        ("v2 TCP4, another caller", v2([100, 77, 12, 34], 50127), CI),
    ] {
        let (status, upstream) = get_pods(&stack, &header)?;
        assert_eq!(status, 200, "{what}\n{}", stack.logs());
        let upstream = upstream.unwrap_or_else(|| panic!("{what}: nothing reached upstream"));
        assert_eq!(upstream["impersonateUser"], user, "{what}: {upstream}");
    }
    // The connection's own address (127.0.0.1) is not whom whois is asked about: an address in
    // the header that the tailnet does not know is unauthorised, and nothing goes upstream.
    let (status, upstream) = get_pods(&stack, &v1("100.64.0.99", 50128))?;
    assert_eq!(status, 401);
    assert!(upstream.is_none(), "{upstream:?}");
    Ok(())
}

#[test]
fn a_missing_or_malformed_header_closes_the_connection_without_an_answer() -> anyhow::Result<()> {
    let stack = stack("127.0.0.0/8", &["--header-timeout", "2s"])?;
    // No header: the client's TLS handshake is refused.
    assert!(RawClient::connect(&stack.proxy_url).is_err());
    let malformed: [&[u8]; 6] = [
        // A request where the header should be.
        b"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n\r\n",
        // Fields missing, leading zeros, a lone LF, a v2 header with a bad version.
        b"PROXY TCP4 100.101.102.103 127.0.0.1 50123\r\n",
        b"PROXY TCP4 100.101.102.103 127.0.0.1 050123 443\r\n",
        b"PROXY TCP4 100.101.102.103 127.0.0.1 50123 443\n",
        b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c\x64\x65\x66\x67\x7f\x00\x00\x01\x00\x01\x01\xbb",
        // A client address the header does not name (v1 UNKNOWN) is not served either.
        b"PROXY UNKNOWN\r\n",
    ];
    for bytes in malformed {
        closed_without_answer(&stack.proxy_url, bytes)
            .map_err(|e| anyhow::anyhow!("{:?}: {e}", String::from_utf8_lossy(bytes)))?;
    }
    // Half a header, then nothing: closed once --header-timeout has passed.
    let started = std::time::Instant::now();
    closed_without_answer(&stack.proxy_url, b"PROXY TCP4 100.101.102.103 ")?;
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500));
    assert_eq!(
        refused(&stack, "invalid_header")?,
        6,
        "{}",
        stack.metrics()?
    );
    assert_eq!(refused(&stack, "unknown_client")?, 1);
    assert_eq!(refused(&stack, "timeout")?, 1);
    let forwarded = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| !r["impersonateUser"].is_null())
        .count();
    assert_eq!(forwarded, 0, "a refused connection reached upstream");
    Ok(())
}

#[test]
fn a_header_from_an_untrusted_source_is_refused() -> anyhow::Result<()> {
    // Loopback, where the test connects from, is not a trusted forwarder here.
    let stack = stack("10.0.0.0/8", &[])?;
    for header in [v1(ALICE_V4, 50123), v2([100, 101, 102, 103], 50124)] {
        assert!(
            RawClient::connect_with_preamble(&stack.proxy_url, &header).is_err(),
            "a connection from an untrusted source completed TLS"
        );
        closed_without_answer(&stack.proxy_url, &header)?;
    }
    assert_eq!(refused(&stack, "untrusted_source")?, 4);
    let forwarded = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| !r["impersonateUser"].is_null())
        .count();
    assert_eq!(forwarded, 0, "an untrusted header reached upstream");
    Ok(())
}

/// Every connection comes from the forwarder's address; the per-caller limit counts the
/// header's address instead, so one caller cannot take the slots of the others.
#[test]
fn the_per_caller_limit_counts_the_address_in_the_header() -> anyhow::Result<()> {
    let stack = stack("127.0.0.0/8", &["--max-connections-per-caller", "1"])?;
    let _alice = RawClient::connect_with_preamble(&stack.proxy_url, &v1(ALICE_V4, 50123))?;
    match RawClient::connect_with_preamble(&stack.proxy_url, &v1(ALICE_V4, 50124)) {
        Err(_) => {}
        Ok(mut second) => assert!(
            second.is_closed_by_peer()?,
            "a second connection was served"
        ),
    }
    assert_eq!(
        metric_value(
            &stack.metrics()?,
            "k8s_auth_proxy_connections_over_caller_limit"
        ),
        1
    );
    let (status, upstream) = get_pods(&stack, &v2([100, 77, 12, 34], 50125))?;
    assert_eq!(status, 200, "{}", stack.logs());
    assert_eq!(
        upstream.map(|u| u["impersonateUser"].clone()),
        Some(json!(CI))
    );
    Ok(())
}
