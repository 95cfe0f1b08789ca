//! Recorded terminal sessions: `kubectl exec -it` and `kubectl attach -it` run by the real kubectl
//! under a pseudo-terminal, through the proxy, recorded by the real `kube-recorder`, over WebSocket
//! (kubectl's default) and SPDY. The recording's header has the terminal's size, resizes become
//! `r` events, what is typed shows in the output as the remote terminal echoes it, and multi-byte
//! characters split across frames are recorded whole.

use std::time::Duration;

use e2e::cast::{asciinema_accepts, events_of, header_of, output_of, CastEvent};
use e2e::stack::{admin_caller, default_apiserver_config, RecordingGrant, Stack, StackOptions};
use e2e::terminal::Terminal;

const PROTOCOLS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];
const PATIENCE: Duration = Duration::from_secs(60);

/// A fail-closed recorded stack whose stand-in also has one pod per protocol running a shell on a
/// terminal as its main process, for `kubectl attach -it`.
fn recorded_stack() -> anyhow::Result<Stack> {
    let whois = admin_caller()?;
    let mut options = StackOptions::for_caller(whois);
    options.apiserver_config = default_apiserver_config(0).replace(
        "pods:\n",
        "pods:\n  - {namespace: default, name: shell-websocket, attachCommand: [sh], tty: true}\n  \
         - {namespace: default, name: shell-spdy, attachCommand: [sh], tty: true}\n",
    );
    options.recording = Some(RecordingGrant::ENFORCED);
    Stack::start(options)
}

fn use_protocol(stack: &mut Stack, websockets: &str) {
    stack.kubectl.env = vec![(
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
        websockets.into(),
    )];
}

/// Asks the remote shell for its terminal size until it reports `rows cols`: the resize travels
/// (SIGWINCH to kubectl, then a resize message) independently of the typed command, so the first
/// answer may predate it.
fn await_size(term: &mut Terminal, rows: u16, cols: u16, marker: &str) -> anyhow::Result<()> {
    for attempt in 1000..1050 {
        term.type_text(&format!("stty size; echo {marker}-$(({attempt}+1))\n"))?;
        // The command's output, not the echo of what was typed (which has the expression).
        let shown = term.expect(&format!("{marker}-{}\r\n", attempt + 1), PATIENCE)?;
        if shown.contains(&format!("{rows} {cols}\r\n")) {
            return Ok(());
        }
    }
    anyhow::bail!("the remote terminal never became {rows}x{cols}")
}

/// The newest recording's metadata and cast, once it is finished.
fn newest_recording(stack: &Stack, count: usize) -> anyhow::Result<(serde_json::Value, String)> {
    let recordings = stack.finished_recordings(count)?;
    let newest = recordings[0].clone();
    let cast = stack.recording_cast(newest["id"].as_str().unwrap_or_default())?;
    asciinema_accepts(&stack.dir, &cast)?;
    Ok((newest, cast))
}

fn resizes(events: &[CastEvent]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.code == "r")
        .map(|e| e.data.as_str())
        .collect()
}

#[test]
fn exec_it_records_size_resizes_echoed_input_and_split_characters() -> anyhow::Result<()> {
    let mut stack = recorded_stack()?;
    for (index, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        use_protocol(&mut stack, websockets);
        let mut term = stack
            .kubectl
            .terminal(&["exec", "-it", "demo", "--", "sh"], 30, 100)?;
        term.type_text("echo typed-$((6*7))\n")?;
        term.expect("typed-42\r\n", PATIENCE)?;

        term.resize(40, 120)?;
        await_size(&mut term, 40, 120, "resized")?;

        // "é" is C3 A9: the pod writes its first byte, pauses, then the second, so the two bytes
        // leave the pod (and cross the proxy) in different frames.
        term.type_text("printf 'caf\\303'; sleep 0.3; printf '\\251-split\\n'\n")?;
        term.expect("café-split\r\n", PATIENCE)?;

        term.type_text("exit 3\n")?;
        term.expect("command terminated with exit code 3", PATIENCE)?;
        assert_eq!(term.wait(PATIENCE)?, Some(3), "{name}");

        let (meta, cast) = newest_recording(&stack, index + 1)?;
        assert_eq!(meta["outcome"], "complete", "{name}: {meta}");
        assert_eq!(meta["exitCode"], 3, "{name}: {meta}");
        let header = header_of(&cast)?;
        assert_eq!(
            (&header["width"], &header["height"]),
            (&100.into(), &30.into()),
            "{name}: the header has the terminal's size: {header}"
        );
        assert_eq!(header["kubernetes"]["SessionType"], "exec", "{header}");
        assert_eq!(header["command"], "sh", "{header}");

        let events = events_of(&cast)?;
        assert!(
            resizes(&events).contains(&"120x40"),
            "{name}: the resize is an r event: {:?}",
            resizes(&events)
        );
        let output = output_of(&cast)?;
        // Typed input shows as the remote terminal echoed it, then the command's output.
        assert!(
            output.contains("echo typed-$((6*7))\r\n"),
            "{name}: {output:?}"
        );
        assert!(output.contains("typed-42\r\n"), "{name}: {output:?}");
        assert!(output.contains("café-split\r\n"), "{name}: {output:?}");
        assert!(!output.contains('\u{FFFD}'), "{name}: {output:?}");
        // The split really happened: one output event ends before "é" and a later one starts
        // with it, whole.
        let outputs: Vec<&CastEvent> = events.iter().filter(|e| e.code == "o").collect();
        assert!(
            outputs
                .windows(2)
                .any(|w| w[0].data.ends_with("caf") && w[1].data.starts_with("é-split")),
            "{name}: {outputs:?}"
        );
    }
    Ok(())
}

#[test]
fn attach_it_to_a_running_shell_is_recorded() -> anyhow::Result<()> {
    let mut stack = recorded_stack()?;
    for (index, (name, websockets)) in PROTOCOLS.iter().enumerate() {
        use_protocol(&mut stack, websockets);
        let pod = format!("shell-{name}");
        let mut term = stack.kubectl.terminal(&["attach", "-it", &pod], 24, 80)?;
        term.expect(
            "If you don't see a command prompt, try pressing enter.",
            PATIENCE,
        )?;
        term.type_text("echo attached-$((2+3))\n")?;
        term.expect("attached-5\r\n", PATIENCE)?;
        term.resize(33, 99)?;
        await_size(&mut term, 33, 99, "attach")?;
        term.type_text("exit\n")?;
        assert_eq!(term.wait(PATIENCE)?, Some(0), "{name}");

        let (meta, cast) = newest_recording(&stack, index + 1)?;
        assert_eq!(meta["outcome"], "complete", "{name}: {meta}");
        let header = header_of(&cast)?;
        assert_eq!(header["kubernetes"]["SessionType"], "attach", "{header}");
        assert_eq!(header["kubernetes"]["PodName"], pod.as_str(), "{header}");
        // kubectl attach first sends its size plus one in each direction and then its real size,
        // so that the attached program redraws (attach.go, "fake resizing +1"). The header has
        // the first size, and the real one follows as the first resize.
        assert_eq!(
            (&header["width"], &header["height"]),
            (&81.into(), &25.into()),
            "{name}: {header}"
        );
        let events = events_of(&cast)?;
        let sizes = resizes(&events);
        assert_eq!(sizes.first(), Some(&"80x24"), "{name}: {sizes:?}");
        assert!(sizes.contains(&"99x33"), "{name}: {sizes:?}");
        let output = output_of(&cast)?;
        assert!(
            output.contains("echo attached-$((2+3))\r\n"),
            "{name}: {output:?}"
        );
        assert!(output.contains("attached-5\r\n"), "{name}: {output:?}");
    }
    Ok(())
}
