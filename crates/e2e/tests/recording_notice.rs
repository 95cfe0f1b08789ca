//! `--recording-notice`: a recorded terminal session shows the notice before anything the command
//! writes, and the recording has it first too; over WebSocket and SPDY, with the real kubectl under
//! a pseudo-terminal. Sessions without a terminal get no notice (their output is data).

use std::time::Duration;

use e2e::cast::{asciinema_accepts, output_of};
use e2e::stack::{admin_caller, RecordingGrant, Stack, StackOptions};

const PROTOCOLS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];
const PATIENCE: Duration = Duration::from_secs(60);
const NOTICE: &str = "This session is recorded (ops policy 7).";

fn stack() -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(RecordingGrant::ENFORCED);
    options.proxy_args = vec!["--recording-notice".into(), NOTICE.into()];
    Stack::start(options)
}

#[test]
fn a_recorded_terminal_session_shows_the_notice_first_and_records_it() -> anyhow::Result<()> {
    let mut stack = stack()?;
    let mut finished = 0;
    for (name, websockets) in PROTOCOLS {
        stack.kubectl.env = vec![(
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.to_owned(),
        )];
        let mut term = stack
            .kubectl
            .terminal(&["exec", "-it", "demo", "--", "sh"], 24, 80)?;
        let before_notice = term.expect(NOTICE, PATIENCE)?;
        assert!(
            !before_notice.contains('$') && !before_notice.contains('#'),
            "{name}: the notice comes before the shell's prompt: {before_notice:?}"
        );
        term.type_text("echo after-$((6*7))\n")?;
        term.expect("after-42\r\n", PATIENCE)?;
        term.type_text("exit\n")?;
        assert_eq!(term.wait(PATIENCE)?, Some(0), "{name}");

        finished += 1;
        let recordings = stack.finished_recordings(finished)?;
        let cast = stack.recording_cast(recordings[0]["id"].as_str().unwrap_or_default())?;
        asciinema_accepts(&stack.dir, &cast)?;
        let output = output_of(&cast)?;
        assert!(
            output.starts_with(&format!("{NOTICE}\r\n")),
            "{name}: the recording starts with the notice: {output:?}"
        );
        assert_eq!(output.matches(NOTICE).count(), 1, "{name}: {output:?}");
        assert!(output.contains("after-42"), "{name}: {output:?}");

        // Without a terminal: no notice in the command's output.
        let plain = stack
            .kubectl
            .run(&["exec", "demo", "--", "echo", "plain"])?;
        assert_eq!(plain.stdout, "plain\n", "{name}");
        finished += 1;
    }
    Ok(())
}
