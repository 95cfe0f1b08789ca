//! Separate, protected surfaces: who may upload (the ingest surface) and who may read what (the
//! read surface), with raw HTTP clients; the record of every read; tailnet writers and viewers
//! through the LocalAPI stand-in.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{empty_body, h2c};
use http::Request;
use recorder_server::{
    EventFilter, IpCidr, Protocol, RecorderServer, RecordingEnd, RecordingMeta, ServerOptions,
    Store, VIEW_EVENT_TYPE,
};
use serde_json::{json, Value};
use testkit::localapi_standin::{LocalApiStandIn, StandInOptions, WhoIsTable};

const A_TOKEN: &str = "viewer-of-a-0123456789";
const B_TOKEN: &str = "viewer-of-b-0123456789";

/// A cast whose header names `namespace` and the caller `user`.
fn cast(namespace: &str, user: &str) -> Vec<u8> {
    let header = json!({
        "version": 2, "width": 80, "height": 24, "timestamp": 1_714_564_984,
        "srcNode": "laptop.tail1.ts.net", "srcNodeUser": user,
        "kubernetes": {"PodName": "p", "Namespace": namespace, "Container": "c", "SessionType": "exec"},
    });
    format!("{header}\n[0.5, \"o\", \"hello from {namespace}\\r\\n\"]\n").into_bytes()
}

async fn store_cast(store: &Store, namespace: &str, user: &str) -> RecordingMeta {
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    writer.write(&cast(namespace, user)).await.expect("write");
    writer.finish(RecordingEnd::Complete).await.expect("finish")
}

fn event(id: &str, namespace: &str, user: &str) -> Vec<u8> {
    json!({
        "type": "kubernetes-api-request", "id": id, "timestamp": "2024-05-01T12:00:00Z",
        "source": {"node": "laptop.tail1.ts.net", "nodeUser": user},
        "kubernetes": {"Verb": "get", "Namespace": namespace},
        "request": {"method": "GET", "path": format!("/api/v1/namespaces/{namespace}/pods")},
    })
    .to_string()
    .into_bytes()
}

/// Options with the admin token and viewers of namespaces `a` and `b`.
fn options(dir: &tempfile::TempDir) -> ServerOptions {
    let mut options = common::options(dir);
    let tokens = dir.path().join("viewer-tokens");
    std::fs::write(
        &tokens,
        format!(
            "# test viewers\n{} admin *\n{A_TOKEN} viewer-a a\n{B_TOKEN} viewer-b b,c\n",
            common::ADMIN_TOKEN
        ),
    )
    .expect("token file");
    options.access.viewer_tokens = Some(tokens);
    options
}

/// One HTTP/1.1 request with an optional bearer token; (status, headers, body).
async fn get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Bytes) {
    let mut request = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.expect("body"))
}

async fn get_json(addr: SocketAddr, path: &str, token: Option<&str>) -> Value {
    let (status, _, body) = get(addr, path, token).await;
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "{path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).expect("JSON")
}

fn error_of(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    value["error"]
        .as_str()
        .expect("an error message")
        .to_owned()
}

async fn post(addr: SocketAddr, path: &str, body: Vec<u8>) -> (reqwest::StatusCode, Bytes) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = response.status();
    (status, response.bytes().await.expect("body"))
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

/// The server stored no recording and no event.
async fn assert_nothing_stored(server: &RecorderServer) {
    assert!(server.store().list().await.expect("list").is_empty());
    assert!(server
        .store()
        .events(&EventFilter::default())
        .await
        .expect("events")
        .is_empty());
}

/// The stored view events, oldest first.
async fn views(store: &Store) -> Vec<Value> {
    let filter = EventFilter {
        event_type: Some(VIEW_EVENT_TYPE.to_owned()),
        ..EventFilter::default()
    };
    store
        .events(&filter)
        .await
        .expect("events")
        .iter()
        .map(|raw| serde_json::from_str(raw.get()).expect("JSON"))
        .collect()
}

#[tokio::test]
async fn reading_without_a_viewer_is_refused_with_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = RecorderServer::start(options(&dir)).await.expect("start");
    let recording = store_cast(server.store(), "a", "alice@example.com").await;
    let addr = server.read_addr();
    for path in [
        "/api/recordings".to_owned(),
        format!("/api/recordings/{}", recording.id),
        format!("/api/recordings/{}/meta", recording.id),
        "/api/events".to_owned(),
    ] {
        let (status, headers, body) = get(addr, &path, None).await;
        assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(headers["content-type"], "application/json", "{path}");
        assert!(
            headers["www-authenticate"]
                .to_str()
                .is_ok_and(|v| v.starts_with("Bearer")),
            "{path}"
        );
        assert!(error_of(&body).contains("viewer"), "{path}");
        let (status, _, body) = get(addr, &path, Some("not-a-token-of-this-recorder")).await;
        assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(error_of(&body), "unknown viewer token");
    }
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/api/recordings"))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    // Health needs no viewer; nothing was read, so nothing is recorded.
    assert_eq!(get(addr, "/healthz", None).await.0, reqwest::StatusCode::OK);
    assert!(views(server.store()).await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_viewer_of_namespace_a_sees_only_a_and_every_read_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = RecorderServer::start(options(&dir)).await.expect("start");
    let in_a = store_cast(server.store(), "a", "alice@example.com").await;
    let in_b = store_cast(server.store(), "b", "bob@example.com").await;
    let addr = server.addr();
    for (id, namespace, user) in [
        ("e-a", "a", "alice@example.com"),
        ("e-b", "b", "bob@example.com"),
        ("e-c", "c", "carol@example.com"),
    ] {
        let (status, _) = post(addr, "/v2/event", event(id, namespace, user)).await;
        assert_eq!(status, reqwest::StatusCode::OK);
    }

    // Lists.
    let admin = Some(common::ADMIN_TOKEN);
    assert_eq!(
        ids(&get_json(addr, "/api/recordings", admin).await),
        [in_b.id.clone(), in_a.id.clone()]
    );
    assert_eq!(
        ids(&get_json(addr, "/api/recordings", Some(A_TOKEN)).await),
        [in_a.id.as_str()]
    );
    assert_eq!(
        ids(&get_json(addr, "/api/recordings", Some(B_TOKEN)).await),
        [in_b.id.as_str()]
    );

    // Fetches: b's recording is not there for a's viewer, as if it did not exist.
    let (status, _, body) = get(addr, &format!("/api/recordings/{}", in_a.id), Some(A_TOKEN)).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(body.as_ref(), cast("a", "alice@example.com").as_slice());
    for path in [
        format!("/api/recordings/{}", in_b.id),
        format!("/api/recordings/{}/meta", in_b.id),
    ] {
        let (status, headers, body) = get(addr, &path, Some(A_TOKEN)).await;
        assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{path}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(error_of(&body), format!("no recording {:?}", in_b.id));
    }
    let (status, _, _) = get(addr, &format!("/api/recordings/{}", in_b.id), Some(B_TOKEN)).await;
    assert_eq!(status, reqwest::StatusCode::OK);

    // Events (search) alike: the filters of the query apply within what the viewer may see.
    let api = "type=kubernetes-api-request";
    assert_eq!(
        ids(&get_json(addr, &format!("/api/events?{api}"), admin).await),
        ["e-a", "e-b", "e-c"]
    );
    assert_eq!(
        ids(&get_json(addr, &format!("/api/events?{api}"), Some(A_TOKEN)).await),
        ["e-a"]
    );
    assert_eq!(
        ids(&get_json(addr, "/api/events", Some(A_TOKEN)).await),
        ["e-a"],
        "the view events (no namespace) are for viewers of all namespaces"
    );
    assert!(ids(&get_json(addr, "/api/events?namespace=b", Some(A_TOKEN)).await).is_empty());
    assert!(
        ids(&get_json(addr, "/api/events?user=bob%40example.com", Some(A_TOKEN)).await).is_empty()
    );
    assert_eq!(
        ids(&get_json(addr, &format!("/api/events?{api}"), Some(B_TOKEN)).await),
        ["e-b", "e-c"]
    );
    assert_eq!(
        ids(&get_json(addr, &format!("/api/events?{api}&limit=1"), Some(B_TOKEN)).await),
        ["e-c"]
    );

    // Every read above is recorded, with who, what and how it was answered.
    let views = views(server.store()).await;
    let of_a: Vec<&Value> = views
        .iter()
        .filter(|v| v["viewer"]["name"] == "viewer-a")
        .collect();
    let actions: Vec<(&str, Option<&str>, u64)> = of_a
        .iter()
        .map(|v| {
            (
                v["action"].as_str().expect("action"),
                v["recording"].as_str(),
                v["status"].as_u64().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        actions[..3],
        [
            ("list-recordings", None, 200),
            ("download", Some(in_a.id.as_str()), 200),
            ("download", Some(in_b.id.as_str()), 404),
        ]
    );
    assert_eq!(actions[3], ("recording-meta", Some(in_b.id.as_str()), 404));
    assert_eq!(of_a[0]["results"], 1);
    assert_eq!(of_a[0]["viewer"]["via"], "token");
    assert!(of_a[0]["viewer"]["addr"]
        .as_str()
        .is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert!(of_a[0]["timestamp"].as_str().is_some());
    let searches: Vec<&Value> = of_a
        .iter()
        .filter(|v| v["action"] == "list-events")
        .copied()
        .collect();
    assert_eq!(searches.len(), 4);
    assert_eq!(searches[2]["query"], "namespace=b");
    assert_eq!(searches[2]["results"], 0);
    // The admin sees the record of reads; a viewer of some namespaces does not.
    let listed = get_json(addr, &format!("/api/events?type={VIEW_EVENT_TYPE}"), admin).await;
    assert!(listed.as_array().expect("array").len() >= views.len());
    let listed = get_json(
        addr,
        &format!("/api/events?type={VIEW_EVENT_TYPE}"),
        Some(A_TOKEN),
    )
    .await;
    assert!(listed.as_array().expect("array").is_empty());

    // A writer cannot forge the record of a read.
    let forged = json!({"type": VIEW_EVENT_TYPE, "viewer": {"name": "nobody"}});
    let (status, body) = post(addr, "/v2/event", forged.to_string().into_bytes()).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains(VIEW_EVENT_TYPE));
    server.shutdown().await;
}

#[tokio::test]
async fn a_writer_outside_ingest_allow_cannot_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = options(&dir);
    options.access.ingest_allow = vec!["10.0.0.0/8".parse::<IpCidr>().expect("cidr")];
    let server = RecorderServer::start(options).await.expect("start");
    let addr = server.addr();

    let (status, body) = post(addr, "/v2/event", event("e-1", "a", "alice@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    let message = error_of(&body);
    assert!(
        message.contains("may not write") && message.contains("--ingest-allow"),
        "{message}"
    );
    let (status, _) = post(addr, "/record", cast("a", "alice@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    let probe = reqwest::Client::new()
        .head(format!("http://{addr}/v2/record"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(probe.status(), reqwest::StatusCode::FORBIDDEN);
    // Over h2c, as recorder clients upload with protocol v2.
    let (mut sender, _driver) = h2c(addr).await;
    let response = sender
        .send_request(
            Request::post(format!("http://{addr}/v2/record"))
                .body(empty_body())
                .expect("request"),
        )
        .await
        .expect("h2c POST");
    assert_eq!(response.status(), http::StatusCode::FORBIDDEN);

    // Nothing was stored.
    assert_nothing_stored(&server).await;
    server.shutdown().await;
}

/// A page that a browser on a writer's address opens (loopback here, the default) posts to the
/// recorder: a `no-cors` `fetch` sends `Origin`, and browsers describe it with `Sec-Fetch-*`.
/// Nothing it sends is stored, and the same requests without those headers are.
#[tokio::test]
async fn uploads_from_a_web_page_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = RecorderServer::start(options(&dir)).await.expect("start");
    let addr = server.addr();
    let from_page = |path: &str, body: Vec<u8>, header: (&'static str, &'static str)| {
        reqwest::Client::new()
            .post(format!("http://{addr}{path}"))
            .header("Content-Type", "text/plain")
            .header(header.0, header.1)
            .body(body)
            .send()
    };
    for header in [
        ("Origin", "https://attacker.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Mode", "no-cors"),
    ] {
        for (path, body) in [
            ("/v2/event", event("forged", "prod", "alice@example.com")),
            ("/v2/events", event("forged", "prod", "alice@example.com")),
            ("/record", cast("prod", "alice@example.com")),
        ] {
            let response = from_page(path, body, header).await.expect("POST");
            assert_eq!(
                response.status(),
                reqwest::StatusCode::FORBIDDEN,
                "{path} with {header:?}"
            );
            let message = error_of(&response.bytes().await.expect("body"));
            assert!(message.contains("web pages"), "{message}");
        }
    }
    assert_nothing_stored(&server).await;
    // The recorder's own clients send neither header.
    let (status, _) = post(addr, "/v2/event", event("e-1", "a", "alice@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn separate_listeners_serve_one_surface_each() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = options(&dir);
    options.read_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let server = RecorderServer::start(options).await.expect("start");
    let (ingest, read) = (server.addr(), server.read_addr());
    assert_ne!(ingest, read);

    // Uploads on the read listener: not there.
    let (status, body) = post(read, "/v2/event", event("e-1", "a", "alice@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert!(error_of(&body).contains("read listener"));
    let (status, _) = post(read, "/record", cast("a", "alice@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    // Reads on the ingest listener: not there either, even with a token.
    let (status, _, body) = get(ingest, "/api/recordings", Some(common::ADMIN_TOKEN)).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert!(error_of(&body).contains("ingest listener"));
    assert!(server.store().list().await.expect("list").is_empty());

    // Each on its own.
    let (status, _) = post(ingest, "/v2/event", event("e-1", "a", "alice@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let (status, _) = post(ingest, "/record", cast("a", "alice@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let listed = get_json(read, "/api/recordings", Some(A_TOKEN)).await;
    assert_eq!(listed.as_array().expect("array").len(), 1);
    assert_eq!(
        ids(&get_json(
            read,
            "/api/events?type=kubernetes-api-request",
            Some(A_TOKEN)
        )
        .await),
        ["e-1"]
    );
    assert_eq!(get(read, "/healthz", None).await.0, reqwest::StatusCode::OK);
    assert_eq!(
        get(ingest, "/healthz", None).await.0,
        reqwest::StatusCode::OK
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_token_file_is_read_again_when_it_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = options(&dir);
    options.access.viewer_tokens_interval = Duration::from_millis(20);
    let tokens = options.access.viewer_tokens.clone().expect("token file");
    let server = RecorderServer::start(options).await.expect("start");
    let addr = server.addr();
    const NEW: &str = "a-new-viewer-0123456789";
    assert_eq!(
        get(addr, "/api/recordings", Some(NEW)).await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );

    // Replaced atomically: the new token works, A_TOKEN no longer does.
    let next = dir.path().join("viewer-tokens.new");
    std::fs::write(&next, format!("{NEW} newcomer a\n")).expect("write");
    std::fs::rename(&next, &tokens).expect("rename");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(addr, "/api/recordings", Some(NEW)).await.0 != reqwest::StatusCode::OK {
        assert!(Instant::now() < deadline, "the new token never took effect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        get(addr, "/api/recordings", Some(A_TOKEN)).await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );

    // A file that cannot be read leaves the tokens in force; the next good one is read.
    std::fs::write(&next, "too-short newcomer a\n").expect("write");
    std::fs::rename(&next, &tokens).expect("rename");
    std::fs::write(&next, format!("{NEW} newcomer a\n{B_TOKEN} viewer-b b\n")).expect("write");
    std::fs::rename(&next, &tokens).expect("rename");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(addr, "/api/recordings", Some(B_TOKEN)).await.0 != reqwest::StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the fixed file never took effect"
        );
        assert_eq!(
            get(addr, "/api/recordings", Some(NEW)).await.0,
            reqwest::StatusCode::OK,
            "a bad file must not drop the tokens in force"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_token_file_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    let tokens = dir.path().join("bad-tokens");
    std::fs::write(&tokens, "0123456789abcdef alice\n").expect("write");
    options.access.viewer_tokens = Some(tokens);
    let error = RecorderServer::start(options).await.expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("line 1: expected TOKEN NAME NAMESPACES"),
        "{error}"
    );
}

#[tokio::test]
async fn read_anonymous_lets_anyone_read_and_records_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    options.access.read_anonymous = true;
    let server = RecorderServer::start(options).await.expect("start");
    store_cast(server.store(), "b", "bob@example.com").await;
    let listed = get_json(server.addr(), "/api/recordings", None).await;
    assert_eq!(listed.as_array().expect("array").len(), 1);
    let views = views(server.store()).await;
    assert_eq!(views.len(), 1);
    assert_eq!(views[0]["viewer"]["via"], "anonymous");
    assert_eq!(views[0]["viewer"]["name"], "anonymous");
    server.shutdown().await;
}

fn whois(login: &str, rules: Value) -> Value {
    json!({
        "Node": {"ID": 7, "StableID": "nLaptop", "Name": "laptop.tail1.ts.net.", "User": 42,
                 "Addresses": ["100.64.0.7/32"]},
        "UserProfile": {"ID": 42, "LoginName": login, "DisplayName": "Alice"},
        "CapMap": {"tailscale.com/cap/kube-recorder": rules},
    })
}

fn table(entry: Option<Value>) -> WhoIsTable {
    let mut table = WhoIsTable::new();
    if let Some(entry) = entry {
        table.insert("127.0.0.1", entry);
    }
    table
}

#[tokio::test]
async fn tailnet_callers_write_and_view_as_their_capability_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("tailscaled.sock");
    let standin = LocalApiStandIn::start(
        &socket,
        table(Some(whois(
            "alice@example.com",
            json!([{"write": true}, {"view": {"namespaces": ["a"]}}]),
        ))),
        StandInOptions::default(),
    )
    .await
    .expect("LocalAPI stand-in");
    let mut options = common::options(&dir);
    // Loopback is not allowed by address: only the tailnet grant lets this caller write.
    options.access.ingest_allow = Vec::new();
    options.access.localapi_socket = Some(socket.clone());
    options.access.whois_ttl = Duration::ZERO;
    let server = RecorderServer::start(options).await.expect("start");
    let addr = server.addr();

    // A writer by its grant: events and recordings are taken.
    for (id, namespace) in [("e-a", "a"), ("e-b", "b")] {
        let (status, body) = post(addr, "/v2/event", event(id, namespace, "x@example.com")).await;
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    for namespace in ["a", "b"] {
        let (status, _) = post(addr, "/record", cast(namespace, "x@example.com")).await;
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    // A viewer of namespace a, without any token.
    let listed = get_json(addr, "/api/recordings", None).await;
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["namespace"], "a");
    let all: Vec<RecordingMeta> = server.store().list().await.expect("list");
    let in_b = all
        .iter()
        .find(|m| m.namespace.as_deref() == Some("b"))
        .expect("b's recording");
    let (status, _, _) = get(addr, &format!("/api/recordings/{}", in_b.id), None).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert_eq!(ids(&get_json(addr, "/api/events", None).await), ["e-a"]);
    let views = views(server.store()).await;
    assert_eq!(views[0]["viewer"]["via"], "tailnet");
    assert_eq!(views[0]["viewer"]["name"], "alice@example.com");
    assert_eq!(views[0]["source"]["nodeUser"], "alice@example.com");
    assert_eq!(views[0]["source"]["node"], "laptop.tail1.ts.net");

    // Only a viewer: uploads refused, reads allowed.
    standin.replace_table(table(Some(whois(
        "alice@example.com",
        json!([{"view": {"namespaces": "*", "users": ["x@example.com"]}}]),
    ))));
    let (status, body) = post(addr, "/v2/event", event("e-c", "a", "x@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    assert!(error_of(&body).contains("\"write\": true"));
    let listed = get_json(addr, "/api/recordings", None).await;
    assert_eq!(listed.as_array().expect("array").len(), 2);

    // A capability that cannot be read refuses both, naming the problem.
    standin.replace_table(table(Some(whois(
        "alice@example.com",
        json!([{"write": true, "view": {"namespace": ["a"]}}]),
    ))));
    let (status, body) = post(addr, "/v2/event", event("e-d", "a", "x@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    assert!(
        error_of(&body).contains("unknown key"),
        "{}",
        error_of(&body)
    );
    let (status, _, body) = get(addr, "/api/recordings", None).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    assert!(
        error_of(&body).contains("\"view\".\"namespace\""),
        "{}",
        error_of(&body)
    );

    // No capability at all: a known node, but neither writer nor viewer.
    standin.replace_table(table(Some(whois("alice@example.com", json!([])))));
    let (status, _) = post(addr, "/record", cast("a", "x@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    assert_eq!(
        get(addr, "/api/recordings", None).await.0,
        reqwest::StatusCode::FORBIDDEN
    );
    // Not a tailnet node: no writer, no viewer (but a token still works).
    standin.replace_table(table(None));
    let (status, _) = post(addr, "/v2/event", event("e-e", "a", "x@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    assert_eq!(
        get(addr, "/api/recordings", None).await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(addr, "/api/recordings", Some(common::ADMIN_TOKEN))
            .await
            .0,
        reqwest::StatusCode::OK
    );
    let stored = server
        .store()
        .events(&EventFilter {
            event_type: Some("kubernetes-api-request".into()),
            ..EventFilter::default()
        })
        .await
        .expect("events");
    assert_eq!(stored.len(), 2, "only the writer's events are stored");
    server.shutdown().await;
    standin.shutdown().await;
}

#[tokio::test]
async fn whois_answers_are_reused_for_their_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("tailscaled.sock");
    let standin = LocalApiStandIn::start(
        &socket,
        table(Some(whois(
            "alice@example.com",
            json!([{"view": {"namespaces": "*"}}]),
        ))),
        StandInOptions::default(),
    )
    .await
    .expect("LocalAPI stand-in");
    let mut options = common::options(&dir);
    options.access.localapi_socket = Some(socket.clone());
    options.access.whois_ttl = Duration::from_secs(3600);
    let server = RecorderServer::start(options).await.expect("start");
    // One connection, so one caller address: its answer is kept.
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/recordings", server.addr());
    assert_eq!(client.get(&url).send().await.expect("GET").status(), 200);
    standin.replace_table(table(None));
    assert_eq!(client.get(&url).send().await.expect("GET").status(), 200);
    // Another address (a new connection) is asked about afresh.
    assert_eq!(
        reqwest::Client::new()
            .get(&url)
            .send()
            .await
            .expect("GET")
            .status(),
        401
    );
    server.shutdown().await;
    standin.shutdown().await;
}

fn kube_recorder() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-recorder"));
    command
        .env_remove("KUBE_RECORDER_LISTEN")
        .env_remove("KUBE_RECORDER_TOKEN")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn serve_flags_split_and_protect_the_surfaces() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("viewers");
    std::fs::write(&tokens, format!("{A_TOKEN} viewer-a a\n")).expect("token file");
    let data = dir.path().join("data");
    let mut child = kube_recorder()
        .args([
            "serve",
            "--ingest-listen",
            "127.0.0.1:0",
            "--read-listen",
            "127.0.0.1:0",
            "--ingest-allow",
            "127.0.0.1/32",
            "::1",
        ])
        .arg("--viewer-tokens")
        .arg(&tokens)
        .arg("--dir")
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut addrs = Vec::new();
    for prefix in ["ingest listening on http://", "read listening on http://"] {
        let mut line = String::new();
        stdout.read_line(&mut line).await.expect("a line");
        let addr: SocketAddr = line
            .trim_end()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .parse()
            .expect("an address");
        addrs.push(addr);
    }
    let (ingest, read) = (addrs[0], addrs[1]);
    let (status, _) = post(ingest, "/v2/event", event("e-a", "a", "x@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let (status, _) = post(read, "/v2/event", event("e-b", "a", "x@example.com")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    assert_eq!(
        get(read, "/api/recordings", None).await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ids(&get_json(read, "/api/events", Some(A_TOKEN)).await),
        ["e-a"]
    );
    child.kill().await.expect("kill");

    // Mistakes are refused before anything listens.
    for (args, expected) in [
        (
            &["--listen", "127.0.0.1:0", "--ingest-listen", "127.0.0.1:0"][..],
            "cannot be used with",
        ),
        (&["--ingest-listen", "127.0.0.1:0"][..], "--read-listen"),
        (
            &["--ingest-allow", "10.0.0.1/8"][..],
            "address bits set beyond the prefix length",
        ),
    ] {
        let output = kube_recorder()
            .arg("serve")
            .args(args)
            .arg("--dir")
            .arg(&data)
            .output()
            .await
            .expect("run");
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
