//! `kubectl exec -it` and `kubectl attach -it` as a user at a terminal runs them: kubectl itself
//! under a pseudo-terminal, over WebSocket and over SPDY. What is typed is echoed by the remote
//! terminal, a resize of kubectl's terminal reaches the remote one, and the shell's exit code
//! comes back.
#![allow(clippy::unwrap_used)]

mod support;

use support::{Kubectl, Transport};

const PODS: &str = r#"
pods:
  - {name: demo}
  - {name: shell, attachCommand: [sh], tty: true}
"#;

/// Asks the remote shell for its terminal size until it reports `rows cols`: the resize travels
/// (SIGWINCH to kubectl, then a resize message) independently of the typed command, so the
/// first answer may predate it.
async fn await_size(term: &mut support::Terminal, rows: u16, cols: u16, marker: &str) {
    for attempt in 0..50 {
        term.type_text(&format!("stty size; echo {marker}-$(({attempt}+1000))\n"))
            .await;
        // The command's output, not the echo of what was typed (which has the expression).
        let shown = term
            .expect(&format!("{marker}-{}\r\n", attempt + 1000))
            .await;
        // Preceded by a prompt when the command was typed before the shell was ready.
        if shown.contains(&format!("{rows} {cols}\r\n")) {
            return;
        }
    }
    panic!("the remote terminal never became {rows}x{cols}");
}

#[tokio::test]
async fn exec_it_echoes_resizes_and_exits() {
    let k = Kubectl::start(PODS, false, "proxy-token").await;
    for transport in Transport::BOTH {
        let mut term = k.terminal(transport, &["exec", "-it", "demo", "--", "sh"], 30, 100);
        // The shell starts with kubectl's terminal size. (Typed before kubectl has put its
        // terminal in raw mode, the line is echoed locally as well as by the remote terminal.)
        term.type_text("stty size; echo typed-$((6*7))\n").await;
        let shown = term.expect("typed-42\r\n").await;
        assert!(shown.contains("30 100\r\ntyped-42"), "{shown:?}");
        // Now kubectl's terminal is raw: what is typed shows once, echoed by the remote one.
        term.type_text("echo hi-$((1+1))\n").await;
        let shown = term.expect("hi-2\r\n").await;
        assert_eq!(
            shown.matches("echo hi-$((1+1))\r\n").count(),
            1,
            "{shown:?}"
        );

        term.resize(40, 120);
        await_size(&mut term, 40, 120, "resized").await;

        term.type_text("exit 3\n").await;
        term.expect("command terminated with exit code 3").await;
        assert_eq!(term.wait().await, Some(3), "{transport:?}");
        assert_eq!(k.assert_sessions_used(transport), 1);
        k.server.clear_requests();
    }
}

#[tokio::test]
async fn attach_it_reaches_the_same_shell_each_time() {
    let k = Kubectl::start(PODS, false, "proxy-token").await;

    // The first attach starts the shell; leaving (kubectl killed) leaves it running.
    let mut term = k.terminal(Transport::WebSocket, &["attach", "-it", "shell"], 24, 80);
    term.expect("If you don't see a command prompt, try pressing enter.")
        .await;
    term.type_text("X=42; echo first-$X\n").await;
    term.expect("first-42\r\n").await;
    term.resize(33, 99);
    await_size(&mut term, 33, 99, "ws").await;
    drop(term);

    // Over SPDY: the same shell, its variable still set.
    let mut term = k.terminal(Transport::Spdy, &["attach", "-it", "shell"], 24, 80);
    term.type_text("echo second-$X\n").await;
    term.expect("second-42\r\n").await;
    await_size(&mut term, 24, 80, "spdy").await;
    term.type_text("exit\n").await;
    // The shell exited: the session ends with success.
    assert_eq!(term.wait().await, Some(0));

    let sessions = k.sessions();
    let methods: Vec<(&str, u16)> = sessions
        .iter()
        .map(|r| (r.method.as_str(), r.status))
        .collect();
    assert_eq!(methods, [("GET", 101), ("POST", 101)]);
}
