//! Shared set-up for the localapi integration tests: a stand-in daemon in a temporary directory,
//! the WhoIs fixtures, and a scripted one-connection server for answers the stand-in never gives.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use localapi::LocalApiClient;
use serde_json::Value;
use tempfile::TempDir;
use testkit::localapi_standin::{LocalApiStandIn, StandInOptions, WhoIsTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::oneshot;

/// The WhoIs fixtures, `testdata/whois/` at the repository root.
pub(crate) fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/whois")
}

/// A fixture's raw bytes, e.g. `fixture_bytes("user-node.json")`.
pub(crate) fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap()
}

/// A fixture as JSON.
pub(crate) fn fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).unwrap()
}

/// A running stand-in and a client for it; the directory holding the socket lives as long as this.
pub(crate) struct Daemon {
    pub(crate) client: LocalApiClient,
    pub(crate) standin: LocalApiStandIn,
    pub(crate) dir: TempDir,
}

/// Starts a stand-in serving `table` with `options`.
pub(crate) async fn start_with(table: WhoIsTable, options: StandInOptions) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tailscaled.sock");
    let standin = LocalApiStandIn::start(&socket, table, options)
        .await
        .unwrap();
    Daemon {
        client: LocalApiClient::new(&socket),
        standin,
        dir,
    }
}

/// Starts a stand-in serving `table` with default options.
pub(crate) async fn start(table: WhoIsTable) -> Daemon {
    start_with(table, StandInOptions::default()).await
}

/// A server that accepts one connection, reads the request head, answers `response` verbatim
/// (or nothing when `None`, holding the connection open) and hands the request head back.
pub(crate) struct Scripted {
    pub(crate) client: LocalApiClient,
    pub(crate) request: oneshot::Receiver<String>,
    pub(crate) dir: TempDir,
}

pub(crate) fn scripted(response: Option<Vec<u8>>) -> Scripted {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("scripted.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let (head_tx, head_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let _ = head_tx.send(String::from_utf8(head).unwrap());
        match response {
            Some(response) => {
                // The client may stop reading early (e.g. an oversized body); that is not a failure here.
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            }
            // Keep the connection open without answering until the client gives up.
            None => {
                let _ = stream.read(&mut buf).await;
            }
        }
    });
    Scripted {
        client: LocalApiClient::new(&socket),
        request: head_rx,
        dir,
    }
}

/// An HTTP/1.1 response with `Connection: close`.
pub(crate) fn http_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}
