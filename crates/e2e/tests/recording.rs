//! Recorded exec sessions: the real kubectl through the proxy, recorded by the real `kube-recorder`,
//! over WebSocket (kubectl's default) and SPDY.

use std::time::{Duration, Instant};

use e2e::cast::{asciinema_accepts, header_of, output_of};
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};
use serde_json::Value;

const PROTOCOLS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];

fn recorded_stack(grant: RecordingGrant) -> anyhow::Result<Stack> {
    let whois = admin_caller()?;
    let mut options = StackOptions::for_caller(whois);
    options.recording = Some(grant);
    Stack::start(options)
}

const ENFORCED: RecordingGrant = RecordingGrant::ENFORCED;

#[test]
fn exec_output_and_exit_codes_are_recorded_over_both_protocols() -> anyhow::Result<()> {
    exec_output_and_exit_codes(ENFORCED)
}

/// The same with a recorder that speaks only protocol v1: the proxy falls back to it.
#[test]
fn a_v1_recorder_records_the_same_sessions() -> anyhow::Result<()> {
    exec_output_and_exit_codes(RecordingGrant {
        v1_only: true,
        ..ENFORCED
    })?;
    for (name, websockets) in PROTOCOLS {
        let (stack, success, stderr, _) = kill_recorder_mid_session(
            RecordingGrant {
                v1_only: true,
                ..ENFORCED
            },
            websockets,
        )?;
        assert!(!success, "{name}: kubectl should fail: {stderr}");
        assert!(
            stderr.contains("session recording failed"),
            "{name}: {stderr}\n{}",
            stack.logs()
        );
    }
    Ok(())
}

fn exec_output_and_exit_codes(grant: RecordingGrant) -> anyhow::Result<()> {
    let mut stack = recorded_stack(grant)?;
    for (index, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_string(),
        )];
        let output = stack.kubectl.run(&[
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            "echo out-line; echo err-line >&2; printf 'caf\\303\\251\\n'; exit 3",
        ])?;
        assert_eq!(
            output.code,
            Some(3),
            "{name}: {}\n{}",
            output.stderr,
            stack.logs()
        );
        assert_eq!(output.stdout, "out-line\ncafé\n", "{name}");
        assert!(
            output.stderr.contains("err-line"),
            "{name}: {}",
            output.stderr
        );

        let recordings = stack.finished_recordings(index + 1)?;
        let newest = &recordings[0];
        assert_eq!(newest["outcome"], "complete", "{name}: {newest}");
        assert_eq!(newest["exitCode"], 3, "{name}: {newest}");
        let protocol = if grant.v1_only { "v1" } else { "v2" };
        assert_eq!(newest["protocol"], protocol, "{name}: {newest}");
        let cast = stack.recording_cast(newest["id"].as_str().unwrap_or_default())?;
        let header = header_of(&cast)?;
        assert_eq!(header["version"], 2);
        assert_eq!(header["srcNodeUser"], "alice@example.com", "{header}");
        assert_eq!(header["kubernetes"]["PodName"], "demo", "{header}");
        assert_eq!(header["kubernetes"]["Namespace"], "default", "{header}");
        assert_eq!(header["kubernetes"]["SessionType"], "exec", "{header}");
        // kubectl names the pod's default container.
        assert_eq!(header["kubernetes"]["Container"], "main", "{header}");
        assert!(
            header["command"]
                .as_str()
                .unwrap_or_default()
                .starts_with("sh -c echo out-line"),
            "{header}"
        );
        asciinema_accepts(&stack.dir, &cast)?;
        let recorded = output_of(&cast)?;
        // stdout and stderr interleave in the order the pod wrote them.
        for expected in ["out-line\n", "err-line\n", "café\n"] {
            assert!(recorded.contains(expected), "{name}: {recorded:?}");
        }
        assert_eq!(
            recorded.len(),
            "out-line\nerr-line\ncafé\n".len(),
            "{name}: {recorded:?}"
        );
    }
    Ok(())
}

#[test]
fn ten_megabytes_of_stdin_are_copied_and_recorded_byte_identical() -> anyhow::Result<()> {
    let mut stack = recorded_stack(ENFORCED)?;
    // Printable, so the recording's text equals the bytes.
    let payload: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|i: usize| b"abcdefghijklmnopqrstuvwxyz0123456789\n"[i % 37])
        .collect();
    let input = stack.dir.join("stdin.bin");
    std::fs::write(&input, &payload)?;
    for (index, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_string(),
        )];
        let mut command = stack.kubectl.command(&["exec", "-i", "demo", "--", "cat"]);
        command.stdin(std::fs::File::open(&input)?);
        let output = command.output()?;
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stdout == payload,
            "{name}: stdout differs ({} bytes)",
            output.stdout.len()
        );
        let recordings = stack.finished_recordings(index + 1)?;
        let cast = stack.recording_cast(recordings[0]["id"].as_str().unwrap_or_default())?;
        assert!(
            output_of(&cast)?.as_bytes() == payload,
            "{name}: recording differs"
        );
    }
    Ok(())
}

#[test]
fn fail_closed_with_every_recorder_down_refuses_before_upstream() -> anyhow::Result<()> {
    let mut stack = recorded_stack(RecordingGrant {
        all_dead: true,
        ..RecordingGrant::ENFORCED
    })?;
    for (name, websockets) in PROTOCOLS {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.into(),
        )];
        let output = stack.kubectl.run(&["exec", "demo", "--", "echo", "hi"])?;
        assert!(!output.success, "{name}: {}", output.stdout);
        assert!(
            output.stderr.contains("session recording is required"),
            "{name}: {}",
            output.stderr
        );
    }
    let exec_requests: Vec<Value> = stack
        .upstream_requests()?
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/exec")))
        .collect();
    assert!(exec_requests.is_empty(), "upstream saw {exec_requests:?}");
    Ok(())
}

#[test]
fn fail_open_with_every_recorder_down_runs_unrecorded_and_counts_it() -> anyhow::Result<()> {
    let mut stack = recorded_stack(RecordingGrant {
        enforce: false,
        all_dead: true,
        ..RecordingGrant::ENFORCED
    })?;
    for (count, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_string(),
        )];
        let output = stack
            .kubectl
            .run(&["exec", "demo", "--", "echo", "hi"])?
            .expect_success(name)?;
        assert_eq!(output.stdout, "hi\n", "{name}");
        let metrics = stack.metrics()?;
        let sessions = count + 1;
        assert!(
            metrics.contains(&format!("k8s_auth_proxy_sessions_unrecorded {sessions}\n")),
            "{name}: {metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "k8s_auth_proxy_session_recordings_failed{{reason=\"connect\"}} {sessions}\n"
            )),
            "{name}: {metrics}"
        );
    }
    Ok(())
}

#[test]
fn a_dead_recorder_listed_first_falls_over_to_the_live_one() -> anyhow::Result<()> {
    let stack = recorded_stack(RecordingGrant {
        dead_recorder_first: true,
        ..RecordingGrant::ENFORCED
    })?;
    stack
        .kubectl
        .run(&["exec", "demo", "--", "echo", "to-the-second"])?
        .expect_success("exec")?;
    let recordings = stack.finished_recordings(1)?;
    let cast = stack.recording_cast(recordings[0]["id"].as_str().unwrap_or_default())?;
    assert_eq!(output_of(&cast)?, "to-the-second\n");
    let metrics = stack.metrics()?;
    assert!(
        metrics.contains("k8s_auth_proxy_session_recordings_uploaded 1"),
        "{metrics}"
    );
    Ok(())
}

/// kubectl exec -i cat, one line echoed, then the recorder is killed.
fn kill_recorder_mid_session(
    grant: RecordingGrant,
    websockets: &str,
) -> anyhow::Result<(Stack, bool, String, Vec<String>)> {
    let enforce = grant.enforce;
    use std::io::Write as _;
    let mut stack = recorded_stack(grant)?;
    stack.kubectl.env = vec![(
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
        websockets.into(),
    )];
    let (mut session, mut stdin) = stack
        .kubectl
        .spawn_interactive(&["exec", "-i", "demo", "--", "cat"])?;
    stdin.write_all(b"before\n")?;
    stdin.flush()?;
    session.wait_for("before", Duration::from_secs(60))?;
    if let Some(recorder) = stack.recorder.as_mut() {
        recorder.kill();
    }
    let killed = Instant::now();
    let mut echoed = Vec::new();
    if !enforce {
        // Fail open: the session goes on.
        stdin.write_all(b"after\n")?;
        stdin.flush()?;
        echoed.push(session.wait_for("after", Duration::from_secs(60))?);
    } else {
        // Fail closed: keep typing. The session must end on its own once the proxy notices the
        // recorder is gone (at once over v2, whose ack stream breaks; over v1, which has no acks,
        // at the next write to the recorder). kubectl going away ends the loop.
        session.type_until_exit(&mut stdin, 300);
    }
    drop(stdin);
    let (success, stderr) = session.wait_exit(Duration::from_secs(30))?;
    if enforce {
        // The proxy notices within a second and ends the session at once; the generous bound here
        // only keeps a hung session from hanging the suite (timing claims live in benchmarks).
        // The time is printed for whoever reads the test's output.
        let took = killed.elapsed();
        eprintln!("fail-closed session ended {took:?} after the recorder was killed");
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }
    Ok((stack, success, stderr, echoed))
}

#[test]
fn recorder_killed_mid_session_ends_a_fail_closed_session_with_the_reason() -> anyhow::Result<()> {
    for (name, websockets) in PROTOCOLS {
        let (stack, success, stderr, _) = kill_recorder_mid_session(ENFORCED, websockets)?;
        assert!(!success, "{name}: kubectl should fail: {stderr}");
        assert!(
            stderr.contains("session recording failed"),
            "{name}: kubectl should print the reason: {stderr}\n{}",
            stack.logs()
        );
    }
    Ok(())
}

#[test]
fn recorder_killed_mid_session_lets_a_fail_open_session_finish() -> anyhow::Result<()> {
    for (name, websockets) in PROTOCOLS {
        let (stack, success, stderr, echoed) = kill_recorder_mid_session(
            RecordingGrant {
                enforce: false,
                ..ENFORCED
            },
            websockets,
        )?;
        assert!(
            success,
            "{name}: kubectl failed: {stderr}\n{}",
            stack.logs()
        );
        assert_eq!(echoed, ["after"], "{name}");
        let metrics = stack.metrics()?;
        assert!(
            metrics.contains("k8s_auth_proxy_session_recordings_failed{reason=\"upload\"} 1"),
            "{name}: {metrics}"
        );
    }
    Ok(())
}

#[test]
fn a_hundred_concurrent_recorded_sessions_all_complete() -> anyhow::Result<()> {
    for (_, websockets) in PROTOCOLS {
        hundred_concurrent_sessions(websockets)?;
    }
    Ok(())
}

fn hundred_concurrent_sessions(websockets: &str) -> anyhow::Result<()> {
    const SESSIONS: usize = 100;
    const BYTES: usize = 1_000_000;
    let mut stack = recorded_stack(ENFORCED)?;
    stack.kubectl.env = vec![(
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
        websockets.into(),
    )];
    // Each session writes 1 MB of printable output (so the recording's text is the same bytes).
    // The pause before the output works around a race in kubectl 1.32's WebSocket client (client-go
    // `websocket.go` drops messages that arrive before it has created its streams: "Unknown stream
    // id 1, discarding message"). With 100 kubectl processes starting at once on two cores, stream
    // creation can lag the container's first output by seconds; real pods rarely write that fast.
    let script = format!("sleep 3; head -c {BYTES} /dev/zero | tr '\\000' x");
    let children: Vec<_> = (0..SESSIONS)
        .map(|_| {
            let mut command = stack
                .kubectl
                .command(&["exec", "demo", "--", "sh", "-c", &script]);
            command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            command.spawn()
        })
        .collect::<Result<_, _>>()?;
    for (index, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output()?;
        assert!(
            output.status.success(),
            "session {index}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.stdout.len() == BYTES && output.stdout.iter().all(|b| *b == b'x'),
            "session {index} ({websockets}): {} bytes of output; kubectl: {}\n{}",
            output.stdout.len(),
            String::from_utf8_lossy(&output.stderr),
            stack
                .logs()
                .lines()
                .filter(|l| l.contains("WARN")
                    || l.contains("ERROR")
                    || l.contains("session ended"))
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let recordings = stack.finished_recordings(SESSIONS)?;
    assert_eq!(recordings.len(), SESSIONS);
    for recording in &recordings {
        assert_eq!(recording["outcome"], "complete", "{recording}");
        assert_eq!(recording["exitCode"], 0, "{recording}");
        let cast = stack.recording_cast(recording["id"].as_str().unwrap_or_default())?;
        let text = output_of(&cast)?;
        assert!(
            text.len() == BYTES && text.bytes().all(|b| b == b'x'),
            "recording {} holds {} bytes of output",
            recording["id"],
            text.len()
        );
    }
    let metrics = stack.metrics()?;
    assert!(
        metrics.contains(&format!(
            "k8s_auth_proxy_session_recordings_uploaded {SESSIONS}\n"
        )),
        "{metrics}"
    );
    Ok(())
}
