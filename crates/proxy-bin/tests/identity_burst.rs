//! A burst of new connections from one address against a LocalAPI whose accept backlog is small:
//! every connection asks who it is at once, tailscaled's socket refuses some connects with
//! `EAGAIN` for a moment, and no request may turn that into a refusal.

#![allow(clippy::unwrap_used)]

mod support;

use support::{read_response, request, whois, Grant, Harness};
use testkit::localapi_standin::StandInOptions;
use tokio::io::AsyncWriteExt;

const CONNECTIONS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_new_connections_at_once_are_all_identified() {
    let harness = std::sync::Arc::new(
        Harness::start_with(
            Some(whois("user-node")),
            Grant::Unrecorded,
            StandInOptions {
                accept_backlog: 8,
                ..StandInOptions::default()
            },
        )
        .await,
    );
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(CONNECTIONS));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let harness = harness.clone();
            let start = start.clone();
            tokio::spawn(async move {
                let mut client = harness.connect().await;
                start.wait().await;
                client
                    .write_all(&request(
                        "GET",
                        "/api/v1/namespaces/default/pods/demo",
                        &[("Connection", "close")],
                        b"",
                    ))
                    .await
                    .unwrap();
                let (status, _, body) = read_response(&mut client).await;
                (status, String::from_utf8_lossy(&body).into_owned())
            })
        })
        .collect();
    let mut refused = Vec::new();
    for client in clients {
        let (status, body) = client.await.unwrap();
        if status != 200 {
            refused.push((status, body));
        }
    }
    assert!(
        refused.is_empty(),
        "{} of {CONNECTIONS} requests refused, e.g. {:?}",
        refused.len(),
        refused.first()
    );
}
