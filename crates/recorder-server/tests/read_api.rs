//! The read API: `GET /api/recordings`, `/api/recordings/{id}`, `/api/recordings/{id}/meta`.

mod common;

use common::fixture;
use recorder_server::{Outcome, Protocol, RecordingEnd, RecordingMeta, Store};

async fn store_cast(store: &Store, name: &str, end: RecordingEnd) -> RecordingMeta {
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    writer.write(&fixture(name)).await.expect("write");
    writer.finish(end).await.expect("finish")
}

#[tokio::test]
async fn lists_newest_first_and_serves_casts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let store = server.store();
    let first = store_cast(store, "session.cast", RecordingEnd::Complete).await;
    let second = store_cast(
        store,
        "tagged.cast",
        RecordingEnd::Incomplete("test".into()),
    )
    .await;
    let third = store_cast(store, "malformed.cast", RecordingEnd::Complete).await;
    let url = format!("http://{}", server.addr());
    let client = common::client();

    let list: Vec<RecordingMeta> = common::json(
        client
            .get(format!("{url}/api/recordings"))
            .send()
            .await
            .expect("GET"),
    )
    .await;
    let ids: Vec<&str> = list.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [third.id.as_str(), second.id.as_str(), first.id.as_str()]
    );
    assert_eq!(list[2], first);
    assert_eq!(list[1].outcome, Outcome::Incomplete);
    assert_eq!(list[1].reason.as_deref(), Some("test"));
    assert_eq!(
        list[0].malformed.as_deref(),
        Some("line 3: not an asciicast event")
    );
    assert_eq!(list[0].events, 2, "stored anyway, the good events counted");

    // The JSON names are the documented ones.
    let raw: serde_json::Value = common::json(
        client
            .get(format!("{url}/api/recordings/{}/meta", first.id))
            .send()
            .await
            .expect("GET"),
    )
    .await;
    for key in [
        "id",
        "protocol",
        "outcome",
        "receivedAt",
        "finishedAt",
        "srcNode",
        "srcNodeID",
        "srcNodeUser",
        "srcNodeUserID",
        "pod",
        "namespace",
        "container",
        "sessionType",
        "command",
        "start",
        "duration",
        "bytes",
        "events",
        "exitCode",
    ] {
        assert!(raw.get(key).is_some(), "{key} missing from {raw}");
    }
    assert_eq!(raw["outcome"], "complete");
    assert_eq!(raw["protocol"], "v2");

    let cast = client
        .get(format!("{url}/api/recordings/{}", first.id))
        .send()
        .await
        .expect("GET");
    assert_eq!(cast.status(), reqwest::StatusCode::OK);
    assert_eq!(cast.headers()["content-type"], "application/x-asciicast");
    assert_eq!(
        cast.bytes().await.expect("body").as_ref(),
        fixture("session.cast").as_slice()
    );

    let missing = client
        .get(format!("{url}/api/recordings/20240101T000000Z-00000000"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    let missing_meta = client
        .get(format!("{url}/api/recordings/nope/meta"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing_meta.status(), reqwest::StatusCode::NOT_FOUND);
    let traversal = client
        .get(format!("{url}/api/recordings/..%2F..%2Fetc%2Fpasswd"))
        .send()
        .await
        .expect("GET");
    assert_eq!(traversal.status(), reqwest::StatusCode::BAD_REQUEST);
    server.shutdown().await;
}

#[tokio::test]
async fn the_api_client_reads_what_the_store_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let stored = store_cast(server.store(), "session.cast", RecordingEnd::Complete).await;
    let client = recorder_server::RecorderApiClient::new(&format!("http://{}", server.addr()))
        .expect("client")
        .with_token(common::ADMIN_TOKEN);
    assert_eq!(
        client.recordings().await.expect("list"),
        vec![stored.clone()]
    );
    assert_eq!(client.recording(&stored.id).await.expect("meta"), stored);
    let mut download = client.cast(&stored.id).await.expect("cast");
    let mut bytes = Vec::new();
    while let Some(chunk) = download.next_chunk().await {
        bytes.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(bytes, fixture("session.cast"));
    let missing = client.recording("20240101T000000Z-00000000").await;
    assert!(
        matches!(missing, Err(recorder_server::ApiError::Status { status, .. }) if status == 404)
    );
    server.shutdown().await;
}
