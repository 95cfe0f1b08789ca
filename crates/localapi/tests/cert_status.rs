//! `LocalApiClient::cert_pair` and `LocalApiClient::status` against the LocalAPI stand-in.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::IpAddr;

use common::{start, start_with};
use localapi::LocalApiError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use testkit::localapi_standin::{StandInOptions, WhoIsTable};

#[tokio::test]
async fn cert_pair_is_a_key_and_a_matching_certificate() {
    let daemon = start(WhoIsTable::new()).await;

    let pair = daemon
        .client
        .cert_pair("proxy.tail1a2b3.ts.net")
        .await
        .unwrap();

    let key = PrivateKeyDer::from_pem_slice(&pair.key_pem).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pair.cert_pem)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(certs.len(), 1);
    assert!(certs[0]
        .windows(b"proxy.tail1a2b3.ts.net".len())
        .any(|w| w == b"proxy.tail1a2b3.ts.net"));
    // rustls checks that the key belongs to the certificate.
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();

    // The stand-in issues once per domain, as tailscaled caches its certificate.
    let again = daemon
        .client
        .cert_pair("proxy.tail1a2b3.ts.net")
        .await
        .unwrap();
    assert_eq!(again, pair);
}

#[tokio::test]
async fn cert_for_a_foreign_domain_carries_the_daemon_reason() {
    let daemon = start(WhoIsTable::new()).await;

    let err = daemon
        .client
        .cert_pair("evil.example.com")
        .await
        .unwrap_err();

    match err {
        LocalApiError::Http {
            status: 500,
            message,
        } => {
            assert!(
                message.starts_with("invalid domain \"evil.example.com\""),
                "{message}"
            );
        }
        other => panic!("want Http 500, got {other:?}"),
    }
}

#[tokio::test]
async fn status_reports_self_and_cert_domains() {
    let options = StandInOptions {
        dns_name: "kube.tail9z.ts.net.".to_owned(),
        cert_domains: vec!["kube.tail9z.ts.net".to_owned()],
        tailscale_ips: vec![
            "100.80.0.1".parse().unwrap(),
            "fd7a:115c:a1e0::51".parse().unwrap(),
        ],
        ..StandInOptions::default()
    };
    let daemon = start_with(WhoIsTable::new(), options).await;

    let status = daemon.client.status().await.unwrap();

    assert_eq!(status.backend_state, "Running");
    assert!(status.is_running());
    assert_eq!(status.cert_domains, ["kube.tail9z.ts.net"]);
    let me = status.self_status.unwrap();
    assert_eq!(me.dns_name, "kube.tail9z.ts.net.");
    assert_eq!(
        me.tailscale_ips,
        [
            "100.80.0.1".parse::<IpAddr>().unwrap(),
            "fd7a:115c:a1e0::51".parse().unwrap()
        ]
    );
}

#[tokio::test]
async fn status_without_cert_domains_reads_null_as_empty() {
    let options = StandInOptions {
        cert_domains: Vec::new(),
        ..StandInOptions::default()
    };
    let daemon = start_with(WhoIsTable::new(), options).await;

    let status = daemon.client.status().await.unwrap();
    assert!(status.cert_domains.is_empty());

    let err = daemon
        .client
        .cert_pair("proxy.tail1a2b3.ts.net")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LocalApiError::Http { status: 500, message } if message.contains("does not support getting TLS certs")),
        "{err:?}"
    );
}
