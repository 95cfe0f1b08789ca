//! Recorded input (`recordInput` in the grant), with the real kubectl through the proxy and the
//! real `kube-recorder`, over WebSocket (kubectl's default) and SPDY: piped stdin of a session
//! without a tty is recorded whole as `i` events; in a tty session what the terminal echoes is
//! recorded and what it does not (a password at a no-echo prompt) is left out, a marker in its
//! place. Without `recordInput` there are no `i` events.

use std::time::Duration;

use e2e::cast::{asciinema_accepts, events_of, CastEvent};
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};

const PROTOCOLS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];
const PATIENCE: Duration = Duration::from_secs(60);

const RECORD_INPUT: RecordingGrant = RecordingGrant {
    record_input: true,
    ..RecordingGrant::ENFORCED
};

fn recorded_stack(grant: RecordingGrant) -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(grant);
    Stack::start(options)
}

fn use_protocol(stack: &mut Stack, websockets: &str) {
    stack.kubectl.env = vec![(
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
        websockets.into(),
    )];
}

/// The newest recording's events, once `count` recordings are finished; asciinema must accept it.
fn newest_cast(stack: &Stack, count: usize) -> anyhow::Result<(String, Vec<CastEvent>)> {
    let recordings = stack.finished_recordings(count)?;
    let newest = &recordings[0];
    assert_eq!(newest["outcome"], "complete", "{newest}");
    let cast = stack.recording_cast(newest["id"].as_str().unwrap_or_default())?;
    asciinema_accepts(&stack.dir, &cast)?;
    let events = events_of(&cast)?;
    Ok((cast, events))
}

fn text_of(events: &[CastEvent], code: &str) -> String {
    events
        .iter()
        .filter(|e| e.code == code)
        .map(|e| e.data.as_str())
        .collect()
}

const SCRIPT: &str = "echo first-$((20+22))\nx=second; echo \"$x\"\necho last\n";
const SCRIPT_OUTPUT: &str = "first-42\nsecond\nlast\n";

/// `kubectl exec -i demo -- sh < script.sh`; returns the newest cast's events.
fn run_script(stack: &mut Stack, count: usize) -> anyhow::Result<Vec<CastEvent>> {
    let script = stack.dir.join("script.sh");
    std::fs::write(&script, SCRIPT)?;
    let mut command = stack.kubectl.command(&["exec", "-i", "demo", "--", "sh"]);
    command.stdin(std::fs::File::open(&script)?);
    let output = command.output()?;
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        stack.logs()
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), SCRIPT_OUTPUT);
    Ok(newest_cast(stack, count)?.1)
}

#[test]
fn piped_stdin_is_recorded_as_input_events_when_the_grant_says_so() -> anyhow::Result<()> {
    let mut stack = recorded_stack(RECORD_INPUT)?;
    for (index, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        use_protocol(&mut stack, websockets);
        let events = run_script(&mut stack, index + 1)?;
        // Every line of the script, in order, and nothing else.
        assert_eq!(text_of(&events, "i"), SCRIPT, "{name}: {events:?}");
        assert_eq!(text_of(&events, "o"), SCRIPT_OUTPUT, "{name}");
        assert!(
            !events
                .iter()
                .any(|e| e.code == "m" && e.data.contains("redacted")),
            "{name}: no tty, nothing is redacted: {events:?}"
        );
    }

    let mut stack = recorded_stack(RecordingGrant::ENFORCED)?;
    for (index, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        use_protocol(&mut stack, websockets);
        let events = run_script(&mut stack, index + 1)?;
        assert!(
            !events.iter().any(|e| e.code == "i"),
            "{name}: without recordInput there are no input events: {events:?}"
        );
    }
    Ok(())
}

const PASSWORD: &str = "hunter2-XyZ";

#[test]
fn a_tty_session_records_what_is_echoed_and_not_a_password() -> anyhow::Result<()> {
    let mut stack = recorded_stack(RECORD_INPUT)?;
    let password_line =
        "stty -echo; printf 'Pass%s: ' word; read pw; stty echo; echo; echo \"got ${#pw}\"\n";
    for (index, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        use_protocol(&mut stack, websockets);
        // A prompt of our own, to type only once the shell waits for a command.
        let mut term = stack.kubectl.terminal(
            &["exec", "-it", "demo", "--", "env", "PS1=ps1> ", "sh"],
            24,
            100,
        )?;
        term.expect("ps1> ", PATIENCE)?;
        term.type_text("echo typed-$((6*7))\n")?;
        term.expect("typed-42\r\n", PATIENCE)?;
        term.expect("ps1> ", PATIENCE)?;

        // The terminal's echo is off while the password is typed: "Password: " shows only once
        // `stty -echo` has run (the echo of the command line says "Pass%s").
        term.type_text(password_line)?;
        term.expect("Password: ", PATIENCE)?;
        term.type_text(&format!("{PASSWORD}\n"))?;
        let shown = term.expect("ps1> ", PATIENCE)?;
        assert!(shown.contains("got 11\r\n"), "{name}: {shown:?}");
        assert!(!shown.contains(PASSWORD), "{name}: {shown:?}");

        term.type_text("exit\n")?;
        assert_eq!(term.wait(PATIENCE)?, Some(0), "{name}");

        let (cast, events) = newest_cast(&stack, index + 1)?;
        assert!(
            !cast.contains(PASSWORD) && !cast.contains("hunter"),
            "{name}: the password is not in the recording: {cast}"
        );
        let markers: Vec<&str> = events
            .iter()
            .filter(|e| e.code == "m")
            .map(|e| e.data.as_str())
            .collect();
        assert!(
            markers.contains(&"input redacted: 12 bytes not echoed"),
            "{name}: the password and its line end are marked redacted: {markers:?}"
        );
        // The commands typed while the terminal echoed are recorded, in order.
        let input = text_of(&events, "i");
        assert_eq!(
            input,
            format!("echo typed-$((6*7))\n{password_line}exit\n"),
            "{name}: {events:?}"
        );
        // The marker comes after the command line that turned echo off and before the output
        // that followed the password.
        let marker_at = events
            .iter()
            .position(|e| e.data == "input redacted: 12 bytes not echoed")
            .unwrap_or_default();
        let got_at = events
            .iter()
            .position(|e| e.code == "o" && e.data.contains("got 11"))
            .unwrap_or_default();
        assert!(marker_at < got_at, "{name}: {events:?}");
    }
    Ok(())
}
