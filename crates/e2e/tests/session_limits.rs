//! The proxy's own limits on exec sessions, through the real proxy with the real kubectl over both
//! transports, recorded by the real `kube-recorder`: `--session-idle-timeout`,
//! `--session-max-duration`, and SIGTERM with `--shutdown-grace`. Each ends the session with a
//! reason kubectl prints, and the recording is complete and says why. (`--max-sessions-per-caller`
//! is in `exec_policy.rs`.)

use std::time::Duration;

use e2e::cast::{asciinema_accepts, events_of, output_of};
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};

const PROTOCOLS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];

fn stack(proxy_args: &[&str]) -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    options.proxy_args = proxy_args.iter().map(|a| (*a).to_owned()).collect();
    Stack::start(options)
}

/// Runs `command` in the demo pod over `websockets` until the proxy ends it; returns kubectl's
/// stdout lines seen and its stderr.
fn ended_by_the_proxy(
    stack: &mut Stack,
    websockets: &str,
    script: &str,
    first_line: &str,
) -> anyhow::Result<String> {
    stack.kubectl.env = vec![(
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
        websockets.to_owned(),
    )];
    let mut session = stack
        .kubectl
        .spawn_lines(&["exec", "demo", "--", "sh", "-c", script])?;
    session.wait_for(first_line, Duration::from_secs(60))?;
    let (success, stderr) = session.wait_exit(Duration::from_secs(60))?;
    anyhow::ensure!(!success, "kubectl should fail: {stderr}");
    Ok(stderr)
}

/// The newest recording is complete, replays, holds `output`, and its last event is the marker
/// saying the proxy ended it, and why.
fn assert_recorded_ending(
    stack: &Stack,
    finished: usize,
    output: &str,
    why: &str,
) -> anyhow::Result<()> {
    let recordings = stack.finished_recordings(finished)?;
    let newest = &recordings[0];
    assert_eq!(newest["outcome"], "complete", "{newest}");
    let cast = stack.recording_cast(newest["id"].as_str().unwrap_or_default())?;
    asciinema_accepts(&stack.dir, &cast)?;
    assert!(output_of(&cast)?.contains(output), "{cast}");
    let events = events_of(&cast)?;
    let last = events.last().expect("events");
    assert_eq!(last.code, "m", "{cast}");
    assert!(
        last.data.contains("ended by the proxy") && last.data.contains(why),
        "{cast}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.code == "m" && e.data.starts_with("exit")),
        "the command's exit is unknown, not made up: {cast}"
    );
    Ok(())
}

#[test]
fn an_idle_session_is_ended_with_the_reason_and_recorded_as_such() -> anyhow::Result<()> {
    let mut stack = stack(&["--session-idle-timeout", "2s"])?;
    for (index, (name, websockets)) in PROTOCOLS.into_iter().enumerate() {
        // Quiet after its first line: kubectl's keep-alives (WebSocket pings) are not activity.
        let stderr =
            ended_by_the_proxy(&mut stack, websockets, "echo started; sleep 60", "started")?;
        assert!(
            stderr.contains("session idle for 2s, ended by the proxy"),
            "{name}: {stderr}\n{}",
            stack.logs()
        );
        assert_recorded_ending(&stack, index + 1, "started", "session idle for 2s")?;
    }
    Ok(())
}

/// A session that is not recorded is still watched for activity (the tap only counts its events
/// then, copying none): output every half second keeps it past the idle timeout.
#[test]
fn an_unrecorded_busy_session_outlives_the_idle_timeout() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.proxy_args = vec!["--session-idle-timeout".into(), "2s".into()];
    let mut stack = Stack::start(options)?;
    assert!(stack.recorder.is_none(), "the session must not be recorded");
    for (name, websockets) in PROTOCOLS {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        let output = stack
            .kubectl
            .run(&[
                "exec",
                "demo",
                "--",
                "sh",
                "-c",
                "for i in 1 2 3 4 5 6 7 8; do echo tick$i; sleep 0.5; done",
            ])?
            .expect_success(name)?;
        assert!(
            output.stdout.contains("tick8"),
            "{name}: {}\n{}",
            output.stdout,
            stack.logs()
        );
    }
    Ok(())
}

#[test]
fn a_busy_session_is_ended_at_its_maximum_length() -> anyhow::Result<()> {
    let mut stack = stack(&[
        "--session-max-duration",
        "3s",
        "--session-idle-timeout",
        "2s",
    ])?;
    for (index, (name, websockets)) in PROTOCOLS.into_iter().enumerate() {
        // Output every half second: never idle.
        let stderr = ended_by_the_proxy(
            &mut stack,
            websockets,
            "while true; do echo tick; sleep 0.5; done",
            "tick",
        )?;
        assert!(
            stderr.contains("session open for 3s, ended by the proxy"),
            "{name}: {stderr}\n{}",
            stack.logs()
        );
        assert_recorded_ending(&stack, index + 1, "tick", "session open for 3s")?;
    }
    Ok(())
}

#[test]
fn sigterm_gives_sessions_the_grace_then_ends_them_and_finishes_their_recordings(
) -> anyhow::Result<()> {
    for (name, websockets) in PROTOCOLS {
        let mut stack = stack(&["--shutdown-grace", "2s"])?;
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        let mut session = stack.kubectl.spawn_lines(&[
            "exec",
            "demo",
            "--",
            "sh",
            "-c",
            "echo started; sleep 60",
        ])?;
        session.wait_for("started", Duration::from_secs(60))?;
        stack.proxy.signal_terminate()?;
        let exited_cleanly = stack.proxy.wait_exit(Duration::from_secs(60))?;
        let (success, stderr) = session.wait_exit(Duration::from_secs(60))?;
        assert!(
            !success,
            "{name}: kubectl should fail: {stderr}\n{}",
            stack.logs()
        );
        assert!(
            stderr.contains("the proxy is shutting down; the session was ended by the proxy"),
            "{name}: {stderr}\n{}",
            stack.logs()
        );
        assert!(
            exited_cleanly,
            "{name}: the proxy exits cleanly\n{}",
            stack.logs()
        );
        // The recording was finished before the proxy exited.
        let recordings = stack.recordings()?;
        assert_eq!(recordings.len(), 1, "{name}: {recordings:?}");
        assert_eq!(
            recordings[0]["outcome"], "complete",
            "{name}: {recordings:?}"
        );
        assert_recorded_ending(&stack, 1, "started", "the proxy is shutting down")?;
    }
    Ok(())
}
