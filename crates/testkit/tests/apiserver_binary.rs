//! The `testkit-apiserver` binary: its one stdout line, the PKI it writes, and SIGTERM.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn serves_tls_writes_pki_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "version: v1.30.5\n\
         tokens:\n  - {token: t1, user: tester, groups: [qa]}\n\
         clientCerts:\n  - {name: proxy, user: kube-auth-proxy, groups: [proxies]}\n\
         pods:\n  - {namespace: team, name: app, containers: [a, b]}\n",
    )
    .unwrap();
    let pki = dir.path().join("pki");
    let mut child = Command::new(env!("CARGO_BIN_EXE_testkit-apiserver"))
        .args(["--listen", "127.0.0.1:0", "--tls", "--config"])
        .arg(&config)
        .arg("--pki-dir")
        .arg(&pki)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(PATIENCE, stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{line}");
    for file in ["ca.crt", "proxy.crt", "proxy.key"] {
        assert!(pki.join(file).exists(), "{file} written");
    }

    let ca = reqwest::Certificate::from_pem(&std::fs::read(pki.join("ca.crt")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let version: serde_json::Value = serde_json::from_slice(
        &client
            .get(format!("{url}/version"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(version["gitVersion"], "v1.30.5");
    let pods = client
        .get(format!("{url}/api/v1/namespaces/team/pods"))
        .bearer_auth("t1")
        .send()
        .await
        .unwrap();
    assert_eq!(pods.status(), reqwest::StatusCode::OK);
    let pods: serde_json::Value = serde_json::from_slice(&pods.bytes().await.unwrap()).unwrap();
    assert_eq!(
        pods["items"][0]["status"]["containerStatuses"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exits cleanly on SIGTERM: {status}");
    assert!(
        stdout.next_line().await.unwrap().is_none(),
        "exactly one line on stdout"
    );
}

#[tokio::test]
async fn bad_config_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "version: \"1.32\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_testkit-apiserver"))
        .arg("--config")
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`version`") && stderr.contains("\"1.32\""),
        "{stderr}"
    );
}
