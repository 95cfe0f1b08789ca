//! Who may read and who may write kube-recorder's store, end to end: sessions recorded through
//! the proxy with the real kubectl, then read over the recorder's API without a viewer, as a
//! viewer of one namespace, and uploaded by writers the recorder does not allow.

use std::time::{Duration, Instant};

use e2e::http;
use e2e::stack::{admin_caller, recorder_get, RecordingGrant, Stack, StackOptions};
use serde_json::Value;

/// A viewer of namespace `team-a` only, added to the stack's token file.
const TEAM_A_TOKEN: &str = "team-a-viewer-token-0123456789";

fn stack(events: bool, recorder_args: &[&str]) -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant {
        events,
        ..RecordingGrant::ENFORCED
    });
    options.recorder_args = recorder_args.iter().map(|a| a.to_string()).collect();
    let stack = Stack::start(options)?;
    stack.add_pod("team-a", "web")?;
    stack.add_pod("team-b", "db")?;
    Ok(stack)
}

fn exec(stack: &Stack, namespace: &str, pod: &str, word: &str) -> anyhow::Result<()> {
    let output = stack
        .kubectl
        .run(&["exec", "-n", namespace, pod, "--", "echo", word])?;
    anyhow::ensure!(
        output.code == Some(0) && output.stdout == format!("{word}\n"),
        "exec in {namespace}/{pod}: {output:?}\n{}",
        stack.logs()
    );
    Ok(())
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn reading_needs_a_viewer_and_a_viewer_sees_only_its_namespaces() -> anyhow::Result<()> {
    let stack = stack(true, &[])?;
    exec(&stack, "team-a", "web", "alpha-output")?;
    exec(&stack, "team-b", "db", "bravo-output")?;
    let all = stack.finished_recordings(2)?;
    let id_in = |namespace: &str| {
        all.iter()
            .find(|r| r["namespace"] == namespace)
            .and_then(|r| r["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no recording in {namespace}: {all:?}"))
    };
    let (a, b) = (id_in("team-a")?, id_in("team-b")?);
    let addr = stack.recorder_addr.clone().unwrap_or_default();

    // No viewer: 401 with a JSON error, for lists, fetches and events alike.
    for path in [
        "/api/recordings".to_owned(),
        format!("/api/recordings/{a}"),
        format!("/api/recordings/{b}/meta"),
        "/api/events".to_owned(),
    ] {
        let response = recorder_get(&addr, &path, None)?;
        assert_eq!(response.status, 401, "{path}: {}", response.text());
        assert!(response.json()?["error"].is_string(), "{path}");
        let response = recorder_get(&addr, &path, Some("not-a-token-of-this-recorder"))?;
        assert_eq!(response.status, 401, "{path} with a wrong token");
    }

    // A viewer of team-a, added while the recorder runs (the token file is read again).
    let tokens = stack.dir.join("recorder-viewers");
    let mut text = std::fs::read_to_string(&tokens)?;
    text.push_str(&format!("{TEAM_A_TOKEN} auditor-a team-a\n"));
    std::fs::write(&tokens, text)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let list = loop {
        let response = recorder_get(&addr, "/api/recordings", Some(TEAM_A_TOKEN))?;
        if response.status == 200 {
            break response.json()?;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the new token was not taken: {} {}",
            response.status,
            response.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ids(&list), vec![a.clone()], "{list}");

    let own = recorder_get(&addr, &format!("/api/recordings/{a}"), Some(TEAM_A_TOKEN))?;
    assert_eq!(own.status, 200);
    assert!(own.text().contains("alpha-output"), "{}", own.text());
    for path in [
        format!("/api/recordings/{b}"),
        format!("/api/recordings/{b}/meta"),
    ] {
        let response = recorder_get(&addr, &path, Some(TEAM_A_TOKEN))?;
        assert_eq!(response.status, 404, "{path}: {}", response.text());
        assert!(!response.text().contains("bravo-output"));
    }
    let events = recorder_get(&addr, "/api/events?limit=100000", Some(TEAM_A_TOKEN))?;
    assert_eq!(events.status, 200);
    let text = events.text();
    assert!(
        text.contains("team-a"),
        "the viewer's own events are listed: {text}"
    );
    assert!(!text.contains("team-b"), "{text}");

    // The stack's viewer of every namespace still sees both.
    assert_eq!(stack.recordings()?.len(), 2);
    Ok(())
}

#[test]
fn a_writer_the_recorder_does_not_allow_cannot_upload() -> anyhow::Result<()> {
    // The recorder takes uploads only from 10.0.0.0/8: the proxy, on loopback, is not a writer.
    let stack = stack(false, &["--ingest-allow", "10.0.0.0/8"])?;
    let output = stack
        .kubectl
        .run(&["exec", "-n", "team-a", "web", "--", "echo", "unrecorded"])?;
    // Recording is enforced: the session does not run unrecorded.
    assert_ne!(output.code, Some(0), "{output:?}");
    assert!(!output.stdout.contains("unrecorded"), "{output:?}");
    assert!(
        output.stderr.contains("recording"),
        "kubectl says why: {}",
        output.stderr
    );

    // Raw uploads from loopback: refused with 403 and a JSON error.
    let addr = stack.recorder_addr.clone().unwrap_or_default();
    let event = br#"{"type":"kubernetes-api-request","kubernetes":{"Namespace":"team-a"}}"#;
    for path in ["/v2/event", "/record"] {
        let response = http::request("POST", &format!("http://{addr}{path}"), Some(event))?;
        assert_eq!(response.status, 403, "{path}: {}", response.text());
        assert!(response.json()?["error"].is_string(), "{path}");
    }
    assert_eq!(stack.recordings()?, Vec::<Value>::new());
    let events = stack.events("limit=100000")?;
    assert!(
        events.iter().all(|e| e["type"] == "kube-recorder-view"),
        "only the recorder's own view events are stored: {events:?}"
    );
    Ok(())
}
