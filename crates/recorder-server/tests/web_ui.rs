//! The web UI's HTTP surface: pages and assets with their security headers, the login that
//! turns a viewer token into a session cookie, search over recorded output with the list's
//! filters, live views as Server-Sent Events, seal status, and viewer scoping on each of them.
//! (A real browser drives the same surface in the e2e suite: `crates/e2e/tests/web_ui.rs`.)

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::ADMIN_TOKEN;
use futures_util::StreamExt as _;
use recorder_server::{Protocol, RecorderServer, RecordingEnd, RecordingMeta, Store};
use serde_json::Value;

/// A viewer of namespace `other` only.
const OTHER_TOKEN: &str = "other-token-0123456789";
const DEADLINE: Duration = Duration::from_secs(20);

async fn start(dir: &tempfile::TempDir) -> RecorderServer {
    let mut options = common::options(dir);
    let tokens = dir.path().join("viewer-tokens");
    std::fs::write(
        &tokens,
        format!("{ADMIN_TOKEN} admin *\n{OTHER_TOKEN} other-viewer other\n"),
    )
    .expect("token file");
    options.access.viewer_tokens_interval = Duration::from_millis(20);
    RecorderServer::start(options).await.expect("server starts")
}

fn header(namespace: &str, pod: &str, command: &str) -> String {
    let header = serde_json::json!({
        "version": 2, "width": 100, "height": 30, "timestamp": 1_714_564_984,
        "command": command, "srcNode": "laptop.tail1234.ts.net",
        "srcNodeUser": "alice@example.com",
        "kubernetes": {"PodName": pod, "Namespace": namespace, "Container": "main", "SessionType": "exec"},
    });
    format!("{header}\n")
}

fn output(time: f64, text: &str) -> String {
    format!("{}\n", serde_json::json!([time, "o", text]))
}

async fn store_cast(store: &Store, cast: &str) -> RecordingMeta {
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    writer.write(cast.as_bytes()).await.expect("write");
    writer.finish(RecordingEnd::Complete).await.expect("finish")
}

/// A client with no credentials at all.
fn anonymous() -> reqwest::Client {
    reqwest::Client::new()
}

fn bearer(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let (status, _, body) = get(client, url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn base(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

#[tokio::test]
async fn pages_and_assets_carry_the_security_headers_and_revalidate_by_etag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let url = base(server.addr());
    let client = anonymous();
    for (path, content_type) in [
        ("/ui/", "text/html"),
        ("/ui/recordings/20240501T120304Z-0123abcd", "text/html"),
        ("/ui/assets/list.js", "text/javascript"),
        ("/ui/assets/recording.js", "text/javascript"),
        ("/ui/assets/common.js", "text/javascript"),
        ("/ui/assets/ui.css", "text/css"),
        ("/ui/assets/asciinema-player.min.js", "text/javascript"),
        ("/ui/assets/asciinema-player.css", "text/css"),
    ] {
        let (status, headers, body) = get(&client, &format!("{url}{path}")).await;
        assert_eq!(status, 200, "{path}: {body}");
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval';"),
            "{csp}"
        );
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"),
            "{csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let etag = header("etag");
        assert!(etag.starts_with('"') && etag.len() > 10, "{path}: {etag:?}");
        // Our pages carry no inline script: every script is a file of ours.
        if content_type == "text/html" {
            assert!(!body.contains("<script>"), "{path} has an inline script");
            for handler in ["onclick", "onload", "onerror", "onsubmit", "javascript:"] {
                assert!(!body.contains(handler), "{path} has {handler}");
            }
        }
        let again = client
            .get(format!("{url}{path}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("GET");
        assert_eq!(again.status().as_u16(), 304, "{path}");
    }
    // The JSON endpoints have the headers too, and are never cached.
    let (status, headers, _) = get(&bearer(ADMIN_TOKEN), &format!("{url}/api/recordings")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.contains_key("content-security-policy"));

    let (status, headers, body) = get(&client, &format!("{url}/ui/assets/nothing.js")).await;
    assert_eq!(status, 404);
    assert!(headers["content-type"]
        .to_str()
        .unwrap_or_default()
        .contains("json"));
    assert!(body.contains("\"error\""), "{body}");
    let (status, _, _) = get(&client, &format!("{url}/ui/assets/list.html")).await;
    assert_eq!(status, 404, "pages are served at their own paths only");
    let response = client.get(format!("{url}/")).send().await.expect("GET /");
    assert!(
        response.url().path().starts_with("/ui/"),
        "{}",
        response.url()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_unauthorised_browser_gets_no_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let meta = store_cast(
        server.store(),
        &(header("default", "secret-pod", "cat secret-command")
            + &output(0.1, "secret-output\r\n")),
    )
    .await;
    let url = base(server.addr());
    let client = anonymous();
    let id = &meta.id;
    for path in [
        "/api/whoami".to_owned(),
        "/api/recordings".to_owned(),
        "/api/recordings?q=secret".to_owned(),
        "/api/recordings/watch".to_owned(),
        format!("/api/recordings/{id}"),
        format!("/api/recordings/{id}/meta"),
        format!("/api/recordings/{id}/live"),
        format!("/api/recordings/{id}/verify"),
        "/api/events".to_owned(),
    ] {
        let (status, headers, body) = get(&client, &format!("{url}{path}")).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap_or_default()
                .contains("json"),
            "{path}"
        );
        assert!(!body.contains("secret"), "{path}: {body}");
    }
    // The page itself is open, and holds nothing of the recording.
    let (status, _, page) = get(&client, &format!("{url}/ui/recordings/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("secret") && !page.contains("alice"),
        "{page}"
    );
    // A cookie that names no session is no session.
    let forged = client
        .get(format!("{url}/api/recordings"))
        .header(
            "cookie",
            "kube_recorder_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .expect("GET");
    assert_eq!(forged.status().as_u16(), 401);
    server.shutdown().await;
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn login(url: &str, token: &str, extra: Option<(&str, &str)>) -> reqwest::Response {
    let mut request = anonymous()
        .post(format!("{url}/ui/login"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "token": token }).to_string());
    if let Some((name, value)) = extra {
        request = request.header(name, value);
    }
    request.send().await.expect("login")
}

/// `kube_recorder_session=VALUE` from a `Set-Cookie` line.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_token_viewer_logs_in_for_an_http_only_strict_cookie_and_out_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let url = base(server.addr());

    let refused = login(&url, "wrong-token-0123456789", None).await;
    assert_eq!(refused.status().as_u16(), 401);
    assert!(session_cookie(&refused).is_none());

    // Only JSON: a cross-site form cannot log a browser in.
    let form = anonymous()
        .post(format!("{url}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .expect("form login");
    assert_eq!(form.status().as_u16(), 415);
    assert!(session_cookie(&form).is_none());

    let response = login(&url, ADMIN_TOKEN, None).await;
    assert_eq!(response.status().as_u16(), 204);
    let set_cookie = session_cookie(&response).expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert!(
        !set_cookie.contains(ADMIN_TOKEN),
        "the cookie is not the token"
    );
    let cookie = cookie_pair(&set_cookie);

    let with_cookie = |path: &str| {
        anonymous()
            .get(format!("{url}{path}"))
            .header("cookie", cookie.clone())
            .send()
    };
    let me: Value = common::json(with_cookie("/api/whoami").await.expect("whoami")).await;
    assert_eq!(me["name"], "admin");
    assert_eq!(me["via"], "token");
    assert_eq!(
        with_cookie("/api/recordings")
            .await
            .expect("list")
            .status()
            .as_u16(),
        200
    );

    // Behind an HTTPS front the cookie is Secure.
    let secure = login(&url, ADMIN_TOKEN, Some(("x-forwarded-proto", "https"))).await;
    let secure_cookie = session_cookie(&secure).expect("cookie");
    assert!(secure_cookie.contains("; Secure"), "{secure_cookie}");

    // Logout ends the session on the server, not only in the browser.
    let logout = anonymous()
        .post(format!("{url}/ui/logout"))
        .header("content-type", "application/json")
        .header("cookie", cookie.clone())
        .body("{}")
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status().as_u16(), 204);
    assert!(session_cookie(&logout)
        .unwrap_or_default()
        .contains("Max-Age=0"));
    assert_eq!(
        with_cookie("/api/recordings")
            .await
            .expect("list")
            .status()
            .as_u16(),
        401
    );

    // A token taken out of the file ends its sessions too.
    let response = login(&url, OTHER_TOKEN, None).await;
    let other = cookie_pair(&session_cookie(&response).expect("cookie"));
    std::fs::write(
        dir.path().join("viewer-tokens"),
        format!("{ADMIN_TOKEN} admin *\n"),
    )
    .expect("token file");
    let until = Instant::now() + DEADLINE;
    loop {
        let status = anonymous()
            .get(format!("{url}/api/recordings"))
            .header("cookie", other.clone())
            .send()
            .await
            .expect("GET")
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
        assert!(
            Instant::now() < until,
            "the removed token's session still reads"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Logins and reads are in the record of reads.
    let views = get_json(
        &bearer(ADMIN_TOKEN),
        &format!("{url}/api/events?type=kube-recorder-view&limit=1000"),
    )
    .await;
    let logins = views
        .as_array()
        .map(|v| v.iter().filter(|e| e["action"] == "login").count())
        .unwrap_or_default();
    assert_eq!(logins, 3, "{views}");
    server.shutdown().await;
}

#[tokio::test]
async fn search_finds_words_only_in_the_output_of_recordings_the_viewer_may_see() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let store = server.store();
    let plain = store_cast(
        store,
        &(header("default", "web-1", "sh -c date")
            + &output(0.1, "Tue Apr 30\r\n")
            + &format!("{}\n", serde_json::json!([0.2, "i", "inputonly"]))
            + &output(0.3, "the magic word is XYZZY-")
            + &output(0.4, "Plugh\r\n")
            + &format!("{}\n", serde_json::json!([0.5, "m", "exit 3"]))),
    )
    .await;
    let other_ns = store_cast(
        store,
        &(header("other", "db-0", "psql") + &output(0.1, "xyzzy-plugh in another namespace\r\n")),
    )
    .await;
    let url = base(server.addr());
    let admin = bearer(ADMIN_TOKEN);

    // Case-insensitive, across two output events, with an excerpt.
    let found = get_json(&admin, &format!("{url}/api/recordings?q=xyzzy-plugh")).await;
    assert_eq!(
        ids(&found),
        [other_ns.id.clone(), plain.id.clone()],
        "{found}"
    );
    assert!(
        found[1]["match"]
            .as_str()
            .unwrap_or_default()
            .contains("XYZZY-Plugh"),
        "{found}"
    );
    assert_eq!(found[1]["exitCode"], 3);
    // Input, the header and the command are not output.
    for absent in ["inputonly", "web-1", "sh%20-c"] {
        let list = get_json(&admin, &format!("{url}/api/recordings?q={absent}")).await;
        assert_eq!(ids(&list), Vec::<String>::new(), "{absent}: {list}");
    }
    // A viewer of namespace `other` finds only its own.
    let other = bearer(OTHER_TOKEN);
    let list = get_json(&other, &format!("{url}/api/recordings?q=xyzzy")).await;
    assert_eq!(ids(&list), vec![other_ns.id.clone()], "{list}");
    let list = get_json(&other, &format!("{url}/api/recordings?q=tue%20apr")).await;
    assert_eq!(ids(&list), Vec::<String>::new(), "{list}");

    // The filters.
    for (query, expected) in [
        ("namespace=default", vec![plain.id.clone()]),
        ("namespace=defaul", vec![]),
        ("pod=WEB", vec![plain.id.clone()]),
        (
            "container=main",
            vec![other_ns.id.clone(), plain.id.clone()],
        ),
        ("command=psql", vec![other_ns.id.clone()]),
        ("user=alice", vec![other_ns.id.clone(), plain.id.clone()]),
        ("user=bob", vec![]),
        (
            "outcome=complete",
            vec![other_ns.id.clone(), plain.id.clone()],
        ),
        ("outcome=recording", vec![]),
        ("exit=3", vec![plain.id.clone()]),
        ("exit=0", vec![]),
        (
            "since=2024-05-01T00:00:00Z",
            vec![other_ns.id.clone(), plain.id.clone()],
        ),
        ("since=2024-05-02T00:00:00Z", vec![]),
        ("until=1714564983", vec![]),
        ("until=1714564984&q=tue", vec![plain.id.clone()]),
        ("limit=1", vec![other_ns.id.clone()]),
    ] {
        let list = get_json(&admin, &format!("{url}/api/recordings?{query}")).await;
        assert_eq!(ids(&list), expected, "{query}: {list}");
    }
    for bad in ["exit=x", "outcome=done", "since=yesterday", "limit=-1"] {
        let (status, _, body) = get(&admin, &format!("{url}/api/recordings?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("\"error\""), "{bad}: {body}");
    }
    let long = "a".repeat(300);
    let (status, _, _) = get(&admin, &format!("{url}/api/recordings?q={long}")).await;
    assert_eq!(status, 400);

    // Each search is recorded with its query.
    let views = get_json(
        &admin,
        &format!("{url}/api/events?type=kube-recorder-view&limit=1000"),
    )
    .await;
    assert!(
        views
            .as_array()
            .is_some_and(|v| v.iter().any(|e| e["query"] == "q=xyzzy-plugh")),
        "{views}"
    );
    server.shutdown().await;
}

/// Reads Server-Sent Events from a streaming response.
struct Events {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Events {
    fn new(response: reqwest::Response) -> Self {
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next message as `(event name, data)`, skipping comments; `None` when the stream ends
    /// (or nothing arrives before the deadline: the caller's assertion says which it wanted).
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push_str(value);
                    }
                }
                if block.starts_with(':') {
                    continue;
                }
                return Some((name, data));
            }
            match tokio::time::timeout(DEADLINE, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Output text of the next output message.
    async fn next_output(&mut self) -> Option<String> {
        let (name, data) = self.next().await?;
        assert_eq!(name, "message", "{data}");
        let event: Value = serde_json::from_str(&data).expect("JSON data");
        assert_eq!(event[1], "o", "{event}");
        event[2].as_str().map(str::to_owned)
    }
}

#[tokio::test]
async fn a_live_session_is_followed_as_it_is_written_until_it_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let url = base(server.addr());
    let admin = bearer(ADMIN_TOKEN);

    // The list watch tells of the new session at once.
    let watch = admin
        .get(format!("{url}/api/recordings/watch"))
        .send()
        .await
        .expect("watch");
    assert_eq!(watch.status().as_u16(), 200);
    assert!(watch.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let mut watch = Events::new(watch);
    assert_eq!(
        watch.next().await.map(|m| m.0).as_deref(),
        Some("changed"),
        "hello"
    );

    let mut writer = server
        .store()
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    let id = writer.id().to_owned();
    writer
        .write((header("default", "live-pod", "sh") + &output(0.1, "first-line\r\n")).as_bytes())
        .await
        .expect("write");
    writer.flush().await.expect("flush");
    assert_eq!(
        watch.next().await.map(|m| m.0).as_deref(),
        Some("changed"),
        "new session"
    );
    let listed = get_json(&admin, &format!("{url}/api/recordings?outcome=recording")).await;
    assert_eq!(ids(&listed), vec![id.clone()]);

    // A viewer of another namespace may not follow it.
    let (status, _, body) = get(
        &bearer(OTHER_TOKEN),
        &format!("{url}/api/recordings/{id}/live"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("first-line"));

    let live = admin
        .get(format!("{url}/api/recordings/{id}/live"))
        .send()
        .await
        .expect("live");
    assert_eq!(live.status().as_u16(), 200);
    let mut events = Events::new(live);
    let (name, data) = events.next().await.expect("the size first");
    assert_eq!(
        (name.as_str(), data.as_str()),
        ("message", r#"{"cols":100,"rows":30}"#)
    );
    assert_eq!(
        events.next_output().await.as_deref(),
        Some("first-line\r\n")
    );

    // Written while the viewer waits: it arrives without a new request.
    writer
        .write(output(0.5, "second-line\r\n").as_bytes())
        .await
        .expect("write");
    writer.flush().await.expect("flush");
    assert_eq!(
        events.next_output().await.as_deref(),
        Some("second-line\r\n")
    );
    let seal = get_json(&admin, &format!("{url}/api/recordings/{id}/verify")).await;
    assert_eq!(seal["status"], "recording", "{seal}");

    // Written and ended: the last output, then `done`, then the end of the stream.
    writer
        .write(output(0.9, "last-line\r\n").as_bytes())
        .await
        .expect("write");
    writer.finish(RecordingEnd::Complete).await.expect("finish");
    assert_eq!(events.next_output().await.as_deref(), Some("last-line\r\n"));
    assert_eq!(events.next().await.map(|m| m.0).as_deref(), Some("done"));
    assert_eq!(events.next().await, None, "the stream ends");

    let seal = get_json(&admin, &format!("{url}/api/recordings/{id}/verify")).await;
    assert_eq!(seal["status"], "verified", "{seal}");
    // A finished recording's live view plays it whole and ends.
    let mut again = Events::new(
        admin
            .get(format!("{url}/api/recordings/{id}/live"))
            .send()
            .await
            .expect("live"),
    );
    again.next().await.expect("size");
    let mut text = String::new();
    while let Some((name, data)) = again.next().await {
        if name == "done" {
            break;
        }
        let event: Value = serde_json::from_str(&data).expect("JSON");
        text.push_str(event[2].as_str().unwrap_or_default());
    }
    assert_eq!(text, "first-line\r\nsecond-line\r\nlast-line\r\n");

    let views = get_json(
        &admin,
        &format!("{url}/api/events?type=kube-recorder-view&limit=1000"),
    )
    .await;
    let actions: Vec<&str> = views
        .as_array()
        .map(|v| v.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        actions.contains(&"live") && actions.contains(&"verify"),
        "{actions:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_seal_status_reports_a_changed_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let meta = store_cast(
        server.store(),
        &(header("default", "p", "sh") + &output(0.1, "original\r\n")),
    )
    .await;
    let url = base(server.addr());
    let admin = bearer(ADMIN_TOKEN);
    let seal = get_json(&admin, &format!("{url}/api/recordings/{}/verify", meta.id)).await;
    assert_eq!(seal["status"], "verified", "{seal}");
    assert!(seal["keyId"].as_str().is_some_and(|k| !k.is_empty()));

    let path = server.store().cast_path(&meta.id).expect("path");
    let text = std::fs::read_to_string(&path).expect("cast");
    std::fs::write(&path, text.replace("original", "0riginal")).expect("tamper");
    let seal = get_json(&admin, &format!("{url}/api/recordings/{}/verify", meta.id)).await;
    assert_eq!(seal["status"], "failed", "{seal}");
    assert!(
        !seal["problems"]
            .as_array()
            .map(Vec::is_empty)
            .unwrap_or(true),
        "{seal}"
    );

    let (status, _, _) = get(
        &bearer(OTHER_TOKEN),
        &format!("{url}/api/recordings/{}/verify", meta.id),
    )
    .await;
    assert_eq!(status, 404, "outside the viewer's namespaces");
    server.shutdown().await;
}

fn tailnet_whois(rules: Value) -> Value {
    serde_json::json!({
        "Node": {"ID": 7, "StableID": "nLaptop", "Name": "laptop.tail1.ts.net.", "User": 42,
                 "Addresses": ["100.64.0.7/32"]},
        "UserProfile": {"ID": 42, "LoginName": "alice@example.com", "DisplayName": "Alice"},
        "CapMap": {"tailscale.com/cap/kube-recorder": rules},
    })
}

#[tokio::test]
async fn tailnet_viewers_need_no_login_and_see_only_their_namespaces() {
    use testkit::localapi_standin::{LocalApiStandIn, StandInOptions, WhoIsTable};
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("tailscaled.sock");
    let mut table = WhoIsTable::new();
    table.insert(
        "127.0.0.1",
        tailnet_whois(serde_json::json!([{"view": {"namespaces": ["a"]}}])),
    );
    let standin = LocalApiStandIn::start(&socket, table, StandInOptions::default())
        .await
        .expect("LocalAPI stand-in");
    let mut options = common::options(&dir);
    options.access.localapi_socket = Some(socket.clone());
    options.access.whois_ttl = Duration::ZERO;
    let server = RecorderServer::start(options).await.expect("start");
    let in_a = store_cast(
        server.store(),
        &(header("a", "pod-a", "sh") + &output(0.1, "shared-word in a\r\n")),
    )
    .await;
    let in_b = store_cast(
        server.store(),
        &(header("b", "pod-b", "sh") + &output(0.1, "shared-word in b\r\n")),
    )
    .await;
    let url = base(server.addr());
    let browser = anonymous();
    let me = get_json(&browser, &format!("{url}/api/whoami")).await;
    assert_eq!(me["via"], "tailnet", "{me}");
    assert_eq!(me["name"], "alice@example.com");
    let found = get_json(&browser, &format!("{url}/api/recordings?q=shared-word")).await;
    assert_eq!(ids(&found), vec![in_a.id.clone()], "{found}");
    for path in ["live", "verify", "meta"] {
        let (status, _, body) = get(
            &browser,
            &format!("{url}/api/recordings/{}/{path}", in_b.id),
        )
        .await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("shared-word"));
    }

    // Without a view rule: 403 with the reason (the page shows "Not allowed").
    let mut table = WhoIsTable::new();
    table.insert(
        "127.0.0.1",
        tailnet_whois(serde_json::json!([{"write": true}])),
    );
    standin.replace_table(table);
    let (status, _, body) = get(&browser, &format!("{url}/api/whoami")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("no tailscale.com/cap/kube-recorder rule with \\\"view\\\""),
        "{body}"
    );
    let (status, _, body) = get(&browser, &format!("{url}/api/recordings?q=shared-word")).await;
    assert_eq!(status, 403);
    assert!(!body.contains(&in_a.id));
    server.shutdown().await;
}

#[tokio::test]
async fn paths_that_reach_outside_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let url = base(server.addr());
    let admin = bearer(ADMIN_TOKEN);
    for path in [
        "/ui/assets/..%2f..%2fCargo.toml",
        "/ui/assets/%2e%2e%2fsrc%2flib.rs",
        "/ui/assets/..%2Fviewer-tokens",
    ] {
        let (status, _, body) = get(&admin, &format!("{url}{path}")).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            !body.contains(ADMIN_TOKEN) && !body.contains("[package]"),
            "{body}"
        );
    }
    for path in [
        "/api/recordings/..%2fviewer-tokens/live",
        "/api/recordings/..%2f..%2fetc%2fpasswd/verify",
    ] {
        let (status, _, body) = get(&admin, &format!("{url}{path}")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            !body.contains(ADMIN_TOKEN) && !body.contains("root:"),
            "{body}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn recordings_encrypted_at_rest_are_listed_but_not_searched_or_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let mut options = common::options(&dir);
    options.encrypt_to =
        recorder_server::crypt::Recipients::parse(&[recipient], &[]).expect("valid recipient");
    let server = RecorderServer::start(options).await.expect("start");
    let meta = store_cast(
        server.store(),
        &(header("default", "vault-0", "sh") + &output(0.1, "sealed-secret-word\r\n")),
    )
    .await;
    assert!(meta.encrypted);
    let url = base(server.addr());
    let admin = bearer(ADMIN_TOKEN);
    let listed = get_json(&admin, &format!("{url}/api/recordings")).await;
    assert_eq!(listed[0]["encrypted"], true, "{listed}");
    // The recorder holds ciphertext only: nothing to search, nothing to show live.
    let found = get_json(
        &admin,
        &format!("{url}/api/recordings?q=sealed-secret-word"),
    )
    .await;
    assert_eq!(ids(&found), Vec::<String>::new(), "{found}");
    let (status, _, body) = get(&admin, &format!("{url}/api/recordings/{}/live", meta.id)).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("play --identity"), "{body}");
    // Its seal is checked all the same (over the ciphertext).
    let seal = get_json(&admin, &format!("{url}/api/recordings/{}/verify", meta.id)).await;
    assert_eq!(seal["status"], "verified", "{seal}");
    server.shutdown().await;
}

#[tokio::test]
async fn guessing_tokens_through_the_login_form_is_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let url = base(server.addr());
    for guess in 0..10 {
        let response = login(&url, &format!("guess-{guess:016}"), None).await;
        assert_eq!(response.status().as_u16(), 401, "guess {guess}");
    }
    // Past the limit even the right token is refused from this address for now, so a guesser
    // learns nothing from the answer.
    for token in ["guess-eleventh-0000000", ADMIN_TOKEN] {
        let response = login(&url, token, None).await;
        assert_eq!(response.status().as_u16(), 429, "{token}");
        assert!(session_cookie(&response).is_none());
        let body = response.text().await.expect("body");
        assert!(body.contains("failed logins"), "{body}");
    }
    // Bearer reads are not logins: the API still answers the token.
    let (status, _, _) = get(&bearer(ADMIN_TOKEN), &format!("{url}/api/recordings")).await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

/// A live view is checked again at every wake-up: once its viewer logged out, what the session
/// writes next never reaches it, and the stream ends; the same for the list watch.
#[tokio::test]
async fn a_live_view_ends_when_its_viewer_logs_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir).await;
    let url = base(server.addr());
    let cookie =
        cookie_pair(&session_cookie(&login(&url, ADMIN_TOKEN, None).await).expect("cookie"));
    let mut writer = server
        .store()
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    let id = writer.id().to_owned();
    writer
        .write((header("default", "live-pod", "sh") + &output(0.1, "before-logout\r\n")).as_bytes())
        .await
        .expect("write");
    writer.flush().await.expect("flush");
    let follow = |path: String| {
        anonymous()
            .get(format!("{url}{path}"))
            .header("cookie", cookie.clone())
            .send()
    };
    let live = follow(format!("/api/recordings/{id}/live"))
        .await
        .expect("live");
    assert_eq!(live.status().as_u16(), 200);
    let mut events = Events::new(live);
    events.next().await.expect("the size first");
    assert_eq!(
        events.next_output().await.as_deref(),
        Some("before-logout\r\n")
    );
    let watch = follow("/api/recordings/watch".into()).await.expect("watch");
    assert_eq!(watch.status().as_u16(), 200);
    let mut watch = Events::new(watch);
    assert_eq!(watch.next().await.map(|m| m.0).as_deref(), Some("changed"));

    let logout = anonymous()
        .post(format!("{url}/ui/logout"))
        .header("content-type", "application/json")
        .header("cookie", cookie.clone())
        .body("{}")
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status().as_u16(), 204);
    writer
        .write(output(0.5, "after-logout\r\n").as_bytes())
        .await
        .expect("write");
    writer.flush().await.expect("flush");
    writer.finish(RecordingEnd::Complete).await.expect("finish");

    let mut rest = Vec::new();
    while let Some(event) = events.next().await {
        rest.push(event);
    }
    assert!(
        rest.iter().all(|(_, data)| !data.contains("after-logout")),
        "nothing written after the logout reaches the view: {rest:?}"
    );
    assert!(
        rest.iter().all(|(name, _)| name != "done"),
        "the view was cut, not played to its end: {rest:?}"
    );
    assert_eq!(watch.next().await, None, "the list watch ends too");
}
