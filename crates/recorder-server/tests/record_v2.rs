//! `/v2/record` over h2c: acks while the body streams in, idle acks, completion, cut-offs.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{channel_body, empty_body, fixture, h2c, NdjsonReader};
use http::{Method, Request, StatusCode, Version};
use recorder_server::{Outcome, Protocol, RecorderServer, Store};
use serde_json::json;

fn ack_of(frame: &serde_json::Value) -> u64 {
    frame
        .get("ack")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("not an ack: {frame}"))
}

#[tokio::test]
async fn head_probe_answers_200_over_http2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let (mut sender, _driver) = h2c(server.addr()).await;
    let request = Request::builder()
        .method(Method::HEAD)
        .uri(format!("http://{}/v2/record", server.addr()))
        .body(empty_body())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    server.shutdown().await;
}

// Paused time: the idle ack is due one (virtual) second after the last one, and the test does
// not wait a real second for it.
#[tokio::test(start_paused = true)]
async fn acks_follow_the_upload_and_come_while_idle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let cast = fixture("session.cast");
    let (mut sender, _driver) = h2c(server.addr()).await;
    let (chunks, body) = channel_body();
    let request = Request::post(format!("http://{}/v2/record", server.addr()))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "200 before any data is sent"
    );
    let mut acks = NdjsonReader::new(response.into_body());

    let mut sent = 0_u64;
    let mut last_ack = 0_u64;
    for piece in [&cast[..17], &cast[17..300], &cast[300..301], &cast[301..]] {
        chunks
            .send(Bytes::copy_from_slice(piece))
            .await
            .expect("send");
        sent += piece.len() as u64;
        while last_ack < sent {
            let ack = ack_of(&acks.next().await.expect("an ack"));
            assert!(
                ack >= last_ack,
                "acks never go back: {ack} after {last_ack}"
            );
            assert!(ack <= sent, "ack {ack} beyond the {sent} bytes sent");
            last_ack = ack;
        }
    }

    let idle_since = tokio::time::Instant::now();
    let idle_ack = ack_of(&acks.next().await.expect("an idle ack"));
    assert_eq!(idle_ack, sent, "an idle ack repeats the total");
    assert!(
        idle_since.elapsed() <= Duration::from_millis(1100),
        "idle ack after {:?}",
        idle_since.elapsed()
    );

    drop(chunks);
    let mut final_ack = None;
    while let Some(frame) = acks.next().await {
        final_ack = Some(ack_of(&frame));
    }
    assert_eq!(
        final_ack,
        Some(cast.len() as u64),
        "the last ack is the whole upload"
    );

    let list = server.store().list().await.expect("list");
    assert_eq!(list.len(), 1);
    let meta = &list[0];
    assert_eq!(meta.outcome, Outcome::Complete);
    assert_eq!(meta.protocol, Protocol::V2);
    assert_eq!(meta.bytes, cast.len() as u64);
    assert_eq!(meta.src_node_user.as_deref(), Some("alice@example.com"));
    assert_eq!(meta.src_node_user_id, Some(12345));
    assert_eq!(meta.pod.as_deref(), Some("demo"));
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.container.as_deref(), Some("main"));
    assert_eq!(meta.session_type.as_deref(), Some("exec"));
    assert_eq!(meta.start, Some(1_714_564_984));
    assert_eq!(meta.duration, Some(1.8));
    assert_eq!(meta.exit_code, Some(3));
    assert_eq!(meta.malformed, None);
    assert_eq!(
        server.store().read_cast(&meta.id).await.expect("cast"),
        cast
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_leaves_an_incomplete_recording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let cast = fixture("session.cast");
    let (mut sender, driver) = h2c(server.addr()).await;
    let (chunks, body) = channel_body();
    let request = Request::post(format!("http://{}/v2/record", server.addr()))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let mut acks = NdjsonReader::new(response.into_body());
    // Past the header line, so the entry can say whose session it was.
    let half = cast.iter().position(|&b| b == b'\n').expect("header line") + 20;
    chunks
        .send(Bytes::copy_from_slice(&cast[..half]))
        .await
        .expect("send");
    while ack_of(&acks.next().await.expect("ack")) < half as u64 {}

    // The proxy goes away without ending the stream.
    driver.abort();
    let _ = driver.await;
    drop((sender, chunks, acks));

    // Shutdown waits for uploads to be stored; the cut-off is seen long before its grace ends.
    let store = server.store().clone();
    server.shutdown().await;
    let list = store.list().await.expect("list");
    assert_eq!(list.len(), 1);
    let meta = &list[0];
    assert_eq!(meta.outcome, Outcome::Incomplete);
    assert!(
        meta.reason
            .as_deref()
            .unwrap_or("")
            .starts_with("upload cut off"),
        "{:?}",
        meta.reason
    );
    assert_eq!(meta.bytes, half as u64);
    assert_eq!(
        meta.pod.as_deref(),
        Some("demo"),
        "the header arrived, so the entry knows the pod"
    );
    assert_eq!(
        store.read_cast(&meta.id).await.expect("cast"),
        &cast[..half]
    );
}

#[tokio::test]
async fn shutdown_cuts_a_running_upload_and_tells_the_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    options.shutdown_grace = Duration::from_millis(50);
    let server = RecorderServer::start(options).await.expect("start");
    let cast = fixture("session.cast");
    let (mut sender, _driver) = h2c(server.addr()).await;
    let (chunks, body) = channel_body();
    let request = Request::post(format!("http://{}/v2/record", server.addr()))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let mut acks = NdjsonReader::new(response.into_body());
    chunks
        .send(Bytes::copy_from_slice(&cast[..100]))
        .await
        .expect("send");
    while ack_of(&acks.next().await.expect("ack")) < 100 {}

    let stopping = tokio::spawn(server.shutdown());
    let error = loop {
        let frame = acks.next().await.expect("frames until the error");
        if frame.get("error").is_some() {
            break frame;
        }
    };
    assert_eq!(
        error,
        json!({"error": "the recorder shut down during the upload"})
    );
    assert_eq!(acks.next().await, None, "the error is the last frame");
    stopping.await.expect("shutdown");

    let store = Store::open(dir.path()).await.expect("open");
    let meta = &store.list().await.expect("list")[0];
    assert_eq!(meta.outcome, Outcome::Incomplete);
    assert_eq!(meta.bytes, 100);
    drop(chunks);
}

#[tokio::test]
async fn uploads_beyond_the_size_limit_are_cut_with_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    options.max_recording_bytes = Some(64);
    let server = RecorderServer::start(options).await.expect("start");
    let (mut sender, _driver) = h2c(server.addr()).await;
    let (chunks, body) = channel_body();
    let request = Request::post(format!("http://{}/v2/record", server.addr()))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let mut acks = NdjsonReader::new(response.into_body());
    chunks
        .send(Bytes::from_static(&[b'x'; 40]))
        .await
        .expect("send");
    assert_eq!(ack_of(&acks.next().await.expect("ack")), 40);
    let _ = chunks.send(Bytes::from_static(&[b'y'; 40])).await;
    let last = loop {
        let frame = acks.next().await.expect("frames until the error");
        if frame.get("error").is_some() {
            break frame;
        }
    };
    assert_eq!(last, json!({"error": "recording larger than 64 bytes"}));
    let meta = &server.store().list().await.expect("list")[0];
    assert_eq!(meta.outcome, Outcome::Incomplete);
    assert_eq!(meta.bytes, 40);
    server.shutdown().await;
}
