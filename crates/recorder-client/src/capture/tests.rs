//! Captures uploaded to a real kube-recorder, over v2 and v1, and how they end.

use std::net::SocketAddr;
use std::time::Duration;

use castfmt::{
    Caller, CaptureConnection, CaptureDirection, CaptureEvent, CapturedPod,
    PortForwardCaptureHeader,
};
use recorder_server::{RecorderServer, RecordingKind, ServerOptions};

use super::*;
use crate::{RecorderConfig, UploadError};

fn header(request_id: &str) -> PortForwardCaptureHeader {
    PortForwardCaptureHeader::new(
        "session-1".into(),
        1_700_000_000,
        Caller::User {
            node: "laptop.ts.net.".into(),
            node_id: "nL".into(),
            login_name: "alice@example.com".into(),
            user_id: 7,
        },
        CapturedPod {
            pod_name: "db".into(),
            namespace: "prod".into(),
        },
        CaptureConnection {
            request_id: request_id.into(),
            port: 5432,
        },
        "spdy",
    )
}

async fn server(dir: &std::path::Path, v2: bool) -> RecorderServer {
    let mut options = ServerOptions::new("127.0.0.1:0".parse().expect("addr"), dir);
    options.v2 = v2;
    RecorderServer::start(options).await.expect("recorder")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The bytes of one direction of a stored capture file.
fn extract(file: &[u8], direction: CaptureDirection) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in file
        .split(|&b| b == b'\n')
        .skip(1)
        .filter(|l| !l.is_empty())
    {
        let event = CaptureEvent::parse(line).expect("event");
        if event.direction() == Some(direction) {
            bytes.extend(event.bytes().expect("base64"));
        }
    }
    bytes
}

async fn round_trip(v2: bool) {
    let dir = tempfile::tempdir().expect("dir");
    let server = server(dir.path(), v2).await;
    let recorder = Recorder::new(RecorderConfig::default());
    let budget = CaptureBudget::new(256 * 1024);
    let capture = recorder
        .start_capture(&[server.addr()], &header("3"), &budget)
        .expect("valid header");
    let (addr, protocol) = capture.connected().await.expect("connected");
    assert_eq!(addr, server.addr());
    assert_eq!(protocol, if v2 { Protocol::V2 } else { Protocol::V1 });
    let up = pattern(300_000, 1);
    let down = pattern(200_001, 2);
    for (c, s) in up.chunks(32 * 1024).zip(down.chunks(20_001)) {
        capture
            .feed(CaptureDirection::ClientToPod, c.to_vec())
            .await
            .expect("feed");
        capture
            .feed(CaptureDirection::PodToClient, s.to_vec())
            .await
            .expect("feed");
    }
    capture.note("connection closed");
    let outcome = capture.finish().await;
    assert!(outcome.is_uploaded(), "{outcome}");
    assert_eq!(budget.available(), budget.capacity());

    let list = server.store().list().await.expect("list");
    assert_eq!(list.len(), 1);
    let meta = &list[0];
    assert_eq!(meta.kind, RecordingKind::PortForwardCapture);
    assert_eq!(meta.outcome, castfmt::Outcome::Complete);
    assert_eq!(meta.malformed, None);
    assert_eq!(meta.pod.as_deref(), Some("db"));
    assert_eq!(meta.src_node_user.as_deref(), Some("alice@example.com"));
    let pf = meta.port_forward.as_ref().expect("port-forward meta");
    assert_eq!(pf.port, Some(5432));
    assert_eq!(pf.request_id.as_deref(), Some("3"));
    assert_eq!(pf.session_id.as_deref(), Some("session-1"));
    assert_eq!(pf.bytes_from_client, up.len() as u64);
    assert_eq!(pf.bytes_to_client, down.len() as u64);
    let path = server.store().capture_path(&meta.id).expect("path");
    let file = std::fs::read(path).expect("capture file");
    assert_eq!(extract(&file, CaptureDirection::ClientToPod), up);
    assert_eq!(extract(&file, CaptureDirection::PodToClient), down);
    assert!(server.store().read_cast(&meta.id).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn a_capture_is_stored_as_one_over_v2() {
    round_trip(true).await;
}

#[tokio::test]
async fn a_capture_is_stored_as_one_over_v1() {
    round_trip(false).await;
}

#[tokio::test]
async fn no_recorder_fails_the_capture() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    drop(listener);
    let config = RecorderConfig {
        connect_timeout: Duration::from_secs(5),
        ..RecorderConfig::default()
    };
    let capture = Recorder::new(config)
        .start_capture(&[addr], &header("0"), &CaptureBudget::new(1024))
        .expect("valid header");
    let reason = capture.connected().await.expect_err("no recorder");
    assert!(reason.contains("could not connect"), "{reason}");
    assert!(matches!(
        capture.failed().await,
        Outcome::Failed {
            reason: UploadError::Connection(_)
        }
    ));
    assert_eq!(
        capture.feed(CaptureDirection::ClientToPod, vec![1]).await,
        Err(FeedError::Stopped)
    );
}

#[tokio::test]
async fn a_lagging_fail_open_capture_is_dropped_and_kept_incomplete() {
    let dir = tempfile::tempdir().expect("dir");
    let server = server(dir.path(), true).await;
    let budget = CaptureBudget::new(1024);
    let capture = Recorder::new(RecorderConfig::default())
        .start_capture(&[server.addr()], &header("1"), &budget)
        .expect("valid header");
    capture.connected().await.expect("connected");
    capture
        .try_feed(CaptureDirection::ClientToPod, vec![0; 1000])
        .expect("room");
    // No await in between: the writer has not taken the first piece yet.
    assert_eq!(
        capture.try_feed(CaptureDirection::ClientToPod, vec![0; 1000]),
        Err(FeedError::Lagging { limit_bytes: 1024 })
    );
    assert!(capture.is_stopped());
    let outcome = capture.finish().await;
    assert!(
        matches!(
            outcome,
            Outcome::Abandoned {
                reason: AbandonReason::Lagging { .. }
            }
        ),
        "{outcome}"
    );
    assert_eq!(budget.available(), 1024);
    // The recorder sees the upload cut short.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = server.store().list().await.expect("list");
        if list
            .first()
            .is_some_and(|m| m.outcome == castfmt::Outcome::Incomplete)
        {
            assert_eq!(list[0].kind, RecordingKind::PortForwardCapture);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await;
}

#[test]
fn an_invalid_header_is_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let mut bad = header("0");
    bad.version = "x".into();
    assert!(Recorder::new(RecorderConfig::default())
        .start_capture(&[], &bad, &CaptureBudget::new(1))
        .is_err());
}
