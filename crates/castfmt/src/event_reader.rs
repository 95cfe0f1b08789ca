//! Event lines of an asciicast v2 recording, read leniently: `[time, code, data]`.
//!
//! Codes (<https://docs.asciinema.org/manual/asciicast/v2/>): `o` output, `i` input, `r` resize
//! (`"COLSxROWS"`), `m` marker. The exit status of a session has no event of its own in v2; this
//! crate reads it from a marker `[t, "m", "exit 3"]` (also `exit: 3`, `exit code 3`,
//! `exit status 3`) or from asciicast v3's exit event `[t, "x", "3"]`, whichever a client writes.
//! Any code is accepted and a non-string data value is kept as its JSON text: a recorder stores
//! what arrives.

use serde_json::Value;

/// One event of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct CastEvent {
    /// Seconds since the start of the session.
    pub time: f64,
    /// Event code: `o`, `i`, `r`, `m` (or anything else a writer chose).
    pub code: String,
    /// Event data; a non-string data value is kept as its JSON text.
    pub data: String,
}

/// Why a line is not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an asciicast event: {0}")]
pub struct EventLineError(String);

impl CastEvent {
    /// Reads one event line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Self, EventLineError> {
        let (time, code, data): (f64, String, Value) =
            serde_json::from_slice(line).map_err(|e| EventLineError(e.to_string()))?;
        let data = match data {
            Value::String(text) => text,
            other => other.to_string(),
        };
        Ok(Self { time, code, data })
    }

    /// The session's exit status, when this event records one.
    pub fn exit_code(&self) -> Option<i32> {
        match self.code.as_str() {
            "x" => self.data.trim().parse().ok(),
            "m" => exit_marker(&self.data),
            _ => None,
        }
    }

    /// Columns and rows of a resize event.
    pub fn resize(&self) -> Option<(u32, u32)> {
        if self.code != "r" {
            return None;
        }
        let (cols, rows) = self.data.split_once('x')?;
        Some((cols.trim().parse().ok()?, rows.trim().parse().ok()?))
    }
}

/// Reads `exit 3`, `exit: 3`, `exit code 3`, `exit status=3` (any letter case).
fn exit_marker(data: &str) -> Option<i32> {
    let separators: &[char] = &[' ', ':', '='];
    let lower = data.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix("exit")?.trim_start_matches(separators);
    let rest = rest
        .strip_prefix("code")
        .or_else(|| rest.strip_prefix("status"))
        .unwrap_or(rest)
        .trim_start_matches(separators);
    rest.trim_end().parse().ok()
}

/// Reads the time and code from the start of an event line, which may be cut short: long output
/// events are not held whole while a recording streams in. Accepts `[<number>, "<code>"` with any
/// JSON whitespace; a code with escapes is not read.
pub fn parse_event_prefix(prefix: &[u8]) -> Option<(f64, &str)> {
    let rest = trim_start(prefix).strip_prefix(b"[")?;
    let rest = trim_start(rest);
    let number_len = rest
        .iter()
        .take_while(|c| matches!(c, b'0'..=b'9' | b'.' | b'-' | b'+' | b'e' | b'E'))
        .count();
    let time: f64 = std::str::from_utf8(&rest[..number_len])
        .ok()?
        .parse()
        .ok()?;
    if !time.is_finite() {
        return None;
    }
    let rest = trim_start(&rest[number_len..]).strip_prefix(b",")?;
    let rest = trim_start(rest).strip_prefix(b"\"")?;
    let code_len = rest.iter().position(|&c| c == b'"')?;
    let code = std::str::from_utf8(&rest[..code_len]).ok()?;
    if code.contains('\\') {
        return None;
    }
    Some((time, code))
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    &bytes[skip..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events() {
        let event = CastEvent::parse(br#"[1.5, "o", "h\u00e9llo\r\n"]"#).expect("event");
        assert_eq!(
            event,
            CastEvent {
                time: 1.5,
                code: "o".into(),
                data: "h\u{e9}llo\r\n".into()
            }
        );
        let resize = CastEvent::parse(br#"[2, "r", "120x40"]"#).expect("event");
        assert_eq!(resize.resize(), Some((120, 40)));
        assert!(CastEvent::parse(br#"{"version":2}"#).is_err());
        assert!(CastEvent::parse(br#"[1, "o"]"#).is_err());
    }

    #[test]
    fn reads_exit_codes() {
        for (code, data, want) in [
            ("m", "exit 3", Some(3)),
            ("m", "Exit: 0", Some(0)),
            ("m", "exit code 127", Some(127)),
            ("m", "exit status=-1", Some(-1)),
            ("m", "checkpoint", None),
            ("x", "2", Some(2)),
            ("o", "exit 3", None),
        ] {
            let event = CastEvent {
                time: 0.0,
                code: code.into(),
                data: data.into(),
            };
            assert_eq!(event.exit_code(), want, "{code} {data}");
        }
    }

    #[test]
    fn reads_prefixes_of_cut_lines() {
        assert_eq!(
            parse_event_prefix(br#"[0.25, "o", "lots of outp"#),
            Some((0.25, "o"))
        );
        assert_eq!(parse_event_prefix(br#" [ 1e2 ,"r""#), Some((100.0, "r")));
        assert_eq!(parse_event_prefix(br#"[1, "o"#), None);
        assert_eq!(parse_event_prefix(br#"{"version": 2}"#), None);
        assert_eq!(parse_event_prefix(br#"["1", "o", ""]"#), None);
        assert_eq!(parse_event_prefix(b"[NaN, \"o\""), None);
    }
}
