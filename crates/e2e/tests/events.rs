//! API request events (`enableEvents`): the real kubectl through the proxy, each request recorded
//! by the real `kube-recorder` before it goes upstream, with fail-closed and fail-open grants and a
//! recorder that does not support events.

use std::time::Duration;

use base64::Engine as _;
use e2e::stack::{admin_caller, fixture_whois, metric_value, RecordingGrant, Stack, StackOptions};
use serde_json::Value;

const EVENTS: RecordingGrant = RecordingGrant {
    events: true,
    ..RecordingGrant::ENFORCED
};

fn events_stack(grant: RecordingGrant) -> anyhow::Result<Stack> {
    let whois = admin_caller()?;
    let mut options = StackOptions::for_caller(whois);
    options.recording = Some(grant);
    options.proxy_args.push("--api-response-events".into());
    Stack::start(options)
}

/// The resource request events, oldest first, as `(verb, resource, namespace, name, subresource)`.
fn resource_events(stack: &Stack) -> anyhow::Result<Vec<(Value, [String; 5])>> {
    let events = stack.events("type=kubernetes-api-request&user=alice@example.com")?;
    Ok(events
        .into_iter()
        .filter(|e| e["kubernetes"]["IsResourceRequest"] == true)
        .map(|e| {
            let field = |name: &str| {
                e["kubernetes"][name]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            let key = [
                field("Verb"),
                field("Resource"),
                field("Namespace"),
                field("Name"),
                field("Subresource"),
            ];
            (e, key)
        })
        .collect())
}

fn key(verb: &str, name: &str, subresource: &str) -> [String; 5] {
    [verb, "pods", "default", name, subresource].map(str::to_owned)
}

/// Finds `wanted` in `events` in order (other requests, such as discovery, may come between);
/// returns the event matched for each.
fn in_order(events: &[(Value, [String; 5])], wanted: &[[String; 5]]) -> anyhow::Result<Vec<Value>> {
    let mut found = Vec::new();
    let mut rest = events.iter();
    for want in wanted {
        match rest.by_ref().find(|(_, key)| key == want) {
            Some((event, _)) => found.push(event.clone()),
            None => anyhow::bail!(
                "no event {want:?} after the earlier ones; events: {:?}",
                events.iter().map(|(_, k)| k).collect::<Vec<_>>()
            ),
        }
    }
    Ok(found)
}

fn body_of(event: &Value) -> anyhow::Result<String> {
    let encoded = event["request"]["body"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn each_kubectl_request_leaves_its_event_in_order() -> anyhow::Result<()> {
    let mut stack = events_stack(EVENTS)?;
    let kubectl = &stack.kubectl;
    kubectl.run(&["get", "pods"])?.expect_success("get pods")?;
    let yaml = kubectl
        .run(&["get", "pod", "demo", "-o", "yaml"])?
        .expect_success("get pod -o yaml")?;
    assert!(yaml.stdout.contains("name: demo"), "{}", yaml.stdout);

    let manifest = stack.dir.join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\nspec:\n  containers:\n  - name: main\n    image: nginx\n",
    )?;
    let manifest = manifest.display().to_string();
    kubectl
        .run(&["apply", "-f", &manifest])?
        .expect_success("apply")?;
    kubectl
        .run(&["delete", "pod", "web", "--wait=false"])?
        .expect_success("delete")?;

    let mut watch = kubectl.spawn_lines(&["get", "pods", "-w"])?;
    watch.wait_for("demo", Duration::from_secs(60))?;
    // A pod created behind the proxy's back arrives on the watch: the watch request was made.
    stack.add_pod("default", "during-watch")?;
    watch.wait_for("during-watch", Duration::from_secs(60))?;
    drop(watch);

    let exec = kubectl
        .run(&["exec", "demo", "--", "echo", "hi"])?
        .expect_success("exec")?;
    assert_eq!(exec.stdout, "hi\n");
    // Over SPDY the same exec is a POST.
    stack.kubectl.env = vec![("KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(), "false".into())];
    stack
        .kubectl
        .run(&["exec", "demo", "--", "echo", "hi"])?
        .expect_success("exec over SPDY")?;

    let events = resource_events(&stack)?;
    let matched = in_order(
        &events,
        &[
            key("list", "", ""),
            key("get", "demo", ""),
            key("get", "web", ""),
            key("create", "", ""),
            key("delete", "web", ""),
            key("list", "", ""),
            key("watch", "", ""),
            // kubectl's default transport is WebSocket: a GET.
            key("get", "demo", "exec"),
            key("create", "demo", "exec"),
        ],
    )?;

    let (get, create, delete, watch, exec) = (
        &matched[1],
        &matched[3],
        &matched[4],
        &matched[6],
        &matched[7],
    );
    assert_eq!(get["request"]["method"], "GET", "{get}");
    assert_eq!(
        get["request"]["path"], "/api/v1/namespaces/default/pods/demo",
        "{get}"
    );
    assert!(
        get["userAgent"]
            .as_str()
            .unwrap_or_default()
            .starts_with("kubectl"),
        "{get}"
    );
    assert_eq!(get["source"]["nodeUser"], "alice@example.com", "{get}");
    assert!(
        get["source"]["node"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{get}"
    );
    // The body of a write is in the event, as the client sent it.
    assert_eq!(create["request"]["method"], "POST", "{create}");
    let body = body_of(create)?;
    assert!(body.contains("\"name\":\"web\""), "{body}");
    assert_eq!(delete["request"]["method"], "DELETE", "{delete}");
    assert_eq!(
        watch["request"]["queryParameters"]["watch"],
        serde_json::json!(["true"]),
        "{watch}"
    );
    assert_eq!(
        exec["request"]["queryParameters"]["command"],
        serde_json::json!(["echo", "hi"])
    );

    // The create's response event names it by id and says what happened.
    let id = create["id"].as_str().unwrap_or_default();
    let responses = stack.events(&format!("type=kubernetes-api-response&id={id}"))?;
    assert_eq!(responses.len(), 1, "{responses:?}");
    assert_eq!(responses[0]["response"]["status"], 201, "{}", responses[0]);
    assert!(
        responses[0]["response"]["bytes"].as_u64() > Some(0),
        "{}",
        responses[0]
    );
    // The whole response reached kubectl.
    assert!(
        responses[0]["response"].get("error").is_none(),
        "{}",
        responses[0]
    );

    // And the request itself went upstream as kubectl sent it.
    let upstream = stack.upstream_requests()?;
    assert!(
        upstream.iter().any(|r| r["method"] == "POST"
            && r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/api/v1/namespaces/default/pods?"))),
        "{upstream:?}"
    );
    Ok(())
}

#[test]
fn fail_closed_with_the_recorder_down_refuses_with_502_before_upstream() -> anyhow::Result<()> {
    let stack = events_stack(RecordingGrant {
        all_dead: true,
        ..EVENTS
    })?;
    let output = stack.kubectl.run(&["get", "pods"])?;
    assert!(!output.success, "{}", output.stdout);
    assert!(
        output.stderr.contains("recording this one failed"),
        "kubectl should print the reason: {}",
        output.stderr
    );
    let reached: Vec<Value> = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/pods")))
        .collect();
    assert!(reached.is_empty(), "upstream saw {reached:?}");
    let metrics = stack.metrics()?;
    let refused = metric_value(
        &metrics,
        "k8s_auth_proxy_requests_refused{reason=\"event_recording\"}",
    );
    let failed = metric_value(
        &metrics,
        "k8s_auth_proxy_api_request_event_recording_failed",
    );
    assert!(refused >= 1 && failed == refused, "{metrics}");
    Ok(())
}

#[test]
fn fail_open_with_the_recorder_down_succeeds_and_counts_the_failure() -> anyhow::Result<()> {
    let stack = events_stack(RecordingGrant {
        enforce: false,
        all_dead: true,
        ..EVENTS
    })?;
    let output = stack
        .kubectl
        .run(&["get", "pod", "demo"])?
        .expect_success("get pod")?;
    assert!(output.stdout.contains("demo"), "{}", output.stdout);
    let metrics = stack.metrics()?;
    let attempted = metric_value(
        &metrics,
        "k8s_auth_proxy_api_request_event_recording_attempted",
    );
    let failed = metric_value(
        &metrics,
        "k8s_auth_proxy_api_request_event_recording_failed",
    );
    assert!(attempted > 0 && failed == attempted, "{metrics}");
    Ok(())
}

#[test]
fn a_recorder_without_events_lets_requests_through() -> anyhow::Result<()> {
    let stack = events_stack(RecordingGrant {
        recorder_without_events: true,
        ..EVENTS
    })?;
    stack
        .kubectl
        .run(&["get", "pod", "demo"])?
        .expect_success("get pod")?;
    let metrics = stack.metrics()?;
    assert!(
        metrics.contains("k8s_auth_proxy_api_request_event_recording_failed 0\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("k8s_auth_proxy_api_request_event_recording_unsupported 0\n"),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn a_body_over_the_limit_is_cut_in_the_event_and_forwarded_whole() -> anyhow::Result<()> {
    let whois = admin_caller()?;
    let mut options = StackOptions::for_caller(whois);
    options.recording = Some(EVENTS);
    options.proxy_args = vec!["--event-body-limit".into(), "256".into()];
    let stack = Stack::start(options)?;

    let note = "n".repeat(4000);
    let manifest = stack.dir.join("big.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  annotations:\n    note: {note}\nspec:\n  containers:\n  - name: main\n    image: nginx\n"
        ),
    )?;
    stack
        .kubectl
        .run(&["create", "-f", &manifest.display().to_string()])?
        .expect_success("create")?;
    // Upstream got all of it.
    let pod = stack
        .kubectl
        .run(&["get", "pod", "big", "-o", "json"])?
        .expect_success("get")?
        .json()?;
    assert_eq!(pod["metadata"]["annotations"]["note"], note.as_str());

    let events = resource_events(&stack)?;
    let create = &in_order(&events, &[key("create", "", "")])?[0];
    assert_eq!(create["request"]["bodyTruncated"], true, "{create}");
    let recorded = body_of(create)?;
    assert_eq!(recorded.len(), 256, "{recorded}");
    let size = create["request"]["bodySize"].as_u64().unwrap_or_default();
    assert!(size > 4000, "{create}");
    Ok(())
}

/// The fixture's own grant, as a tailnet admin would write it: events enforced, recorders at
/// tailnet addresses this machine cannot reach (or where something else answers 404). No recorder
/// stores the event, so every request is refused before upstream.
#[test]
fn a_grant_enforcing_events_to_unreachable_recorders_is_refused() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_whois("user-node")?))?;
    let output = stack.kubectl.run(&["get", "pods"])?;
    assert!(!output.success, "{}", output.stdout);
    assert!(
        output.stderr.contains("API event not sent to any recorder"),
        "{}",
        output.stderr
    );
    let upstream = stack.upstream_requests()?;
    assert!(upstream.is_empty(), "upstream saw {upstream:?}");
    Ok(())
}

/// Requests from one client thread of the kill test: each path, and whether it succeeded.
type Outcomes = Vec<(String, bool)>;

/// Requests that succeed before the kill test kills the recorder.
const KILL_AFTER: usize = 300;

/// One keep-alive client sending `GET pod?kill-test=T-I` until it has seen three failures once
/// `killed` is set (or a bound, should the kill never take effect); the client whose success is
/// the [`KILL_AFTER`]th says so on `ready`.
fn kill_test_client(
    url: &str,
    thread: usize,
    succeeded: &std::sync::atomic::AtomicUsize,
    killed: &std::sync::atomic::AtomicBool,
    ready: &std::sync::mpsc::Sender<()>,
) -> Outcomes {
    use std::sync::atomic::Ordering;
    let mut outcomes = Vec::new();
    let mut client = None;
    let mut failures_after_kill = 0;
    for i in 0..20_000 {
        if failures_after_kill >= 3 {
            break;
        }
        let path = format!("/api/v1/namespaces/default/pods/demo?kill-test={thread}-{i}");
        let was_killed = killed.load(Ordering::SeqCst);
        let status = (|| -> anyhow::Result<u16> {
            if client.is_none() {
                client = Some(e2e::raw::RawClient::connect(url)?);
            }
            let raw = client
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("no client"))?;
            raw.send(&e2e::raw::request_bytes("GET", &path, &[], b""))?;
            Ok(raw.read_response()?.0.status)
        })();
        let ok = matches!(status, Ok(200..=299));
        if status.is_err() {
            // The proxy may close a connection after refusing on it: open another.
            client = None;
        }
        if ok {
            if succeeded.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                let _ = ready.send(());
            }
        } else if was_killed {
            failures_after_kill += 1;
        }
        outcomes.push((path, ok));
    }
    outcomes
}

/// The paths of the request events in the recorder's event files (read from disk: the recorder
/// is dead). A line cut short by the kill is skipped.
fn stored_request_paths(stack: &Stack) -> anyhow::Result<std::collections::HashSet<String>> {
    let mut paths = std::collections::HashSet::new();
    for entry in std::fs::read_dir(stack.dir.join("recordings/events"))? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(path) = event["request"]["path"].as_str() {
                paths.insert(path.to_owned());
            }
        }
    }
    Ok(paths)
}

/// The recorder is killed while many requests' events travel in batches: every request that
/// reached the apiserver, and every one the client saw succeed, has its event durably stored;
/// the requests after the kill are refused.
#[test]
fn a_recorder_killed_under_load_lets_no_request_upstream_unrecorded() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const CLIENTS: usize = 8;
    let mut stack = events_stack(EVENTS)?;
    let succeeded = AtomicUsize::new(0);
    let killed = AtomicBool::new(false);
    let (ready, in_full_flight) = std::sync::mpsc::channel();
    let outcomes: Vec<Outcomes> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|thread| {
                let (url, succeeded, killed) = (&stack.proxy_url, &succeeded, &killed);
                let ready = ready.clone();
                scope.spawn(move || kill_test_client(url, thread, succeeded, killed, &ready))
            })
            .collect();
        // Kill it in full flight: once a few hundred requests have gone through.
        let _ = in_full_flight.recv_timeout(Duration::from_secs(60));
        if let Some(recorder) = stack.recorder.as_mut() {
            recorder.kill();
        }
        killed.store(true, Ordering::SeqCst);
        clients
            .into_iter()
            .map(|client| client.join().expect("client thread"))
            .collect()
    });
    let outcomes: Outcomes = outcomes.into_iter().flatten().collect();
    let stored = stored_request_paths(&stack)?;
    let succeeded: Vec<&String> = outcomes
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(p, _)| p)
        .collect();
    assert!(
        succeeded.len() >= KILL_AFTER,
        "{} succeeded",
        succeeded.len()
    );
    let refused = outcomes.len() - succeeded.len();
    assert!(refused >= CLIENTS * 3, "{refused} refused");
    let unrecorded_successes: Vec<_> = succeeded.iter().filter(|p| !stored.contains(**p)).collect();
    assert!(
        unrecorded_successes.is_empty(),
        "succeeded without a stored event: {unrecorded_successes:?}"
    );
    let upstream: Vec<String> = stack
        .upstream_requests()?
        .into_iter()
        .filter_map(|r| r["path"].as_str().map(str::to_owned))
        .filter(|p| p.contains("kill-test="))
        .collect();
    assert!(upstream.len() >= succeeded.len(), "{}", upstream.len());
    let unrecorded_upstream: Vec<_> = upstream.iter().filter(|p| !stored.contains(*p)).collect();
    assert!(
        unrecorded_upstream.is_empty(),
        "reached upstream without a stored event: {unrecorded_upstream:?}"
    );
    Ok(())
}
