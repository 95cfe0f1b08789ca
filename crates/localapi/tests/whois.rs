//! `LocalApiClient::whois` against the LocalAPI stand-in.
#![allow(clippy::unwrap_used)]

mod common;

use common::{fixture, fixture_bytes, fixtures_dir, start};
use localapi::LocalApiError;
use serde_json::json;
use testkit::localapi_standin::WhoIsTable;

const ALICE: &str = "100.101.102.103:52341";

#[tokio::test]
async fn whois_returns_the_alice_fixture() {
    let mut table = WhoIsTable::new();
    table.insert(ALICE, fixture("user-node.json"));
    let daemon = start(table).await;

    let who = daemon.client.whois(ALICE.parse().unwrap()).await.unwrap();

    assert_eq!(
        who,
        capmodel::WhoIs::from_json(&fixture_bytes("user-node.json")).unwrap()
    );
    assert_eq!(who.user_profile.login_name, "alice@example.com");
    assert_eq!(who.node.name, "alice-laptop.tail1a2b3.ts.net.");
    assert_eq!(who.cap_map["tailscale.com/cap/kubernetes"].len(), 2);
    daemon.standin.shutdown().await;
}

#[tokio::test]
async fn whois_falls_back_to_star() {
    let mut table = WhoIsTable::new();
    table.insert(ALICE, fixture("user-node.json"));
    table.insert("*", fixture("tagged-node.json"));
    let daemon = start(table).await;

    let who = daemon
        .client
        .whois("100.77.12.34:40000".parse().unwrap())
        .await
        .unwrap();

    assert!(who.node.is_tagged());
    assert_eq!(who.node.tags, ["tag:ci", "tag:deployer"]);
    assert_eq!(who.user_profile.login_name, "tagged-devices");
}

#[tokio::test]
async fn unknown_peer_is_its_own_error() {
    let mut table = WhoIsTable::new();
    table.insert(ALICE, fixture("user-node.json"));
    let daemon = start(table).await;
    let addr = "100.64.9.9:443".parse().unwrap();

    let err = daemon.client.whois(addr).await.unwrap_err();

    match err {
        LocalApiError::UnknownPeer { addr: got, message } => {
            assert_eq!(got, addr);
            assert_eq!(message, "no match for IP:port");
        }
        other => panic!("want UnknownPeer, got {other:?}"),
    }
}

#[tokio::test]
async fn ipv6_address_is_escaped_and_reaches_the_ip_entry() {
    let mut table = WhoIsTable::new();
    table.insert("fd7a::1", fixture("user-node.json"));
    table.insert("[fd7a::2]:443", fixture("tagged-node.json"));
    let daemon = start(table).await;

    let by_ip = daemon
        .client
        .whois("[fd7a::1]:443".parse().unwrap())
        .await
        .unwrap();
    let exact = daemon
        .client
        .whois("[fd7a::2]:443".parse().unwrap())
        .await
        .unwrap();

    assert_eq!(by_ip.user_profile.login_name, "alice@example.com");
    assert!(exact.node.is_tagged());
}

#[tokio::test]
async fn ipv6_query_is_escaped_like_go_query_escape() {
    let scripted = common::scripted(Some(common::http_response(
        "404 Not Found",
        "text/plain; charset=utf-8",
        b"no match for IP:port\n",
    )));

    let err = scripted
        .client
        .whois("[fd7a::1]:443".parse().unwrap())
        .await
        .unwrap_err();

    assert!(matches!(err, LocalApiError::UnknownPeer { .. }), "{err:?}");
    let head = scripted.request.await.unwrap();
    assert!(
        head.starts_with("GET /localapi/v0/whois?addr=%5Bfd7a%3A%3A1%5D%3A443 HTTP/1.1\r\n"),
        "{head}"
    );
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("\r\nhost: local-tailscaled.sock\r\n"),
        "{head}"
    );
    assert!(
        !head.contains("\r\norigin:") && !head.contains("\r\nreferer:"),
        "{head}"
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_whois_is_malformed() {
    let mut table = WhoIsTable::new();
    table.insert("*", json!("not a whois"));
    table.insert(
        "100.64.0.1",
        json!({"Node": "not an object", "UserProfile": {}}),
    );
    let daemon = start(table).await;

    for addr in ["100.64.0.2:1", "100.64.0.1:1"] {
        let err = daemon
            .client
            .whois(addr.parse().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, LocalApiError::Malformed(_)),
            "{addr}: {err:?}"
        );
    }
}

#[tokio::test]
async fn table_file_references_fixture_files() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = fixtures_dir();
    let table_path = dir.path().join("whois.yaml");
    std::fs::write(
        &table_path,
        format!(
            "{ALICE}: {}\n\"*\": {}\n",
            fixtures.join("user-node.json").display(),
            fixtures.join("legacy-cap.json").display()
        ),
    )
    .unwrap();
    let daemon = start(WhoIsTable::from_file(&table_path).unwrap()).await;

    let alice = daemon.client.whois(ALICE.parse().unwrap()).await.unwrap();
    let bob = daemon
        .client
        .whois("100.64.0.7:1".parse().unwrap())
        .await
        .unwrap();

    assert_eq!(alice.user_profile.login_name, "alice@example.com");
    assert_eq!(bob.user_profile.login_name, "bob@example.com");
}
