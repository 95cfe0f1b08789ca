//! `/v2/event`: storage as JSON lines, and listing with filters over `GET /api/events`.

mod common;

use bytes::Bytes;
use common::{channel_body, fixture, h2c};
use http::{Request, StatusCode};
use recorder_server::{EventFilter, RecorderServer};
use serde_json::Value;

const EVENTS: [&str; 4] = [
    "events/get-pods-alice.json",
    "events/create-deploy-ci.json",
    "events/delete-pod-alice.json",
    "events/exec-bob.json",
];

fn ids(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect()
}

async fn post_event(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::StatusCode {
    client
        .post(format!("{url}/v2/event"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST /v2/event")
        .status()
}

async fn query(client: &reqwest::Client, url: &str, query: &str) -> Vec<Value> {
    let response = client
        .get(format!("{url}/api/events{query}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), reqwest::StatusCode::OK, "{query}");
    common::json(response).await
}

#[tokio::test]
async fn events_are_stored_in_order_and_filtered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let url = format!("http://{}", server.addr());
    let client = common::client();

    let probe = client
        .head(format!("{url}/v2/event"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(probe.status(), reqwest::StatusCode::OK);

    // Three over HTTP/1.1, the last over h2c (Tailscale's client uses either).
    for name in &EVENTS[..3] {
        assert_eq!(
            post_event(&client, &url, fixture(name)).await,
            reqwest::StatusCode::OK,
            "{name}"
        );
    }
    let (mut sender, _driver) = h2c(server.addr()).await;
    let (chunks, body) = channel_body();
    let request = Request::post(format!("{url}/v2/event"))
        .header("Content-Type", "application/json")
        .body(body)
        .expect("request");
    chunks
        .send(Bytes::from(fixture(EVENTS[3])))
        .await
        .expect("send");
    drop(chunks);
    assert_eq!(
        sender
            .send_request(request)
            .await
            .expect("response")
            .status(),
        StatusCode::OK
    );

    // One JSON object per line, the pretty-printed one too, each exactly the event sent.
    let files: Vec<_> = std::fs::read_dir(dir.path().join("events"))
        .expect("events dir")
        .collect();
    assert_eq!(files.len(), 1);
    let path = files[0].as_ref().expect("entry").path();
    assert!(path.to_string_lossy().ends_with(".jsonl"));
    let text = std::fs::read_to_string(&path).expect("event file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    for (line, name) in lines.iter().zip(EVENTS) {
        let stored: Value = serde_json::from_str(line).expect("a JSON line");
        let sent: Value = serde_json::from_slice(&fixture(name)).expect("fixture");
        assert_eq!(stored, sent);
    }

    let all = query(&client, &url, "").await;
    assert_eq!(
        ids(&all),
        [
            "0a1b2c3d-0001",
            "0a1b2c3d-0002",
            "0a1b2c3d-0003",
            "0a1b2c3d-0004"
        ]
    );
    let alice = query(&client, &url, "?user=alice%40example.com").await;
    assert_eq!(ids(&alice), ["0a1b2c3d-0001", "0a1b2c3d-0003"]);
    let tagged = query(&client, &url, "?user=tag%3Aci").await;
    assert_eq!(ids(&tagged), ["0a1b2c3d-0002"]);
    let creates = query(&client, &url, "?verb=create").await;
    assert_eq!(ids(&creates), ["0a1b2c3d-0002", "0a1b2c3d-0004"]);
    let prod = query(&client, &url, "?namespace=prod").await;
    assert_eq!(ids(&prod), ["0a1b2c3d-0002", "0a1b2c3d-0003"]);
    // Each read is itself recorded (an event of type kube-recorder-view, time now): queries that
    // would match those name the API events' type.
    let since = query(
        &client,
        &url,
        "?since=2024-05-02T00:00:00Z&type=kubernetes-api-request",
    )
    .await;
    assert_eq!(ids(&since), ["0a1b2c3d-0003", "0a1b2c3d-0004"]);
    let since_unix = query(
        &client,
        &url,
        "?since=1714568400&type=kubernetes-api-request",
    )
    .await;
    assert_eq!(
        ids(&since_unix),
        ["0a1b2c3d-0002", "0a1b2c3d-0003", "0a1b2c3d-0004"]
    );
    let combined = query(
        &client,
        &url,
        "?user=alice%40example.com&verb=delete&namespace=prod",
    )
    .await;
    assert_eq!(ids(&combined), ["0a1b2c3d-0003"]);
    let last_two = query(&client, &url, "?limit=2&type=kubernetes-api-request").await;
    assert_eq!(ids(&last_two), ["0a1b2c3d-0003", "0a1b2c3d-0004"]);

    let bad_since = client
        .get(format!("{url}/api/events?since=yesterday"))
        .send()
        .await
        .expect("GET");
    assert_eq!(bad_since.status(), reqwest::StatusCode::BAD_REQUEST);

    // The library sees the same.
    let filter = EventFilter {
        verb: Some("list".into()),
        ..EventFilter::default()
    };
    let listed = server.store().events(&filter).await.expect("events");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].get(), lines[0]);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_events_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    options.max_event_bytes = 1024;
    let server = RecorderServer::start(options).await.expect("start");
    let url = format!("http://{}", server.addr());
    let client = common::client();

    assert_eq!(
        post_event(&client, &url, b"not json".to_vec()).await,
        reqwest::StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post_event(&client, &url, b"[1, 2]".to_vec()).await,
        reqwest::StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post_event(&client, &url, b"{} {}".to_vec()).await,
        reqwest::StatusCode::BAD_REQUEST
    );
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2048)).into_bytes();
    assert_eq!(
        post_event(&client, &url, big).await,
        reqwest::StatusCode::PAYLOAD_TOO_LARGE
    );
    let response = client
        .post(format!("{url}/v2/event"))
        .body("[]")
        .send()
        .await
        .expect("POST");
    let error: Value = common::json(response).await;
    assert_eq!(error["error"], "event is not a JSON object");

    assert!(server
        .store()
        .events(&EventFilter::default())
        .await
        .expect("events")
        .is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_events_are_all_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let url = format!("http://{}", server.addr());
    let client = common::client();
    let posts = (0..200).map(|i| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let body = format!(r#"{{"id":"e{i}","kubernetes":{{"Verb":"get"}}}}"#).into_bytes();
            post_event(&client, &url, body).await
        })
    });
    for post in posts.collect::<Vec<_>>() {
        assert_eq!(post.await.expect("task"), reqwest::StatusCode::OK);
    }
    let stored = server
        .store()
        .events(&EventFilter::default())
        .await
        .expect("events");
    assert_eq!(stored.len(), 200);
    let mut seen: Vec<String> = stored
        .iter()
        .map(|raw| {
            serde_json::from_str::<Value>(raw.get()).expect("json")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn the_event_probe_answers_200_over_http1_and_h2c() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let url = format!("http://{}", server.addr());
    let probe = common::client()
        .head(format!("{url}/v2/event"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(probe.version(), reqwest::Version::HTTP_11);
    assert_eq!(probe.status(), reqwest::StatusCode::OK);
    let (mut sender, _driver) = h2c(server.addr()).await;
    let request = Request::head(format!("{url}/v2/event"))
        .body(common::empty_body())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn without_events_the_event_endpoint_answers_404_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    options.events = false;
    let server = RecorderServer::start(options).await.expect("start");
    let url = format!("http://{}", server.addr());
    let client = common::client();

    let probe = client
        .head(format!("{url}/v2/event"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(probe.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(
        post_event(&client, &url, fixture(EVENTS[0])).await,
        reqwest::StatusCode::NOT_FOUND
    );
    // Everything else is served as before.
    let recordings = client
        .head(format!("{url}/v2/record"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(recordings.status(), reqwest::StatusCode::OK);
    assert!(query(&client, &url, "").await.is_empty());
    // Only the record of that read is stored.
    let stored = server
        .store()
        .events(&EventFilter::default())
        .await
        .expect("events");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].get().contains(recorder_server::VIEW_EVENT_TYPE));
    server.shutdown().await;
}
