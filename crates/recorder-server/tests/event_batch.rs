//! `/v2/events`, our batch extension: the probe and its limits, every good line stored once and
//! on disk before the 200, bad lines refused alone with their index, and the limits that refuse
//! a whole batch with nothing stored.

mod common;

use recorder_server::{format_unix_time, EventFilter, RecorderServer};
use serde_json::{json, Value};

async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> (reqwest::StatusCode, Value) {
    let response = client
        .post(format!("{url}/v2/events"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("POST /v2/events");
    let status = response.status();
    (status, common::json(response).await)
}

fn event(id: &str) -> String {
    json!({"type": "kubernetes-api-request", "id": id, "kubernetes": {"Verb": "get"}}).to_string()
}

/// The ids in the event files, in the order stored.
fn stored_ids(dir: &tempfile::TempDir) -> Vec<String> {
    let mut ids = Vec::new();
    let Ok(files) = std::fs::read_dir(dir.path().join("events")) else {
        return ids;
    };
    let mut paths: Vec<_> = files.map(|f| f.expect("entry").path()).collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("event file");
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).expect("a JSON line");
            if event["type"] == "kubernetes-api-request" {
                ids.push(event["id"].as_str().expect("id").to_owned());
            }
        }
    }
    ids
}

#[tokio::test]
async fn the_probe_answers_200_with_the_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    options.max_event_bytes = 4096;
    let server = RecorderServer::start(options).await.expect("start");
    let probe = common::client()
        .head(format!("http://{}/v2/events", server.addr()))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(probe.status(), reqwest::StatusCode::OK);
    let header = |name: &str| {
        probe
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("kap-max-batch-events").as_deref(), Some("1024"));
    assert_eq!(header("kap-max-batch-bytes").as_deref(), Some("4096"));
    server.shutdown().await;
}

#[tokio::test]
async fn every_line_is_stored_once_and_on_disk_before_the_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let url = format!("http://{}", server.addr());
    let client = common::client();

    // CRLF line ends, a blank line and an event spread over... one line with inner CR: all
    // whitespace between tokens.
    let body = format!(
        "{}\r\n\n{}\n{{\"type\":\"kubernetes-api-request\",\r\"id\":\"b-3\"}}\n",
        event("b-1"),
        event("b-2")
    );
    let (status, answer) = post_batch(&client, &url, body).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(answer, json!({"stored": 3}));
    // The answer came after the write: the lines are in the file now, without waiting.
    assert_eq!(stored_ids(&dir), ["b-1", "b-2", "b-3"]);

    // Many batches at once are each stored whole, and nothing twice.
    let posts: Vec<_> = (0..20)
        .map(|batch| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let body: String = (0..50)
                    .map(|i| event(&format!("c-{batch}-{i}")) + "\n")
                    .collect();
                post_batch(&client, &url, body).await
            })
        })
        .collect();
    for post in posts {
        let (status, answer) = post.await.expect("task");
        assert_eq!(status, reqwest::StatusCode::OK);
        assert_eq!(answer, json!({"stored": 50}));
    }
    let mut ids = stored_ids(&dir);
    assert_eq!(ids.len(), 3 + 20 * 50);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3 + 20 * 50);
    // The read API sees them like events posted one by one.
    let listed = server
        .store()
        .events(&EventFilter::default())
        .await
        .expect("events");
    assert_eq!(listed.len(), 3 + 20 * 50);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_lines_are_refused_alone_with_their_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let url = format!("http://{}", server.addr());
    let body = [
        event("g-0"),
        "not json".into(),
        event("g-2"),
        "[1, 2]".into(),
        r#"{"type":"kube-recorder-view","id":"forged"}"#.into(),
        r#"{"type":"kube-recorder\u002dview","id":"forged-escaped"}"#.into(),
        event("g-6"),
    ]
    .join("\n");
    let (status, answer) = post_batch(&common::client(), &url, body).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(answer["stored"], 3);
    let rejected: Vec<(u64, String)> = answer["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                r["error"].as_str().expect("error").to_owned(),
            )
        })
        .collect();
    let indexes: Vec<u64> = rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, [1, 3, 4, 5]);
    assert!(
        rejected[0].1.starts_with("event is not JSON"),
        "{rejected:?}"
    );
    assert_eq!(rejected[1].1, "event is not a JSON object");
    assert!(rejected[2].1.contains("kube-recorder-view"), "{rejected:?}");
    assert_eq!(stored_ids(&dir), ["g-0", "g-2", "g-6"]);
    server.shutdown().await;
}

#[tokio::test]
async fn batches_over_the_limits_are_refused_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    options.max_event_bytes = 128 * 1024;
    let server = RecorderServer::start(options).await.expect("start");
    let url = format!("http://{}", server.addr());
    let client = common::client();

    let too_many: String = (0..1025)
        .map(|i| format!("{{\"id\":\"m-{i}\"}}\n"))
        .collect();
    assert!(too_many.len() < 128 * 1024);
    let (status, answer) = post_batch(&client, &url, too_many).await;
    assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"], "more than 1024 events in one batch");

    let too_large: String = (0..200)
        .map(|i| format!("{{\"id\":\"l-{i}\",\"pad\":\"{}\"}}\n", "x".repeat(1000)))
        .collect();
    let (status, _) = post_batch(&client, &url, too_large).await;
    assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE);

    // Exactly at the count limit is taken.
    let full: String = (0..1024).map(|i| event(&format!("f-{i}")) + "\n").collect();
    let (status, answer) = post_batch(&client, &url, full).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(answer, json!({"stored": 1024}));
    assert_eq!(stored_ids(&dir).len(), 1024);
    server.shutdown().await;
}

#[tokio::test]
async fn a_batch_that_cannot_be_stored_is_not_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Where today's (and, near midnight, tomorrow's) event file would go, a directory: the
    // writer cannot open it, so nothing of the batch can be made durable.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for at in [now, now + 3600.0] {
        let day = &format_unix_time(at)[..10];
        std::fs::create_dir_all(dir.path().join(format!("events/{day}.jsonl")))
            .expect("blocking directory");
    }
    let server = common::start(&dir).await;
    let url = format!("http://{}", server.addr());
    let body = format!("{}\n{}\n", event("x-1"), event("x-2"));
    let (status, answer) = post_batch(&common::client(), &url, body).await;
    assert_eq!(status, reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("events not stored")),
        "{answer}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_events_the_batch_endpoint_answers_404() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    options.events = false;
    let server = RecorderServer::start(options).await.expect("start");
    let url = format!("http://{}", server.addr());
    let client = common::client();
    let probe = client
        .head(format!("{url}/v2/events"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(probe.status(), reqwest::StatusCode::NOT_FOUND);
    let (status, _) = post_batch(&client, &url, event("n-1")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert!(stored_ids(&dir).is_empty());
    server.shutdown().await;
}
