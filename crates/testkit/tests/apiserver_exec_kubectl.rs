//! The real kubectl (1.32, chosen by the dispatcher from the stand-in's version) running
//! `exec` and `attach` against the stand-in directly, over WebSocket (its default) and over SPDY
//! (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`). Every test checks from the request log that the
//! sessions really used the transport under test (no silent fallback).
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;

use support::{pattern, read_until, Kubectl, Transport, PATIENCE};
use tokio::io::AsyncWriteExt as _;

/// A pod that counts forever, and one that reads a line, answers and exits.
const PODS: &str = r#"
pods:
  - {name: demo}
  - name: ticker
    attachCommand: [sh, -c, "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"]
    stdin: false
  - {name: reader, attachCommand: [sh, -c, "read line; echo got $line; echo bye >&2; exit 5"]}
"#;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn exec_output_stderr_and_exit_codes() {
    let k = Kubectl::start(PODS, false, "proxy-token").await;
    for transport in Transport::BOTH {
        let out = k
            .run(transport, &["exec", "demo", "--", "echo", "hello"])
            .await;
        assert_eq!(out.status.code(), Some(0), "{transport:?}");
        assert_eq!(text(&out.stdout), "hello\n");

        let out = k
            .run(
                transport,
                &[
                    "exec",
                    "demo",
                    "--",
                    "sh",
                    "-c",
                    "echo out; echo err >&2; echo $HOSTNAME; exit 3",
                ],
            )
            .await;
        assert_eq!(out.status.code(), Some(3), "{transport:?}");
        assert_eq!(text(&out.stdout), "out\ndemo\n");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("err\n"), "{stderr}");
        assert!(
            stderr.contains("command terminated with exit code 3"),
            "{stderr}"
        );

        // Killed by a signal: 128 + n, as the runtime reports it.
        let out = k
            .run(
                transport,
                &["exec", "demo", "--", "sh", "-c", "kill -TERM $$"],
            )
            .await;
        assert_eq!(out.status.code(), Some(143), "{transport:?}");

        let out = k
            .run(transport, &["exec", "demo", "--", "no-such-program"])
            .await;
        assert_eq!(out.status.code(), Some(1), "{transport:?}");
        assert!(text(&out.stderr).contains(
            "error: Internal error occurred: error executing command in container: failed to exec \
             in container: exec: \"no-such-program\": executable file not found in $PATH"
        ));

        assert_eq!(k.assert_sessions_used(transport), 4);
        k.server.clear_requests();
    }
}

#[tokio::test]
async fn exec_copies_10_mib_of_stdin_byte_for_byte() {
    let k = Kubectl::start(PODS, false, "proxy-token").await;
    let data = pattern(10 << 20);
    let input = k.path("input.bin");
    std::fs::write(&input, &data).unwrap();
    for transport in Transport::BOTH {
        let mut cmd = k.command(transport, &["exec", "-i", "demo", "--", "cat"]);
        cmd.stdin(std::fs::File::open(&input).unwrap());
        let out = k.run_with(cmd).await;
        assert_eq!(out.status.code(), Some(0), "{transport:?}");
        assert!(
            out.stdout == data,
            "{transport:?}: {} bytes came back",
            out.stdout.len()
        );
        assert_eq!(k.assert_sessions_used(transport), 1);
        k.server.clear_requests();
    }
}

#[tokio::test]
async fn attach_shows_a_running_process_that_outlives_the_session() {
    let k = Kubectl::start(PODS, false, "proxy-token").await;
    let mut last_tick = None;
    for transport in Transport::BOTH {
        let mut child = k
            .command(transport, &["attach", "ticker"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        // Two complete lines.
        let end = read_until(&mut stdout, &mut seen, 0, b"\n").await.unwrap();
        read_until(&mut stdout, &mut seen, end, b"\n")
            .await
            .unwrap();
        let first: u64 = text(&seen)
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("tick "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a tick: {:?}", text(&seen)));
        // The same process, still counting: a later attach starts further on.
        if let Some(previous) = last_tick {
            assert!(first > previous, "{first} after {previous}");
        }
        last_tick = Some(first);
        child.kill().await.unwrap();
        assert_eq!(k.assert_sessions_used(transport), 1);
        k.server.clear_requests();
    }
}

#[tokio::test]
async fn attach_sends_stdin_and_ends_when_the_process_exits() {
    let k = Kubectl::start(PODS, false, "proxy-token").await;
    for transport in Transport::BOTH {
        let mut child = k
            .command(transport, &["attach", "-i", "reader"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\n").await.unwrap();
        let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        // The process exited 5, but attach reports success (containerd's AttachContainer
        // returns no exit code).
        assert_eq!(out.status.code(), Some(0), "{transport:?}");
        assert_eq!(text(&out.stdout), "got hello\n");
        assert!(text(&out.stderr).contains("bye\n"), "{}", text(&out.stderr));
        drop(stdin);
        // The exited process was started anew for the second transport's attach.
        assert_eq!(k.assert_sessions_used(transport), 1);
        k.server.clear_requests();
    }
}

#[tokio::test]
async fn impersonation_is_checked_before_the_upgrade() {
    let k = Kubectl::start(PODS, true, "proxy-token").await;
    for transport in Transport::BOTH {
        let out = k
            .run(
                transport,
                &[
                    "exec",
                    "demo",
                    "--as",
                    "bob",
                    "--",
                    "sh",
                    "-c",
                    "echo $HOSTNAME",
                ],
            )
            .await;
        assert_eq!(out.status.code(), Some(0), "{transport:?}");
        assert_eq!(text(&out.stdout), "demo\n");
        let sessions = k.sessions();
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        assert_eq!(
            sessions[0].authorization.as_deref(),
            Some("Bearer proxy-token")
        );
        assert_eq!(sessions[0].impersonate_user.as_deref(), Some("bob"));
        assert_eq!(
            sessions[0]
                .effective_user
                .as_ref()
                .map(|u| u.username.as_str()),
            Some("bob")
        );
        k.server.clear_requests();

        // alice may not impersonate: refused with the apiserver's Status, which kubectl prints.
        let out = k
            .run(
                transport,
                &[
                    "exec",
                    "demo",
                    "--token",
                    "alice-token",
                    "--as",
                    "bob",
                    "--",
                    "echo",
                    "never",
                ],
            )
            .await;
        assert_ne!(out.status.code(), Some(0), "{transport:?}");
        assert!(
            text(&out.stderr).contains("User \"alice\" cannot impersonate resource \"users\""),
            "{}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).is_empty());
        // kubectl gets the pod first, which is refused already; nothing was upgraded.
        let requests = k.server.requests();
        assert!(requests.iter().all(|r| r.status == 403), "{requests:?}");
        assert!(k.sessions().iter().all(|r| r.status != 101));
        k.server.clear_requests();
    }
}

#[tokio::test]
async fn an_older_kubectl_speaks_spdy() {
    // The dispatcher runs kubectl 1.28, which has no WebSocket remote command client.
    let k = Kubectl::start(&format!("version: v1.28.9\n{PODS}"), false, "proxy-token").await;
    let out = k
        .run(
            Transport::WebSocket,
            &["exec", "demo", "--", "sh", "-c", "echo old; exit 2"],
        )
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "old\n");
    let sessions = k.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (sessions[0].method.as_str(), sessions[0].status),
        ("POST", 101)
    );
    assert!(sessions[0]
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with("kubectl/v1.28.")));
}
