//! The `kube-recorder` binary: `serve`, `ls`, `play`, `events`.

mod common;

use std::process::Stdio;

use bytes::Bytes;
use common::{channel_body, fixture, h2c, output_text, NdjsonReader};
use http::Request;
use recorder_server::{Outcome, Protocol, RecorderServer, RecordingEnd, RecordingMeta, Store};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::Command;

fn kube_recorder() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kube-recorder"));
    command
        .env_remove("KUBE_RECORDER_DIR")
        .env_remove("KUBE_RECORDER_SERVER")
        .env_remove("KUBE_RECORDER_LISTEN")
        .env_remove("KUBE_RECORDER_TOKEN_FILE")
        .env("KUBE_RECORDER_TOKEN", common::ADMIN_TOKEN)
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    command
}

/// Runs the binary to the end; returns (success, stdout, stderr).
async fn run(args: &[&str]) -> (bool, String, String) {
    let output = kube_recorder()
        .args(args)
        .output()
        .await
        .expect("run kube-recorder");
    (
        output.status.success(),
        String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn store_cast(store: &Store, name: &str) -> RecordingMeta {
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    writer.write(&fixture(name)).await.expect("write");
    writer.finish(RecordingEnd::Complete).await.expect("finish")
}

#[tokio::test]
async fn serve_prints_one_line_then_stops_on_sigterm_keeping_cut_uploads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("UTF-8 path");
    let mut child = kube_recorder()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            dir_arg,
            "--shutdown-grace",
            "0.1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("listening line");
    let addr = line
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let addr: std::net::SocketAddr = addr.parse().expect("an address");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);

    // An upload in flight over h2c; its ack proves the server holds the bytes.
    let cast = fixture("session.cast");
    let (mut sender, _driver) = h2c(addr).await;
    let (chunks, body) = channel_body();
    let request = Request::post(format!("http://{addr}/v2/record"))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let mut acks = NdjsonReader::new(response.into_body());
    chunks
        .send(Bytes::copy_from_slice(&cast[..350]))
        .await
        .expect("send");
    while acks.next().await.expect("ack")["ack"].as_u64() < Some(350) {}

    let pid = child.id().expect("pid").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(killed.success());
    let error = loop {
        let frame = acks.next().await.expect("frames until the error");
        if frame.get("error").is_some() {
            break frame;
        }
    };
    assert_eq!(error["error"], "the recorder shut down during the upload");
    let status = child.wait().await.expect("exit");
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let mut rest = String::new();
    stdout
        .read_to_string(&mut rest)
        .await
        .expect("rest of stdout");
    assert_eq!(rest, "", "exactly one line on stdout");

    let meta = &Store::open(dir.path())
        .await
        .expect("open")
        .list()
        .await
        .expect("list")[0];
    assert_eq!(meta.outcome, Outcome::Incomplete);
    assert_eq!(meta.bytes, 350);
    assert_eq!(meta.src_node_user.as_deref(), Some("alice@example.com"));
    drop(chunks);
}

#[tokio::test]
async fn serve_no_events_answers_404_on_the_event_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("UTF-8 path");
    let mut child = kube_recorder()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            dir_arg,
            "--no-events",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("listening line");
    let url = line
        .trim_end()
        .strip_prefix("listening on ")
        .map(str::to_owned);
    let url = url.unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let client = common::client();
    for (method, path, expected) in [
        (
            reqwest::Method::HEAD,
            "/v2/event",
            reqwest::StatusCode::NOT_FOUND,
        ),
        (
            reqwest::Method::POST,
            "/v2/event",
            reqwest::StatusCode::NOT_FOUND,
        ),
        (reqwest::Method::HEAD, "/v2/record", reqwest::StatusCode::OK),
    ] {
        let response = client
            .request(method.clone(), format!("{url}{path}"))
            .body(fixture("events/get-pods-alice.json"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), expected, "{method} {path}");
    }
    child.kill().await.expect("kill");
}

#[tokio::test]
async fn ls_play_and_events_read_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("UTF-8 path");
    let server = common::start(&dir).await;
    let session = store_cast(server.store(), "session.cast").await;
    let tagged = store_cast(server.store(), "tagged.cast").await;
    let client = common::client();
    for name in [
        "events/get-pods-alice.json",
        "events/create-deploy-ci.json",
        "events/exec-bob.json",
    ] {
        let status = client
            .post(format!("http://{}/v2/event", server.addr()))
            .body(fixture(name))
            .send()
            .await
            .expect("POST")
            .status();
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    server.shutdown().await;

    let (ok, out, err) = run(&["ls", "--dir", dir_arg]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("ID "), "{out}");
    assert!(lines[1].starts_with(&tagged.id), "newest first: {out}");
    for expected in [
        session.id.as_str(),
        "2024-05-01T12:03:04Z",
        "1.8s",
        "alice@example.com",
        "default/demo/main",
        "exec",
        "3",
        "complete",
    ] {
        assert!(
            lines[2].contains(expected),
            "{expected:?} in {:?}",
            lines[2]
        );
    }
    assert!(
        lines[1].contains("tag:ci,tag:k8s") && lines[1].contains("prod/web-0/app"),
        "{}",
        lines[1]
    );

    let (ok, out, err) = run(&["ls", "--dir", dir_arg, "--json"]).await;
    assert!(ok, "{err}");
    let listed: Vec<RecordingMeta> = serde_json::from_str(&out).expect("JSON");
    assert_eq!(listed, vec![tagged.clone(), session.clone()]);

    let (ok, out, err) = run(&["play", &session.id, "--dir", dir_arg, "--speed", "1000000"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, output_text(&fixture("session.cast")));
    assert_eq!(
        out,
        "$ echo h\u{e9}llo\r\nh\u{e9}llo \u{2603}\r\n$ exit 3\r\n"
    );

    let (ok, out, err) = run(&[
        "events",
        "--dir",
        dir_arg,
        "--user",
        "alice@example.com",
        "--json",
    ])
    .await;
    assert!(ok, "{err}");
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["0a1b2c3d-0001"]);
    let (ok, out, err) = run(&["events", "--dir", dir_arg, "--verb", "create"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "2024-05-01T13:00:00Z  tag:ci,tag:k8s  create  prod  deployments  request  POST /apis/apps/v1/namespaces/prod/deployments?fieldManager=kubectl-client-side-apply",
            "2024-05-03T09:00:00Z  bob@example.com  create  default  pods/demo/exec  request  POST /api/v1/namespaces/default/pods/demo/exec?command=sh&stdin=true&tty=true",
        ]
    );
}

/// Posts the fixtures to a fresh recorder in `dir`, in order, and returns it still running.
async fn server_with_events(dir: &tempfile::TempDir, names: &[&str]) -> RecorderServer {
    let server = common::start(dir).await;
    let client = common::client();
    for name in names {
        let status = client
            .post(format!("http://{}/v2/event", server.addr()))
            .body(fixture(name))
            .send()
            .await
            .expect("POST")
            .status();
        assert_eq!(status, reqwest::StatusCode::OK, "{name}");
    }
    server
}

/// `kube-recorder events` reading `source` (`--dir DIR` or `--server URL`) with more arguments;
/// its standard output.
async fn events(source: [&str; 2], extra: &[&str]) -> String {
    let mut args = vec!["events", source[0], source[1]];
    args.extend_from_slice(extra);
    let (ok, out, err) = run(&args).await;
    assert!(ok, "{args:?}: {err}");
    out
}

/// The lines of a command's output, checked to have no trailing whitespace.
fn lines(out: &str) -> Vec<&str> {
    assert!(out.is_empty() || out.ends_with('\n'), "{out:?}");
    let lines: Vec<&str> = out.lines().collect();
    for line in &lines {
        assert_eq!(line.trim_end(), *line, "trailing whitespace in {line:?}");
    }
    lines
}

const GET_PODS_REQUEST: &str = "2024-05-01T12:00:00Z  alice@example.com  list  default  pods  request  GET /api/v1/namespaces/default/pods?limit=500";
const GET_PODS_RESPONSE: &str = "2024-05-01T12:00:00Z  alice@example.com  list  default  pods  response  GET /api/v1/namespaces/default/pods?limit=500  200  12.5ms  3456 bytes";
const DELETE_REQUEST: &str = "2024-05-02T08:30:00Z  alice@example.com  delete  prod  pods/web-0  request  DELETE /api/v1/namespaces/prod/pods/web-0";
const LONE_RESPONSE: &str = "2024-05-03T09:00:05Z  bob@example.com  get  default  pods/gone  response  (request event 0a1b2c3d-0005 not found)  404  3.4ms  187 bytes";

#[tokio::test]
async fn events_pair_each_response_with_its_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("UTF-8 path");
    let server = server_with_events(
        &dir,
        &[
            "events/get-pods-alice.json",
            "events/get-pods-alice-response.json",
            "events/delete-pod-alice.json",
            "events/get-pod-gone-bob-response.json",
        ],
    )
    .await;
    let url = format!("http://{}", server.addr());

    // The same from a directory and from a running recorder.
    for source in [["--dir", dir_arg], ["--server", url.as_str()]] {
        // A request and its response (status and duration beside the request's method and path),
        // another request, and a response whose request was never stored.
        assert_eq!(
            lines(&events(source, &[]).await),
            [
                GET_PODS_REQUEST,
                GET_PODS_RESPONSE,
                DELETE_REQUEST,
                LONE_RESPONSE
            ],
            "{source:?}"
        );
        // Only the lone response: it says its request is not there rather than leave blanks.
        assert_eq!(
            lines(&events(source, &["--user", "bob@example.com"]).await),
            [LONE_RESPONSE]
        );
        // --type: the responses still show their requests' method and path, found by id.
        for response in ["response", "kubernetes-api-response"] {
            assert_eq!(
                lines(&events(source, &["--type", response]).await),
                [GET_PODS_RESPONSE, LONE_RESPONSE],
                "--type {response}"
            );
        }
        assert_eq!(
            lines(&events(source, &["--type", "request"]).await),
            [GET_PODS_REQUEST, DELETE_REQUEST]
        );
        assert_eq!(
            lines(&events(source, &["--type", "response", "--limit", "1"]).await),
            [LONE_RESPONSE]
        );
        assert_eq!(
            lines(&events(source, &["--id", "0a1b2c3d-0001"]).await),
            [GET_PODS_REQUEST, GET_PODS_RESPONSE]
        );
        assert_eq!(
            lines(&events(source, &["--type", "other"]).await),
            [] as [&str; 0]
        );
    }
    server.shutdown().await;

    // -o json: the stored events byte for byte, one per line, in the order stored.
    let files: Vec<_> = std::fs::read_dir(dir.path().join("events"))
        .expect("events dir")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1);
    let stored = std::fs::read_to_string(&files[0]).expect("event file");
    for flags in [&["-o", "json"][..], &["--output", "json"], &["--json"]] {
        let mut args = vec!["events", "--dir", dir_arg];
        args.extend_from_slice(flags);
        let (ok, out, err) = run(&args).await;
        assert!(ok, "{err}");
        assert_eq!(out, stored, "{flags:?}");
    }
    let (ok, out, err) = run(&["events", "--dir", dir_arg, "-o", "json"]).await;
    assert!(ok, "{err}");
    // The reads through --server above are recorded too, after the API events.
    let printed: Vec<serde_json::Value> = lines(&out)
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).expect("a JSON object per line")
        })
        .filter(|event| event["type"] != recorder_server::VIEW_EVENT_TYPE)
        .collect();
    let sent: Vec<serde_json::Value> = [
        "events/get-pods-alice.json",
        "events/get-pods-alice-response.json",
        "events/delete-pod-alice.json",
        "events/get-pod-gone-bob-response.json",
    ]
    .iter()
    .map(|name| serde_json::from_slice(&fixture(name)).expect("fixture"))
    .collect();
    assert_eq!(printed, sent);
    // Filters apply to JSON too.
    let (ok, out, err) = run(&[
        "events", "--dir", dir_arg, "-o", "json", "--type", "response",
    ])
    .await;
    assert!(ok, "{err}");
    let stored_lines: Vec<&str> = stored.lines().collect();
    assert_eq!(lines(&out), [stored_lines[1], stored_lines[3]]);

    let (ok, _, err) = run(&["events", "--dir", dir_arg, "-o", "yaml"]).await;
    assert!(!ok);
    assert!(err.contains("'yaml'"), "{err}");
}

#[tokio::test]
async fn ls_and_play_read_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let session = store_cast(server.store(), "session.cast").await;
    let url = format!("http://{}", server.addr());

    let (ok, out, err) = run(&["ls", "--server", &url]).await;
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&session.id)),
        "{out}"
    );
    let (ok, out, err) = run(&["play", &session.id, "--server", &url, "--speed", "1e6"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, output_text(&fixture("session.cast")));
    // No API events; the reads above are recorded as view events of the token's viewer.
    let (ok, out, err) = run(&["events", "--server", &url]).await;
    assert!(ok, "{err}");
    let views = lines(&out);
    assert_eq!(views.len(), 2, "ls and play: {out}");
    assert!(views.iter().all(|l| l.contains("  admin  ")), "{out}");
    let (ok, out, err) = run(&["events", "--server", &url, "--type", "request"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "");
    server.shutdown().await;
}

#[tokio::test]
async fn mistakes_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("UTF-8 path");
    Store::create(dir.path()).await.expect("create");

    let (ok, _, err) = run(&["ls"]).await;
    assert!(!ok);
    assert!(err.contains("--server URL or --dir DIR"), "{err}");
    let (ok, _, err) = run(&["play", "20240101T000000Z-00000000", "--dir", dir_arg]).await;
    assert!(!ok);
    assert!(
        err.contains("no recording \"20240101T000000Z-00000000\""),
        "{err}"
    );
    let (ok, _, err) = run(&["play", "x", "--dir", dir_arg, "--speed", "0"]).await;
    assert!(!ok);
    assert!(err.contains("--speed 0"), "{err}");
    let (ok, _, err) = run(&["events", "--dir", dir_arg, "--since", "soon"]).await;
    assert!(!ok);
    assert!(err.contains("since=\"soon\""), "{err}");
    let (ok, _, err) = run(&["ls", "--dir", "/nonexistent/kube-recorder"]).await;
    assert!(!ok);
    assert!(err.contains("/nonexistent/kube-recorder"), "{err}");
}
