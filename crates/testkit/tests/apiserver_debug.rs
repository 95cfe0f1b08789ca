//! `kubectl debug` (ephemeral containers) against the stand-in directly: the real kubectl 1.32
//! GETs the pod, PATCHes `pods/ephemeralcontainers` with a strategic merge patch, waits (list and
//! watch) for the container to run, and attaches to it; the stand-in runs the container's
//! command (or busybox's shell) on the host.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{Kubectl, Transport};

const PODS: &str = r#"
pods:
  - {name: demo, containers: [main]}
"#;

async fn pod(k: &Kubectl) -> Value {
    let output = k
        .run(Transport::WebSocket, &["get", "pod", "demo", "-o", "json"])
        .await;
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn ephemeral_names(pod: &Value) -> Vec<String> {
    pod["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn kubectl_debug_it_adds_an_ephemeral_container_and_attaches_to_its_shell() {
    let k = Kubectl::start(PODS, false, "proxy-token").await;
    let mut term = k.terminal(
        Transport::WebSocket,
        &[
            "debug",
            "-it",
            "demo",
            "--image=busybox",
            "--target=main",
            "-c",
            "dbg",
            "--",
            "sh",
        ],
        24,
        80,
    );
    term.expect("If you don't see a command prompt").await;
    term.type_text("echo debug-$((40+2))\n").await;
    term.expect("debug-42").await;
    term.type_text("exit\n").await;
    assert_eq!(term.wait().await, Some(0));

    let pod = pod(&k).await;
    assert_eq!(ephemeral_names(&pod), ["dbg"]);
    let ec = &pod["spec"]["ephemeralContainers"][0];
    assert_eq!(ec["image"], "busybox");
    assert_eq!(ec["targetContainerName"], "main");
    assert_eq!(ec["command"], serde_json::json!(["sh"]));
    assert_eq!(
        (ec["stdin"].as_bool(), ec["tty"].as_bool()),
        (Some(true), Some(true))
    );
    let status = &pod["status"]["ephemeralContainerStatuses"][0];
    assert_eq!(status["name"], "dbg");
    assert!(status["state"]["running"].is_object(), "{status}");
    // The regular container is as it was.
    assert_eq!(pod["spec"]["containers"].as_array().map(Vec::len), Some(1));

    // What kubectl sent, in order: the pod, the patch, the wait, the attach to `dbg`.
    let requests: Vec<(String, String, u16)> = k
        .server
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.status))
        .collect();
    let position = |method: &str, prefix: &str| {
        requests
            .iter()
            .position(|(m, p, _)| m == method && p.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {method} {prefix} in {requests:?}"))
    };
    let patch = position(
        "PATCH",
        "/api/v1/namespaces/default/pods/demo/ephemeralcontainers",
    );
    assert_eq!(requests[patch].2, 200);
    let attach = position("GET", "/api/v1/namespaces/default/pods/demo/attach");
    assert!(patch < attach);
    assert!(requests[attach].1.contains("container=dbg"), "{requests:?}");
    assert_eq!(requests[attach].2, 101);
}

#[tokio::test]
async fn a_second_debug_container_without_a_command_runs_busybox_s_shell() {
    let k = Kubectl::start(PODS, false, "proxy-token").await;
    // The first one, not attached to (`kubectl debug` without -i just adds it).
    let out = k
        .run(
            Transport::WebSocket,
            &[
                "debug",
                "demo",
                "--image=busybox",
                "-c",
                "first",
                "--",
                "true",
            ],
        )
        .await;
    assert!(out.status.success());
    // The second: `$setElementOrder` in the patch, busybox's default command, stdin without tty.
    let mut cmd = k.command(
        Transport::WebSocket,
        &[
            "debug",
            "-i",
            "demo",
            "--image=busybox:1.36",
            "-c",
            "second",
        ],
    );
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().unwrap();
        // The attach starts the shell; what is typed before it goes nowhere, so repeat until the
        // shell answers and exits.
        tokio::spawn(async move {
            for _ in 0..100 {
                if stdin
                    .write_all(b"echo second-$((1+1)); exit 0\n")
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        });
    }
    let output = tokio::time::timeout(support::PATIENCE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("second-2"),
        "{stdout} / {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let pod = pod(&k).await;
    assert_eq!(ephemeral_names(&pod), ["first", "second"]);
    assert_eq!(
        pod["spec"]["ephemeralContainers"][1]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert!(pod["spec"]["ephemeralContainers"][1]
        .get("command")
        .is_none());
    assert_eq!(
        pod["status"]["ephemeralContainerStatuses"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // An ephemeral container's name must be new: the apiserver's Status, printed by kubectl.
    let out = k
        .run(
            Transport::WebSocket,
            &["debug", "demo", "--image=busybox", "-c", "main"],
        )
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "Pod \"demo\" is invalid: spec.ephemeralContainers[2].name: Duplicate value: \"main\""
        ),
        "{stderr}"
    );
    // A target that does not exist.
    let out = k
        .run(
            Transport::WebSocket,
            &["debug", "demo", "--image=busybox", "--target=nope"],
        )
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("targetContainerName: Not found: \"nope\""),
        "{stderr}"
    );
}
