//! asciicast v2 event lines as a recorder client writes them, strictly: `[time, code, data]`.
//!
//! See <https://docs.asciinema.org/manual/asciicast/v2/#event-stream>: `time` is seconds since the
//! start of the recording as a JSON number, `code` one of `o` (output), `i` (input), `r` (resize,
//! data `COLSxROWS`) and `m` (marker, data a label), and `data` a JSON string.

use std::io::Write as _;
use std::time::Duration;

/// The code of an asciicast v2 event. Only the spec's codes can be written; a recorder reads any
/// code (see [`CastEvent`](crate::CastEvent)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventCode {
    /// `o`: data written to the terminal (the session's stdout and stderr).
    Output,
    /// `i`: data typed by the user (the session's stdin).
    Input,
    /// `r`: the terminal was resized; data is `COLSxROWS`.
    Resize,
    /// `m`: a marker; data is its label.
    Marker,
}

impl EventCode {
    /// The one-letter code written in the event line.
    pub fn as_str(self) -> &'static str {
        match self {
            EventCode::Output => "o",
            EventCode::Input => "i",
            EventCode::Resize => "r",
            EventCode::Marker => "m",
        }
    }
}

/// Appends one event line (newline included) to `out`.
///
/// The time is written with microsecond precision in plain decimal notation (`12.000345`), never
/// in exponent form, so that every asciicast reader parses it the same way.
pub fn write_event_line(out: &mut Vec<u8>, at: Duration, code: EventCode, data: &str) {
    start_line(out, at, code, data.len());
    crate::write_json_string(out, data);
    out.extend_from_slice(b"]\n");
}

/// Writes the event line of `data` like [`write_event_line`] when `data` is UTF-8, and returns
/// `true`; otherwise leaves `out` as it was and returns `false`. Output that is all ASCII is
/// checked in the same pass that escapes it.
pub fn write_event_line_if_utf8(
    out: &mut Vec<u8>,
    at: Duration,
    code: EventCode,
    data: &[u8],
) -> bool {
    let start = out.len();
    start_line(out, at, code, data.len());
    if !crate::write_json_string_if_utf8(out, data) {
        out.truncate(start);
        return false;
    }
    out.extend_from_slice(b"]\n");
    true
}

/// Writes an event line up to its data: `[1.500000,"o",`, with room reserved for `data_len`
/// bytes of data.
fn start_line(out: &mut Vec<u8>, at: Duration, code: EventCode, data_len: usize) {
    out.reserve(data_len + 40);
    out.push(b'[');
    write_time(out, at);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(code.as_str().as_bytes());
    out.extend_from_slice(b"\",");
}

/// Writes `at` as seconds with six decimals, `12.000345`.
fn write_time(out: &mut Vec<u8>, at: Duration) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}.{:06}", at.as_secs(), at.subsec_micros());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(at: Duration, code: EventCode, data: &str) -> String {
        let mut out = Vec::new();
        write_event_line(&mut out, at, code, data);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn output_line() {
        assert_eq!(
            line(
                Duration::from_micros(1_500_250),
                EventCode::Output,
                "hi\r\n"
            ),
            "[1.500250,\"o\",\"hi\\r\\n\"]\n"
        );
    }

    #[test]
    fn resize_and_zero_time() {
        assert_eq!(
            line(Duration::ZERO, EventCode::Resize, "80x24"),
            "[0.000000,\"r\",\"80x24\"]\n"
        );
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(
            line(Duration::ZERO, EventCode::Input, "\u{1b}[A\u{0}\"\\"),
            "[0.000000,\"i\",\"\\u001b[A\\u0000\\\"\\\\\"]\n"
        );
    }

    #[test]
    fn the_lenient_reader_reads_what_is_written() {
        let written = line(
            Duration::from_micros(2_000_001),
            EventCode::Marker,
            "exit 3",
        );
        let read = crate::CastEvent::parse(written.trim_end().as_bytes()).expect("event");
        assert_eq!(read.code, "m");
        assert_eq!(read.time, 2.000001);
        assert_eq!(read.exit_code(), Some(3));
        assert_eq!(
            crate::parse_event_prefix(written.as_bytes()),
            Some((2.000001, "m"))
        );
    }

    proptest! {
        /// The checked line is the line of the text the bytes are, or nothing at all.
        #[test]
        fn a_checked_line_is_the_line_of_valid_bytes_and_nothing_else(
            bytes in proptest::collection::vec(
                prop_oneof![8 => 0x20u8..0x7f, 1 => 0u8..0x20, 1 => any::<u8>()],
                0..120,
            ),
            micros in 0u64..10_000_000_000,
        ) {
            let at = Duration::from_micros(micros);
            let mut out = b"[0.1,\"o\",\"a\"]\n".to_vec();
            let before = out.clone();
            let written = write_event_line_if_utf8(&mut out, at, EventCode::Output, &bytes);
            match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    prop_assert!(written);
                    let expected = [before, line(at, EventCode::Output, text).into_bytes()].concat();
                    prop_assert_eq!(out, expected);
                }
                Err(_) => {
                    prop_assert!(!written);
                    prop_assert_eq!(out, before);
                }
            }
        }

        #[test]
        fn any_text_round_trips_through_json(text in any::<String>(), micros in 0u64..10_000_000_000) {
            let at = Duration::from_micros(micros);
            let l = line(at, EventCode::Output, &text);
            prop_assert!(l.ends_with('\n'));
            let value: (f64, String, String) = serde_json::from_str(l.trim_end()).expect("valid JSON");
            prop_assert_eq!(value.2, text);
            prop_assert_eq!(value.1, "o");
            prop_assert!((value.0 - at.as_secs_f64()).abs() < 1e-6);
        }
    }
}
