//! The LocalAPI stand-in these tests rely on answers raw requests as tailscaled does
//! (`ipn/localapi/localapi.go`): origin checks, error texts, and `type` handling for `cert`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{fixture, start};
use testkit::localapi_standin::{LocalApiStandIn, StandInOptions, WhoIsTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Sends `GET <target>` with `extra` header lines; returns the status code and the body.
async fn raw_get(socket: &Path, target: &str, extra: &str) -> (u16, String) {
    let mut stream = UnixStream::connect(socket).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

const HOST: &str = "Host: local-tailscaled.sock\r\n";

#[tokio::test]
async fn browser_requests_are_refused() {
    let mut table = WhoIsTable::new();
    table.insert("*", fixture("user-node.json"));
    let daemon = start(table).await;
    let socket = daemon.standin.socket();
    let whois = "/localapi/v0/whois?addr=100.64.0.1:1";

    assert_eq!(raw_get(socket, whois, HOST).await.0, 200);
    assert_eq!(
        raw_get(socket, whois, "").await.0,
        200,
        "no Host is accepted"
    );
    for extra in [
        format!("{HOST}Origin: https://evil.example\r\n"),
        format!("{HOST}Referer: https://evil.example/\r\n"),
        "Host: evil.example\r\n".to_owned(),
    ] {
        let (status, body) = raw_get(socket, whois, &extra).await;
        assert_eq!(
            (status, body.as_str()),
            (403, "invalid localapi request\n"),
            "{extra:?}"
        );
    }
}

#[tokio::test]
async fn whois_errors_have_tailscaled_texts() {
    let mut table = WhoIsTable::new();
    table.insert("100.64.0.1", fixture("user-node.json"));
    let daemon = start(table).await;
    let socket = daemon.standin.socket();

    let cases = [
        ("/localapi/v0/whois", 400, "missing 'addr' parameter\n"),
        (
            "/localapi/v0/whois?addr=not-an-ip",
            400,
            "invalid 'addr' parameter\n",
        ),
        (
            "/localapi/v0/whois?addr=100.64.0.2%3A80",
            404,
            "no match for IP:port\n",
        ),
        ("/localapi/v0/nope", 404, "404 page not found\n"),
    ];
    for (target, status, body) in cases {
        assert_eq!(
            raw_get(socket, target, HOST).await,
            (status, body.to_owned()),
            "{target}"
        );
    }
    // An IP without a port is looked up by IP (port 0), as tailscaled does.
    let (status, body) = raw_get(socket, "/localapi/v0/whois?addr=100.64.0.1", HOST).await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("{\n\t\"CapMap\""),
        "tab-indented like Go: {body}"
    );
}

#[tokio::test]
async fn cert_type_selects_the_parts() {
    let daemon = start(WhoIsTable::new()).await;
    let socket = daemon.standin.socket();
    let cert = "/localapi/v0/cert/proxy.tail1a2b3.ts.net";

    let (_, only_cert) = raw_get(socket, cert, HOST).await;
    let (_, only_key) = raw_get(socket, &format!("{cert}?type=key"), HOST).await;
    let (_, pair) = raw_get(socket, &format!("{cert}?type=pair"), HOST).await;
    let (status, bad) = raw_get(socket, &format!("{cert}?type=der"), HOST).await;

    assert!(
        only_cert.starts_with("-----BEGIN CERTIFICATE-----"),
        "{only_cert}"
    );
    assert!(
        only_key.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{only_key}"
    );
    assert_eq!(pair, format!("{only_key}{only_cert}"));
    assert_eq!(status, 400);
    assert_eq!(
        bad,
        "invalid type; want \"cert\" (default), \"key\", or \"pair\"\n"
    );
}

#[tokio::test]
async fn start_replaces_a_stale_socket_and_shutdown_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tailscaled.sock");
    // A socket file left behind by a process that is gone.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    let standin = LocalApiStandIn::start(&socket, WhoIsTable::new(), StandInOptions::default())
        .await
        .unwrap();
    assert_eq!(
        raw_get(&socket, "/localapi/v0/status?peers=false", HOST)
            .await
            .0,
        200
    );
    standin.shutdown().await;

    assert!(!socket.exists());
    let plain_file = dir.path().join("not-a-socket");
    std::fs::write(&plain_file, b"keep me").unwrap();
    let refused =
        LocalApiStandIn::start(&plain_file, WhoIsTable::new(), StandInOptions::default()).await;
    assert!(refused.is_err());
    assert_eq!(std::fs::read(&plain_file).unwrap(), b"keep me");
}
