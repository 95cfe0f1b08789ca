//! Unit and property tests of the encoder.

use super::*;
use castfmt::{Caller, KubernetesSession, SessionType};

fn header() -> CastHeader {
    CastHeader::kubernetes(
        1_700_000_000,
        Caller::Tagged {
            node: "ci".into(),
            node_id: "n1".into(),
            tags: vec!["tag:ci".into()],
        },
        "sh",
        KubernetesSession {
            pod_name: "p".into(),
            namespace: "ns".into(),
            container: "c".into(),
            session_type: SessionType::Exec,
        },
    )
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn lines(out: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn tty(options: TtyOptions) -> EncoderOptions {
    EncoderOptions {
        tty: true,
        record_input: false,
        tty_options: options,
    }
}

#[test]
fn non_tty_header_is_written_at_start_with_zero_size() {
    let mut enc = CastEncoder::new(header(), EncoderOptions::default());
    let mut out = Vec::new();
    enc.start(&mut out);
    enc.output(ms(1), OutputStream::Stdout, b"out\n", &mut out);
    enc.output(ms(2), OutputStream::Stderr, b"err\n", &mut out);
    enc.finish(ms(3), &mut out);
    let l = lines(&out);
    assert_eq!(l.len(), 3);
    assert_eq!(l[0]["width"], 0);
    assert_eq!(l[0]["height"], 0);
    assert_eq!(l[1], serde_json::json!([0.001, "o", "out\n"]));
    assert_eq!(l[2], serde_json::json!([0.002, "o", "err\n"]));
}

#[test]
fn tty_header_takes_the_first_resize_and_later_ones_are_events() {
    let mut enc = CastEncoder::new(header(), tty(TtyOptions::default()));
    let mut out = Vec::new();
    enc.start(&mut out);
    enc.output(ms(1), OutputStream::Stdout, b"early", &mut out);
    assert!(out.is_empty());
    assert_eq!(enc.header_deadline(), Some(Duration::from_secs(2)));
    enc.resize(ms(2), 100, 30, &mut out);
    assert!(enc.header_written());
    assert_eq!(enc.header_deadline(), None);
    enc.resize(ms(3), 0, 0, &mut out);
    enc.resize(ms(4), 90, 20, &mut out);
    let l = lines(&out);
    assert_eq!(l.len(), 3);
    assert_eq!(
        (l[0]["width"].clone(), l[0]["height"].clone()),
        (100.into(), 30.into())
    );
    assert_eq!(l[1], serde_json::json!([0.001, "o", "early"]));
    assert_eq!(l[2], serde_json::json!([0.004, "r", "90x20"]));
}

#[test]
fn tty_header_uses_default_after_deadline() {
    let options = TtyOptions {
        resize_deadline: ms(100),
        default_size: TermSize { cols: 0, rows: 0 },
        pending_output_limit: 1 << 20,
    };
    let mut enc = CastEncoder::new(header(), tty(options));
    let mut out = Vec::new();
    enc.start(&mut out);
    enc.output(ms(10), OutputStream::Stdout, b"a", &mut out);
    enc.deadline_passed(ms(99), &mut out);
    assert!(out.is_empty());
    enc.deadline_passed(ms(100), &mut out);
    enc.resize(ms(150), 132, 43, &mut out);
    let l = lines(&out);
    assert_eq!(l[0]["width"], 80, "a 0x0 default is replaced by 80x24");
    assert_eq!(l[0]["height"], 24);
    assert_eq!(l[1], serde_json::json!([0.01, "o", "a"]));
    assert_eq!(l[2], serde_json::json!([0.15, "r", "132x43"]));
}

#[test]
fn an_event_after_the_deadline_releases_the_header_first() {
    let options = TtyOptions {
        resize_deadline: ms(100),
        ..TtyOptions::default()
    };
    let mut enc = CastEncoder::new(header(), tty(options));
    let mut out = Vec::new();
    enc.resize(ms(200), 50, 10, &mut out);
    let l = lines(&out);
    assert_eq!(l[0]["width"], 80);
    assert_eq!(l[1], serde_json::json!([0.2, "r", "50x10"]));
}

#[test]
fn unknown_first_size_writes_default_header_at_once() {
    let mut enc = CastEncoder::new(header(), tty(TtyOptions::default()));
    let mut out = Vec::new();
    enc.output(ms(1), OutputStream::Stdout, b"x", &mut out);
    enc.resize(ms(2), 0, 0, &mut out);
    let l = lines(&out);
    assert_eq!(l.len(), 2);
    assert_eq!(l[0]["width"], 80);
    assert_eq!(l[0]["height"], 24);
}

#[test]
fn pending_output_over_the_limit_releases_the_header() {
    let options = TtyOptions {
        pending_output_limit: 64,
        ..TtyOptions::default()
    };
    let mut enc = CastEncoder::new(header(), tty(options));
    let mut out = Vec::new();
    enc.output(ms(1), OutputStream::Stdout, &[b'x'; 40], &mut out);
    assert!(out.is_empty());
    enc.output(ms(2), OutputStream::Stdout, &[b'y'; 40], &mut out);
    assert!(enc.header_written());
    let l = lines(&out);
    assert_eq!(l.len(), 3);
    assert_eq!(l[0]["width"], 80);
}

#[test]
fn finish_writes_a_waiting_header_and_flushes_carries() {
    let mut enc = CastEncoder::new(header(), tty(TtyOptions::default()));
    let mut out = Vec::new();
    enc.output(ms(1), OutputStream::Stderr, b"ok\xE2\x82", &mut out);
    enc.finish(ms(5), &mut out);
    let l = lines(&out);
    assert_eq!(l.len(), 3);
    assert_eq!(l[0]["width"], 80);
    assert_eq!(l[1], serde_json::json!([0.001, "o", "ok"]));
    assert_eq!(l[2], serde_json::json!([0.005, "o", "\u{FFFD}"]));
}

#[test]
fn streams_have_separate_carries() {
    let mut enc = CastEncoder::new(header(), EncoderOptions::default());
    let mut out = Vec::new();
    enc.start(&mut out);
    enc.output(ms(1), OutputStream::Stdout, b"\xE2\x82", &mut out);
    enc.output(ms(2), OutputStream::Stderr, b"\xC3", &mut out);
    enc.output(ms(3), OutputStream::Stdout, b"\xAC", &mut out);
    enc.output(ms(4), OutputStream::Stderr, b"\xA9", &mut out);
    let l = lines(&out);
    assert_eq!(l[1], serde_json::json!([0.003, "o", "€"]));
    assert_eq!(l[2], serde_json::json!([0.004, "o", "é"]));
}

#[test]
fn input_is_recorded_only_when_asked() {
    let mut out = Vec::new();
    let mut off = CastEncoder::new(header(), EncoderOptions::default());
    off.start(&mut out);
    off.input(ms(1), b"secret\n", &mut out);
    assert_eq!(lines(&out).len(), 1);

    let mut out = Vec::new();
    let mut on = CastEncoder::new(
        header(),
        EncoderOptions {
            record_input: true,
            ..EncoderOptions::default()
        },
    );
    on.start(&mut out);
    on.input(ms(1), b"ls\n", &mut out);
    assert_eq!(lines(&out)[1], serde_json::json!([0.001, "i", "ls\n"]));
}

#[test]
fn times_never_go_backwards_and_exit_is_a_marker() {
    let mut enc = CastEncoder::new(header(), EncoderOptions::default());
    let mut out = Vec::new();
    enc.start(&mut out);
    enc.output(ms(10), OutputStream::Stdout, b"a", &mut out);
    enc.output(ms(5), OutputStream::Stdout, b"b", &mut out);
    enc.exit(ms(11), &ExitStatus::Code(3), &mut out);
    let l = lines(&out);
    assert_eq!(l[2], serde_json::json!([0.01, "o", "b"]));
    assert_eq!(l[3], serde_json::json!([0.011, "m", "exit 3"]));
}

#[test]
fn exit_markers_record_success_as_code_0() {
    let mut out = Vec::new();
    for status in [
        ExitStatus::Success,
        ExitStatus::Code(0),
        ExitStatus::Code(-1),
        ExitStatus::Failure {
            message: "pod gone".into(),
        },
    ] {
        let mut enc = CastEncoder::new(header(), EncoderOptions::default());
        enc.exit(ms(1), &status, &mut out);
    }
    let markers: Vec<_> = lines(&out)
        .into_iter()
        .filter(|line| line[1] == "m")
        .map(|line| line[2].clone())
        .collect();
    assert_eq!(
        markers,
        ["exit 0", "exit 0", "exit -1", "exit error: pod gone"]
    );
}

#[derive(Debug, Clone)]
enum Op {
    Out(Vec<u8>),
    Resize(u16, u16),
    Wait(u64),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..16).prop_map(Op::Out),
        2 => "[a-zé€😀]{1,6}".prop_map(|s| Op::Out(s.into_bytes())),
        1 => (0u16..3, 0u16..3).prop_map(|(c, r)| Op::Resize(c * 40, r * 12)),
        1 => (0u64..1500).prop_map(Op::Wait),
    ]
}

proptest::proptest! {
    /// Whatever happens, the cast is a header line and then events in time order, the header of
    /// a tty session never says 0x0, and the `o` text is the lossy decoding of all the output.
    #[test]
    fn any_session_encodes_to_a_valid_cast(
        ops in proptest::collection::vec(op(), 0..40),
        tty in proptest::bool::ANY,
    ) {
        let options = EncoderOptions {
            tty,
            tty_options: TtyOptions { pending_output_limit: 64, ..TtyOptions::default() },
            ..EncoderOptions::default()
        };
        let mut enc = CastEncoder::new(header(), options);
        let mut out = Vec::new();
        enc.start(&mut out);
        let mut now = Duration::ZERO;
        let mut all = Vec::new();
        for op in ops {
            match op {
                Op::Out(bytes) => {
                    all.extend_from_slice(&bytes);
                    enc.output(now, OutputStream::Stdout, &bytes, &mut out);
                }
                Op::Resize(cols, rows) => enc.resize(now, cols, rows, &mut out),
                Op::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    enc.deadline_passed(now, &mut out);
                }
            }
        }
        enc.finish(now, &mut out);
        let l = lines(&out);
        proptest::prop_assert!(!l.is_empty());
        proptest::prop_assert_eq!(&l[0]["version"], 2);
        if tty {
            proptest::prop_assert_ne!(&l[0]["width"], 0);
            proptest::prop_assert_ne!(&l[0]["height"], 0);
        }
        let mut last = 0.0;
        let mut text = String::new();
        for event in &l[1..] {
            let t = event[0].as_f64().expect("time");
            proptest::prop_assert!(t >= last);
            last = t;
            match event[1].as_str().expect("code") {
                "o" => text.push_str(event[2].as_str().expect("text")),
                "r" => proptest::prop_assert_ne!(event[2].as_str(), Some("0x0")),
                other => proptest::prop_assert!(false, "unexpected code {}", other),
            }
        }
        proptest::prop_assert_eq!(text, String::from_utf8_lossy(&all));
    }
}

fn tty_with_input() -> EncoderOptions {
    EncoderOptions {
        tty: true,
        record_input: true,
        tty_options: TtyOptions::default(),
    }
}

fn events_of(out: &[u8], code: &str) -> Vec<(f64, String)> {
    lines(out)[1..]
        .iter()
        .filter(|event| event[1] == code)
        .map(|event| {
            (
                event[0].as_f64().expect("time"),
                event[2].as_str().expect("text").to_string(),
            )
        })
        .collect()
}

#[test]
fn non_tty_input_is_recorded_byte_for_byte() {
    let mut enc = CastEncoder::new(
        header(),
        EncoderOptions {
            record_input: true,
            ..EncoderOptions::default()
        },
    );
    let mut out = Vec::new();
    enc.input(ms(1), b"echo one\n", &mut out);
    enc.input(ms(2), b"secret\n", &mut out);
    enc.output(ms(3), OutputStream::Stdout, b"one\n", &mut out);
    enc.finish(ms(4), &mut out);
    assert_eq!(
        events_of(&out, "i"),
        [
            (0.001, "echo one\n".to_string()),
            (0.002, "secret\n".to_string())
        ]
    );
}

#[test]
fn tty_input_is_recorded_when_echoed_and_redacted_when_not() {
    let mut enc = CastEncoder::new(header(), tty_with_input());
    let mut out = Vec::new();
    enc.resize(ms(0), 80, 24, &mut out);
    enc.output(ms(1), OutputStream::Stdout, b"$ ", &mut out);
    enc.input(ms(2), b"read pw\r", &mut out);
    enc.output(ms(3), OutputStream::Stdout, b"read pw\r\n", &mut out);
    enc.output(ms(4), OutputStream::Stdout, b"Password: ", &mut out);
    enc.input(ms(5), b"hunter2\r", &mut out);
    enc.output(ms(6), OutputStream::Stdout, b"\r\n$ ", &mut out);
    enc.input(ms(7), b"exit\r", &mut out);
    enc.exit(ms(8), &ExitStatus::Success, &mut out);
    enc.finish(ms(9), &mut out);
    let l = lines(&out);
    let events: Vec<_> = l[1..]
        .iter()
        .map(|e| (e[1].clone(), e[2].clone()))
        .collect();
    let expected: Vec<(serde_json::Value, serde_json::Value)> = [
        ("o", "$ "),
        ("i", "read pw\r"),
        ("o", "read pw\r\n"),
        ("o", "Password: "),
        ("m", "input redacted: 8 bytes not echoed"),
        ("o", "\r\n$ "),
        ("m", "input redacted: 5 bytes not echoed"),
        ("m", "exit 0"),
    ]
    .into_iter()
    .map(|(code, text)| (code.into(), text.into()))
    .collect();
    assert_eq!(events, expected);
    // An echoed byte is recorded at the time it was typed.
    assert_eq!(l[2][0], 0.002);
    assert!(!String::from_utf8_lossy(&out).contains("hunter2"));
}

#[test]
fn tty_input_off_records_no_input_and_no_markers() {
    let mut enc = CastEncoder::new(header(), tty(TtyOptions::default()));
    let mut out = Vec::new();
    enc.resize(ms(0), 80, 24, &mut out);
    enc.input(ms(1), b"ls\r", &mut out);
    enc.output(ms(2), OutputStream::Stdout, b"ls\r\n", &mut out);
    enc.input(ms(3), b"pw\r", &mut out);
    enc.finish(ms(4), &mut out);
    let codes: Vec<_> = lines(&out)[1..].iter().map(|e| e[1].clone()).collect();
    assert_eq!(codes, ["o"]);
}

/// What the user does at a terminal, for the property test.
#[derive(Debug, Clone)]
enum Typing {
    /// A command typed with echo on: the terminal echoes it, then the command prints `output`.
    Echoed { text: String, output: String },
    /// A secret typed at a no-echo prompt; then the program prints `output`.
    Secret { text: String, output: String },
}

/// Secrets use only these characters, which no output ever contains.
const SECRET_CHARS: &str = "QWXYZ!#%ß";

fn typing() -> impl proptest::strategy::Strategy<Value = (Typing, usize, usize, bool)> {
    use proptest::prelude::*;
    let output = "[n-z0-9 $:\r\n]{0,12}";
    let step = prop_oneof![
        ("[a-m ]{0,8}", output).prop_map(|(text, output)| Typing::Echoed { text, output }),
        ("[QWXYZ!#%ß]{1,8}", output).prop_map(|(text, output)| Typing::Secret { text, output }),
    ];
    (step, 1usize..6, 1usize..6, proptest::bool::weighted(0.2))
}

proptest::proptest! {
    /// Nothing typed while the terminal does not echo reaches the cast, however input and output
    /// are split and whatever is typed ahead; when nothing is typed ahead, everything echoed is
    /// recorded, in order.
    #[test]
    fn unechoed_input_never_reaches_the_cast(
        steps in proptest::collection::vec(typing(), 0..12),
    ) {
        let mut enc = CastEncoder::new(header(), tty_with_input());
        let mut out = Vec::new();
        enc.resize(Duration::ZERO, 80, 24, &mut out);
        let mut now = Duration::ZERO;
        let mut typed_ahead = false;
        let mut echoed_text = String::new();
        // Output of the previous step still to come (when the next step is typed ahead of it).
        let mut late_output: Option<(Vec<u8>, usize)> = None;
        let write = |enc: &mut CastEncoder, now: &mut Duration, bytes: &[u8], chunk: usize, input: bool, out: &mut Vec<u8>| {
            for piece in bytes.chunks(chunk) {
                *now += Duration::from_millis(1);
                if input {
                    enc.input(*now, piece, out);
                } else {
                    enc.output(*now, OutputStream::Stdout, piece, out);
                }
            }
        };
        for (step, in_chunk, out_chunk, ahead) in steps {
            let (typed, shown) = match &step {
                Typing::Echoed { text, output } => {
                    echoed_text.push_str(text);
                    echoed_text.push('\r');
                    (format!("{text}\r"), format!("{text}\r\n{output}"))
                }
                Typing::Secret { text, output } => (format!("{text}\r"), format!("\r\n{output}")),
            };
            write(&mut enc, &mut now, typed.as_bytes(), in_chunk, true, &mut out);
            if let Some((bytes, chunk)) = late_output.take() {
                write(&mut enc, &mut now, &bytes, chunk, false, &mut out);
            }
            if ahead {
                typed_ahead = true;
                late_output = Some((shown.into_bytes(), out_chunk));
            } else {
                write(&mut enc, &mut now, shown.as_bytes(), out_chunk, false, &mut out);
            }
        }
        if let Some((bytes, chunk)) = late_output.take() {
            write(&mut enc, &mut now, &bytes, chunk, false, &mut out);
        }
        enc.finish(now, &mut out);
        let text = String::from_utf8(out.clone()).expect("utf-8");
        let events = text.split_once('\n').map(|(_, events)| events).unwrap_or_default();
        for secret in SECRET_CHARS.chars() {
            proptest::prop_assert!(!events.contains(secret), "{:?} in {}", secret, events);
        }
        let input: String = events_of(&out, "i").into_iter().map(|(_, text)| text).collect();
        if !typed_ahead {
            proptest::prop_assert_eq!(input, echoed_text);
        }
    }
}
