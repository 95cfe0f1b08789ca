//! How `LocalApiClient` reports a missing, refusing, slow or misbehaving daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{http_response, scripted};
use localapi::{LocalApiClient, LocalApiError, MAX_RESPONSE_BYTES};

#[tokio::test]
async fn missing_socket_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody-here.sock");

    let err = LocalApiClient::new(&socket).status().await.unwrap_err();

    match err {
        LocalApiError::Unreachable {
            socket: got,
            source,
        } => {
            assert_eq!(got, socket);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("want Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_daemon_times_out() {
    let scripted = scripted(None);
    let client = scripted
        .client
        .clone()
        .with_timeout(Duration::from_millis(200));

    let err = client.status().await.unwrap_err();

    assert!(matches!(err, LocalApiError::Timeout), "{err:?}");
    assert!(scripted
        .request
        .await
        .unwrap()
        .starts_with("GET /localapi/v0/status?peers=false "));
}

#[tokio::test]
async fn forbidden_is_access_denied_with_the_reason() {
    let scripted = scripted(Some(http_response(
        "403 Forbidden",
        "text/plain; charset=utf-8",
        b"whois access denied\n",
    )));

    let err = scripted
        .client
        .whois("100.64.0.1:1".parse().unwrap())
        .await
        .unwrap_err();

    assert!(
        matches!(&err, LocalApiError::AccessDenied(m) if m == "whois access denied"),
        "{err:?}"
    );
}

#[tokio::test]
async fn json_error_bodies_are_read() {
    let scripted = scripted(Some(http_response(
        "503 Service Unavailable",
        "application/json",
        br#"{"error":"backend not running"}"#,
    )));

    let err = scripted.client.status().await.unwrap_err();

    assert!(
        matches!(&err, LocalApiError::Http { status: 503, message } if message == "backend not running"),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_malformed() {
    let body = vec![b' '; MAX_RESPONSE_BYTES + 1];
    let scripted = scripted(Some(http_response("200 OK", "application/json", &body)));

    let err = scripted.client.status().await.unwrap_err();

    assert!(
        matches!(&err, LocalApiError::Malformed(m) if m.contains("exceeds")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_broken_exchange_is_malformed() {
    let scripted = scripted(Some(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"trunc".to_vec(),
    ));

    let err = scripted.client.status().await.unwrap_err();

    assert!(matches!(err, LocalApiError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn a_cert_body_without_a_key_is_malformed() {
    let cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let scripted = scripted(Some(http_response("200 OK", "text/plain", cert)));

    let err = scripted
        .client
        .cert_pair("proxy.tail1a2b3.ts.net")
        .await
        .unwrap_err();

    assert!(
        matches!(&err, LocalApiError::Malformed(m) if m.contains("private key")),
        "{err:?}"
    );
}
