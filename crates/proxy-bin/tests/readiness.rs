//! `/readyz` depends on tailscaled's LocalAPI only when tailscaled is an identity source: a proxy
//! that identifies callers by client certificate alone is ready without it.

use clap::Parser as _;
use testkit::apiserver::{ApiServer, ApiServerConfig, ServeOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn readyz(identity: &str) -> (u16, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ApiServerConfig::from_yaml_str(include_str!("fixtures/apiserver.yaml"))
        .expect("apiserver config");
    let apiserver = ApiServer::start(config, ServeOptions::default())
        .await
        .expect("apiserver");
    let kubeconfig = dir.path().join("upstream.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: {}\n\
             users:\n- name: u\n  user:\n    token: proxy-token\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n",
            apiserver.url()
        ),
    )
    .expect("kubeconfig");
    let ca = rcgen::generate_simple_self_signed(vec!["test-ca".into()]).expect("CA");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert.pem()).expect("CA file");
    // No tailscaled at all: nothing listens on this socket.
    let socket = dir.path().join("no-tailscaled.sock");
    let mut args = vec![
        "kube-auth-proxy".to_owned(),
        "--listen=127.0.0.1:0".into(),
        "--metrics-listen=127.0.0.1:0".into(),
        "--tls-self-signed".into(),
        "--mode=auth".into(),
        format!("--upstream-kubeconfig={}", kubeconfig.display()),
        format!("--localapi-socket={}", socket.display()),
        format!("--identity={identity}"),
    ];
    if identity.contains("client-cert") {
        args.push(format!("--client-ca={}", ca_file.display()));
        args.push("--policy-default-allow".into());
    }
    let cli = kube_auth_proxy::Cli::try_parse_from(args).expect("flags");
    let proxy = kube_auth_proxy::start(cli).await.expect("proxy starts");
    let mut stream = tokio::net::TcpStream::connect(proxy.metrics_listen())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    proxy.shutdown().await;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn a_proxy_without_tailscaled_as_a_source_is_ready_without_it() {
    let (status, answer) = readyz("client-cert").await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_proxy_that_asks_tailscaled_is_not_ready_without_it() {
    let (status, answer) = readyz("tailscale").await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("identity source"), "{answer}");
}
