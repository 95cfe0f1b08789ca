//! `kubectl debug` and `kubectl run` leave a readable record (issue 12, item 2): the real kubectl
//! 1.32 through the proxy, with a grant that enables API request events and recording. The
//! `PATCH pods/ephemeralcontainers` event names the debug container's image, target and command
//! in its `workload` section, the attach that follows is recorded as a session, and the `POST
//! pods` of `kubectl run` gets the same section.

use std::time::Duration;

use e2e::cast::{header_of, output_of};
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};
use serde_json::{json, Value};

const PATIENCE: Duration = Duration::from_secs(60);

const EVENTS: RecordingGrant = RecordingGrant {
    events: true,
    ..RecordingGrant::ENFORCED
};

fn events_stack() -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(EVENTS);
    Stack::start(options)
}

/// The request events of `method` on `path` (without query), oldest first.
fn request_events(stack: &Stack, method: &str, path: &str) -> anyhow::Result<Vec<Value>> {
    let events = stack.events("type=kubernetes-api-request&user=alice@example.com")?;
    Ok(events
        .into_iter()
        .filter(|e| {
            e["request"]["method"] == method
                && e["request"]["path"]
                    .as_str()
                    .is_some_and(|p| p.split('?').next() == Some(path))
        })
        .collect())
}

#[test]
fn kubectl_debug_leaves_a_readable_patch_event_and_a_recorded_attach() -> anyhow::Result<()> {
    let stack = events_stack()?;
    let mut term = stack.kubectl.terminal(
        &[
            "debug",
            "-it",
            "demo",
            "--image=busybox",
            "--target=main",
            "--",
            "sh",
        ],
        30,
        100,
    )?;
    term.expect("If you don't see a command prompt", PATIENCE)?;
    term.type_text("echo debugging-$((6*7))\n")?;
    term.expect("debugging-42\r\n", PATIENCE)?;
    term.type_text("exit\n")?;
    assert_eq!(term.wait(PATIENCE)?, Some(0));

    // The PATCH event: the readable section names image, target and command.
    let patches = request_events(
        &stack,
        "PATCH",
        "/api/v1/namespaces/default/pods/demo/ephemeralcontainers",
    )?;
    anyhow::ensure!(patches.len() == 1, "one PATCH event: {patches:?}");
    let event = &patches[0];
    assert_eq!(event["kubernetes"]["Subresource"], "ephemeralcontainers");
    let containers = event["workload"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    anyhow::ensure!(containers.len() == 1, "one container: {event}");
    let debugger = &containers[0];
    let name = debugger["name"].as_str().unwrap_or_default().to_owned();
    assert!(name.starts_with("debugger-"), "{debugger}");
    assert_eq!(debugger["image"], "busybox", "{debugger}");
    assert_eq!(debugger["targetContainerName"], "main", "{debugger}");
    assert_eq!(debugger["command"], json!(["sh"]), "{debugger}");
    assert_eq!(debugger["ephemeral"], true, "{debugger}");
    assert_eq!(
        (&debugger["stdin"], &debugger["tty"]),
        (&json!(true), &json!(true)),
        "{debugger}"
    );
    // The default (legacy) profile asks for no privileges.
    assert!(debugger.get("securityContext").is_none(), "{debugger}");
    // The raw body is still there.
    assert!(event["request"]["body"].is_string(), "{event}");

    // The attach to the debug container was recorded as an attach session of that container.
    let recordings = stack.finished_recordings(1)?;
    let attach = recordings
        .iter()
        .find(|r| {
            let text = r.to_string();
            text.contains("attach") && text.contains(&name)
        })
        .ok_or_else(|| anyhow::anyhow!("no attach recording of {name}: {recordings:?}"))?;
    let cast = stack.recording_cast(attach["id"].as_str().unwrap_or_default())?;
    let header = header_of(&cast)?;
    assert_eq!(header["kubernetes"]["SessionType"], "attach", "{header}");
    assert_eq!(header["kubernetes"]["PodName"], "demo", "{header}");
    assert_eq!(header["kubernetes"]["Container"], name.as_str(), "{header}");
    let output = output_of(&cast)?;
    assert!(output.contains("debugging-42\r\n"), "{output:?}");
    // And its request event (an attach upgrade) came after the PATCH, naming the container.
    let attaches = request_events(&stack, "GET", "/api/v1/namespaces/default/pods/demo/attach")?;
    anyhow::ensure!(
        attaches
            .iter()
            .any(|e| e["request"]["queryParameters"]["container"] == json!([name])),
        "attach events: {attaches:?}"
    );
    Ok(())
}

#[test]
fn kubectl_run_leaves_a_readable_pod_creation_event() -> anyhow::Result<()> {
    let stack = events_stack()?;
    stack
        .kubectl
        .run(&[
            "run",
            "tmp",
            "--image=busybox",
            "--restart=Never",
            "--",
            "true",
        ])?
        .expect_success("kubectl run")?;
    let creates = request_events(&stack, "POST", "/api/v1/namespaces/default/pods")?;
    anyhow::ensure!(creates.len() == 1, "one POST pods event: {creates:?}");
    assert_eq!(
        creates[0]["workload"],
        json!({
            "podName": "tmp",
            "containers": [{"name": "tmp", "image": "busybox", "args": ["true"], "ephemeral": false}],
        }),
        "{}",
        creates[0]
    );
    // Requests that start nothing have no section.
    stack
        .kubectl
        .run(&["get", "pod", "tmp"])?
        .expect_success("get")?;
    let gets = request_events(&stack, "GET", "/api/v1/namespaces/default/pods/tmp")?;
    anyhow::ensure!(!gets.is_empty(), "a GET event");
    assert!(gets.iter().all(|e| e.get("workload").is_none()), "{gets:?}");
    Ok(())
}
