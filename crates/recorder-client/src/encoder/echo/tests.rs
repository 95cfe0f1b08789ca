//! Unit tests of the echo tracker. The property test (nothing typed at a no-echo prompt reaches
//! the cast) is in the encoder's tests.

use super::*;

const T0: Duration = Duration::ZERO;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn echoed(at: Duration, bytes: &[u8]) -> EchoDecision {
    EchoDecision::Echoed {
        at,
        bytes: bytes.to_vec(),
    }
}

fn redacted(at: Duration, count: usize) -> EchoDecision {
    EchoDecision::Redacted { at, count }
}

/// Feeds the output byte by byte: the echo comes back in pieces.
fn output_in_pieces(echo: &mut EchoTracker, bytes: &[u8]) -> Vec<EchoDecision> {
    let mut decisions = Vec::new();
    for piece in bytes.chunks(1) {
        decisions.extend(echo.output(piece));
    }
    decisions
}

/// Joins adjacent decisions of the same kind, as one call would have made them.
fn joined(decisions: Vec<EchoDecision>) -> Vec<EchoDecision> {
    let mut out: Vec<EchoDecision> = Vec::new();
    for decision in decisions {
        match (out.last_mut(), decision) {
            (
                Some(EchoDecision::Echoed { bytes, .. }),
                EchoDecision::Echoed { bytes: more, .. },
            ) => bytes.extend(more),
            (
                Some(EchoDecision::Redacted { count, .. }),
                EchoDecision::Redacted { count: more, .. },
            ) => *count += more,
            (_, decision) => out.push(decision),
        }
    }
    out
}

#[test]
fn an_echoed_line_is_recorded_as_its_echo_arrives() {
    let mut echo = EchoTracker::new();
    assert!(echo.input(ms(1), b"ls -l\r").is_empty());
    assert!(echo.is_holding());
    assert_eq!(echo.output(b"ls"), [echoed(ms(1), b"ls")]);
    assert_eq!(echo.output(b" -l\r"), [echoed(ms(1), b" -l")]);
    assert!(
        echo.is_holding(),
        "\\r of \\r\\n seen, the line end still waits"
    );
    assert_eq!(echo.output(b"\ntotal 0\r\n$ "), [echoed(ms(1), b"\r")]);
    assert!(!echo.is_holding());
    assert!(echo.finish().is_empty());
}

#[test]
fn echo_byte_by_byte_and_typing_byte_by_byte() {
    let mut echo = EchoTracker::new();
    let mut decisions = Vec::new();
    for (i, byte) in b"echo hi\r".iter().enumerate() {
        decisions.extend(echo.input(ms(i as u64), std::slice::from_ref(byte)));
    }
    decisions.extend(output_in_pieces(&mut echo, b"echo hi\r\nhi\r\n"));
    assert_eq!(joined(decisions), [echoed(T0, b"echo hi\r")]);
}

#[test]
fn a_password_at_a_no_echo_prompt_is_redacted_whole() {
    let mut echo = EchoTracker::new();
    echo.input(ms(5), b"hunter2\r");
    assert_eq!(echo.output(b"\r\ngot 7\r\n$ "), [redacted(ms(5), 8)]);
    // The next command is echoed again.
    echo.input(ms(9), b"id\r");
    assert_eq!(echo.output(b"id\r\n"), [echoed(ms(9), b"id\r")]);
}

#[test]
fn a_redacted_line_stays_redacted_even_when_the_output_shows_some_of_it() {
    // "xhello" typed without echo; the program then prints "hello": the line is redacted from its
    // first unechoed byte on, never resumed within the line.
    let mut echo = EchoTracker::new();
    echo.input(T0, b"xhello\r");
    assert_eq!(echo.output(b"hello\r\n"), [redacted(T0, 7)]);
}

#[test]
fn the_line_end_decides_a_redacted_line_typed_in_pieces() {
    let mut echo = EchoTracker::new();
    echo.input(T0, b"sec");
    // Output that is not the echo: the line is redacted from here to its end.
    assert!(echo.output(b"tick\r\n").is_empty(), "the run goes on");
    assert!(echo.input(ms(1), b"ret").is_empty());
    assert_eq!(echo.input(ms(2), b"\rls\r"), [redacted(T0, 7)]);
    // After the line end, input is held for its echo again.
    assert_eq!(echo.output(b"ls\r\n"), [echoed(ms(2), b"ls\r")]);
}

#[test]
fn the_session_ending_with_bytes_held_redacts_them() {
    let mut echo = EchoTracker::new();
    echo.input(ms(3), b"top");
    echo.input(ms(4), b"secret");
    assert_eq!(echo.finish(), [redacted(ms(3), 9)]);
    assert!(!echo.is_holding());
    // A redacted run still open when the session ends is reported too.
    let mut echo = EchoTracker::new();
    echo.input(T0, b"ab");
    assert!(echo.output(b"x").is_empty());
    echo.input(ms(1), b"cd");
    assert_eq!(echo.finish(), [redacted(T0, 4)]);
}

#[test]
fn control_characters_echo_as_caret_forms() {
    let mut echo = EchoTracker::new();
    echo.input(T0, b"sleep 9\r\x03");
    assert_eq!(
        echo.output(b"sleep 9\r\n^C\r\n$ "),
        [echoed(T0, b"sleep 9\r\x03")]
    );
    // An arrow key in canonical mode: ESC [ A echoed as ^[[A.
    echo.input(T0, b"\x1b[A");
    assert_eq!(echo.output(b"^[[A"), [echoed(T0, b"\x1b[A")]);
}

#[test]
fn erase_echoes_are_recognised() {
    let mut echo = EchoTracker::new();
    echo.input(T0, b"lx\x7fs\r");
    assert_eq!(echo.output(b"lx\x08 \x08s\r\n"), [echoed(T0, b"lx\x7fs\r")]);
    // readline's erase: backspace then erase-to-end-of-line.
    echo.input(T0, b"ab\x7f");
    assert_eq!(echo.output(b"ab\x08\x1b[K"), [echoed(T0, b"ab\x7f")]);
    // Without echoe: ^?.
    echo.input(T0, b"\x7f");
    assert_eq!(echo.output(b"^?"), [echoed(T0, b"\x7f")]);
}

#[test]
fn an_unechoed_control_byte_is_redacted_alone() {
    // A backspace on an empty line echoes nothing; the command after it is still recorded.
    let mut echo = EchoTracker::new();
    echo.input(T0, b"\x7fpwd\r");
    assert_eq!(
        echo.output(b"pwd\r\n/\r\n"),
        [redacted(T0, 1), echoed(T0, b"pwd\r")]
    );
    // ^D at an empty prompt is not echoed.
    echo.input(T0, b"\x04");
    assert_eq!(echo.output(b"exit\r\n"), [redacted(T0, 1)]);
    // A shell's own line editing: an arrow key answered by a redrawn line, then tab completion.
    echo.input(T0, b"\x1b[A");
    assert_eq!(echo.output(b"\rls -l"), [redacted(T0, 3)]);
    echo.input(T0, b"cat /et\t");
    assert_eq!(
        echo.output(b"cat /etc/"),
        [echoed(T0, b"cat /et"), redacted(T0, 1)]
    );
    echo.input(T0, b"\r");
    assert_eq!(echo.output(b"\r\n"), [echoed(T0, b"\r")]);
}

#[test]
fn escape_sequences_in_the_output_are_skipped() {
    let mut echo = EchoTracker::new();
    echo.input(T0, b"ls\r");
    // bash's bracketed paste switch and a colour around the echo, the sequence split.
    assert_eq!(echo.output(b"\x1b[01;32ml"), [echoed(T0, b"l")]);
    assert_eq!(echo.output(b"\x1b[0ms\x1b[?20"), [echoed(T0, b"s")]);
    assert_eq!(
        echo.output(b"04l\r\x1b]0;title\x07\r\n"),
        [echoed(T0, b"\r")]
    );
}

#[test]
fn too_much_held_without_any_output_is_not_echoed() {
    let mut echo = EchoTracker::new();
    let line = vec![b'a'; EchoTracker::HELD_LIMIT];
    assert!(echo.input(T0, &line).is_empty());
    assert!(
        echo.input(ms(1), b"b").is_empty(),
        "redacted through the line end"
    );
    assert!(!echo.is_holding());
    assert_eq!(
        echo.input(ms(2), b"c\rok"),
        [redacted(T0, EchoTracker::HELD_LIMIT + 3)]
    );
    assert_eq!(echo.output(b"ok"), [echoed(ms(2), b"ok")]);
}

#[test]
fn utf8_is_echoed_byte_for_byte() {
    let mut echo = EchoTracker::new();
    echo.input(T0, "café\r".as_bytes());
    let decisions = output_in_pieces(&mut echo, "café\r\n".as_bytes());
    assert_eq!(joined(decisions), [echoed(T0, "café\r".as_bytes())]);
}
