//! Attacks on the request path, with a raw TLS client: what the proxy records (events, casts) and
//! decides on must be exactly what the API server serves.

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use e2e::raw::{request_bytes, RawClient, WEBSOCKET_UPGRADE};
use e2e::stack::{fixture_caller, RecordingGrant, Stack, StackOptions};
use serde_json::Value;

fn upstream_paths(stack: &Stack) -> anyhow::Result<Vec<String>> {
    Ok(stack
        .upstream_requests()?
        .iter()
        .filter_map(|r| r["path"].as_str().map(String::from))
        .collect())
}

fn get(stack: &Stack, path: &str) -> anyhow::Result<(u16, String)> {
    let mut client = RawClient::connect(&stack.proxy_url)?;
    client.send(&request_bytes(
        "GET",
        path,
        &[("Accept", "application/json"), ("Connection", "close")],
        b"",
    ))?;
    match client.read_response() {
        Ok((head, body)) => Ok((head.status, String::from_utf8_lossy(&body).into_owned())),
        Err(error) => Err(error.context(format!("GET {path}"))),
    }
}

/// Dot segments (as sent, percent-encoded, mixed) and backslashes are refused before an event is
/// recorded or anything goes upstream: the URL parser on the way would otherwise turn
/// `demo/../../../kube-system/secrets/db` into `kube-system/secrets/db` while the event said
/// `default/pods/demo`.
#[test]
fn paths_that_would_be_rewritten_on_the_way_are_refused() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions {
        recording: Some(RecordingGrant {
            events: true,
            ..RecordingGrant::ENFORCED
        }),
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    for path in [
        "/api/v1/namespaces/default/pods/demo/../../../kube-system/secrets/db",
        "/api/v1/namespaces/default/pods/demo/%2e%2e/%2e%2e/%2E%2E/kube-system/secrets/db",
        "/api/v1/namespaces/default/pods/demo/.%2e/.%2e/.%2e/kube-system/secrets/db",
        "/api/v1/namespaces/default/pods/demo/..%2f..%2f..%2fkube-system/secrets/db",
        "/api/v1/namespaces/default/pods/demo\\..\\..\\..\\kube-system\\secrets\\db",
        "/api/v1/namespaces/default/pods/demo%5c..%5c..%5ckube-system%5csecrets",
        // Asterisk form: not a path, so nothing to join to the server's base path.
        "*",
    ] {
        let (status, body) = get(&stack, path)?;
        assert_eq!(status, 400, "{path}: {body}");
    }
    let paths = upstream_paths(&stack)?;
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("kube-system") || p.contains("..")),
        "refused paths reached upstream: {paths:?}"
    );
    let events = stack.events("")?;
    assert!(
        events.is_empty(),
        "refused requests must not be recorded as served: {events:?}"
    );

    // An escaped path that can be carried unchanged is: upstream gets those very bytes, and the
    // event reads the names as the API server does.
    let escaped = "/api/v1/namespaces/d%65fault/pods/d%65mo";
    let (status, body) = get(&stack, escaped)?;
    assert_eq!(status, 200, "{body}");
    assert!(
        upstream_paths(&stack)?.iter().any(|p| p == escaped),
        "upstream must get the path byte for byte"
    );
    let events = stack.events("")?;
    let event = events
        .iter()
        .find(|e| e["request"]["path"] == escaped)
        .ok_or_else(|| anyhow::anyhow!("no event for {escaped}: {events:?}"))?;
    assert_eq!(event["kubernetes"]["Namespace"], "default");
    assert_eq!(event["kubernetes"]["Name"], "demo");
    Ok(())
}

/// A session recorded through a percent-encoded path names the pod and namespace it ran in.
#[test]
fn recordings_name_the_pod_as_the_apiserver_decodes_it() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions {
        recording: Some(RecordingGrant::ENFORCED),
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    let mut headers = WEBSOCKET_UPGRADE.to_vec();
    headers.push(("Connection", "Upgrade"));
    let mut client = RawClient::connect(&stack.proxy_url)?;
    client.send(&request_bytes(
        "GET",
        "/api/v1/namespaces/d%65fault/pods/d%65mo/exec?command=echo&command=hi&stdout=true",
        &headers,
        b"",
    ))?;
    let head = client.read_head()?;
    assert_eq!(head.status, 101, "{head:?}\n{}", stack.logs());
    // The session ends with its status on the error channel; wait for it, then leave.
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("Success") {
        let chunk = client.read_some()?;
        anyhow::ensure!(!chunk.is_empty(), "session ended without a status");
        received.extend(chunk);
    }
    client.close();
    let recordings = stack.finished_recordings(1)?;
    let id = recordings[0]["id"].as_str().unwrap_or_default().to_string();
    let cast = stack.recording_cast(&id)?;
    let header = e2e::cast::header_of(&cast)?;
    let kubernetes: &Value = &header["kubernetes"];
    assert_eq!(kubernetes["PodName"], "demo", "{header}");
    assert_eq!(kubernetes["Namespace"], "default", "{header}");
    Ok(())
}

/// With recording enforced, the kubelet's command endpoints behind `nodes/proxy` (which the
/// session recording never sees) are refused with a reason; without enforcement they pass.
#[test]
fn kubelet_commands_through_the_node_proxy_are_refused_when_recording_is_enforced(
) -> anyhow::Result<()> {
    let enforced = Stack::start(StackOptions {
        recording: Some(RecordingGrant::ENFORCED),
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    for path in [
        "/api/v1/nodes/node-1/proxy/run/default/demo/app?cmd=id",
        "/api/v1/nodes/node-1/proxy/exec/default/demo/app?command=id",
        "/api/v1/nodes/node-1:10250/proxy/attach/default/demo/app",
        "/api/v1/nodes/node-1/proxy/portForward/default/demo",
        "/api/v1/nodes/node-1/proxy/cri/exec/token",
        "/api/v1/nodes/node-1/proxy//Run/default/demo/app?cmd=id",
        "/api/v1/nodes/node-1/proxy/r%75n/default/demo/app?cmd=id",
        // The resource itself escaped: the apiserver decodes it to `nodes` (the proxy's shortcut
        // past the check must not take these for other resources).
        "/api/v1/n%6fdes/node-1/proxy/run/default/demo/app?cmd=id",
        "/api/v1/%6Eodes/node-1/proxy/exec/default/demo/app?command=id",
        "/api/v1/proxy/n%6Fdes/node-1/run/default/demo/app?cmd=id",
    ] {
        let mut client = RawClient::connect(&enforced.proxy_url)?;
        client.send(&request_bytes(
            "POST",
            path,
            &[
                ("Connection", "close"),
                ("Content-Type", "application/json"),
            ],
            b"{}",
        ))?;
        let (head, body) = client.read_response()?;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(head.status, 403, "{path}: {body}");
        assert!(body.contains("enforceRecorder"), "{path}: {body}");
    }
    let reached: Vec<String> = upstream_paths(&enforced)?
        .into_iter()
        .filter(|p| p.contains("/nodes/") || p.contains("des/node-1"))
        .collect();
    assert!(
        reached.is_empty(),
        "refused requests reached upstream: {reached:?}"
    );

    // A read-only kubelet endpoint passes, and without enforcement so does `run`.
    let (_, _) = get(&enforced, "/api/v1/nodes/node-1/proxy/stats/summary")?;
    assert!(upstream_paths(&enforced)?
        .iter()
        .any(|p| p == "/api/v1/nodes/node-1/proxy/stats/summary"));
    let open = Stack::start(StackOptions {
        recording: Some(RecordingGrant {
            enforce: false,
            ..RecordingGrant::ENFORCED
        }),
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    let mut client = RawClient::connect(&open.proxy_url)?;
    client.send(&request_bytes(
        "POST",
        "/api/v1/nodes/node-1/proxy/run/default/demo/app?cmd=id",
        &[("Connection", "close")],
        b"",
    ))?;
    client.read_response()?;
    assert!(upstream_paths(&open)?
        .iter()
        .any(|p| p.starts_with("/api/v1/nodes/node-1/proxy/run/")));
    Ok(())
}

/// An upstream under a base path that never answers: the first line of every request the proxy
/// sends it goes on the channel.
fn request_lines_upstream(base_path: &str) -> anyhow::Result<(String, mpsc::Receiver<String>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}{base_path}", listener.local_addr()?);
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let sender = sender.clone();
            std::thread::spawn(move || {
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while !line.ends_with(b"\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
                    line.push(byte[0]);
                }
                let _ = sender.send(String::from_utf8_lossy(&line).trim_end().to_owned());
                // Held open, unanswered, until the test ends.
                let _ = stream.read(&mut [0u8; 1]);
            });
        }
    });
    Ok((url, receiver))
}

/// A request target that is not a path (`*`) has nothing to join to the server's base path:
/// joined as it is, `GET *` would reach a server under `/k8s/clusters/c-1/` as the sibling path
/// `/k8s/clusters/c-1*`. It is refused, and nothing of it goes upstream; a path is joined.
#[test]
fn a_target_that_is_not_a_path_never_reaches_a_base_path_upstream() -> anyhow::Result<()> {
    let (url, lines) = request_lines_upstream("/k8s/clusters/c-1/")?;
    let stack = Stack::start(StackOptions {
        upstream_override: Some(url),
        ..StackOptions::for_caller(fixture_caller("user-node")?)
    })?;
    let (status, body) = get(&stack, "*")?;
    assert_eq!(status, 400, "{body}");
    // A path afterwards: once its line has arrived, every line before it is on the channel too
    // (the refused request was answered before this one was sent).
    let mut client = RawClient::connect(&stack.proxy_url)?;
    client.send(&request_bytes(
        "GET",
        "/api/v1/namespaces/default/pods",
        &[("Accept", "application/json")],
        b"",
    ))?;
    let mut seen = Vec::new();
    loop {
        let line = lines.recv_timeout(Duration::from_secs(30))?;
        let done = line.contains("/api/v1/namespaces/default/pods");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|line| line == "GET /k8s/clusters/c-1/api/v1/namespaces/default/pods HTTP/1.1"),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|line| line.contains('*')),
        "the refused target went upstream: {seen:?}"
    );
    Ok(())
}
