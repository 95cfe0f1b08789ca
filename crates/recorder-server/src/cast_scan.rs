//! Learns a recording's metadata from its bytes as they stream in, in bounded memory.
//!
//! The recorder stores a cast exactly as received and, on the side, reads enough of it to index
//! it: the header (who, which pod, when), the time of the last event (the duration), the number of
//! events, an exit status marker, the files a `kubectl cp` session copied (its header's
//! `fileCopy`, and one `file: <path> (<size> bytes)` marker per file, at most
//! [`MAX_LISTED_FILES`] of them), and the first thing a strict reader would object to. Bytes may be
//! split anywhere between calls. Memory is bounded: the header line must fit in
//! [`MAX_HEADER_LINE`] bytes, and of an event line only the first [`EVENT_PREFIX`] bytes are kept
//! (enough for `[time, "code", ` and for any marker); longer lines are counted but not held.

use castfmt::{parse_event_prefix, CastEvent, CopiedFile, LenientHeader};

/// The longest header line read; a longer first line is stored but flagged.
pub const MAX_HEADER_LINE: usize = 64 * 1024;

/// The most files of a file copy an index entry lists; the others are only counted.
pub const MAX_LISTED_FILES: usize = 10_000;

/// How much of each event line is kept for reading its time, code and (for markers) data.
pub(crate) const EVENT_PREFIX: usize = 4096;

/// What a scan found; see [`CastScanner`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CastSummary {
    /// The header, when the first line was a JSON object.
    pub(crate) header: Option<LenientHeader>,
    /// The first problem found, with its line number.
    pub(crate) malformed: Option<String>,
    /// Event lines seen.
    pub(crate) events: u64,
    /// The largest event time seen: the session's duration.
    pub(crate) duration: Option<f64>,
    /// The exit status from the last exit marker.
    pub(crate) exit_code: Option<i32>,
    /// Bytes fed.
    pub(crate) bytes: u64,
    /// The files of a file copy (a header with `fileCopy`), from its file markers, in order.
    pub(crate) copied_files: Vec<CopiedFile>,
    /// File markers of a file copy that are not in `copied_files`: past [`MAX_LISTED_FILES`], or
    /// too long to hold (over [`EVENT_PREFIX`] bytes).
    pub(crate) copied_files_omitted: u64,
}

/// An incremental reader of asciicast v2 bytes; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct CastScanner {
    summary: CastSummary,
    /// The kept part of the line being read.
    line: Vec<u8>,
    /// The full length of the line being read.
    line_len: usize,
    /// Lines completed so far.
    lines: u64,
}

impl CastScanner {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Reads more bytes. Returns true when this call completed the header line (whether or not it
    /// could be parsed), so a caller can publish who and what the recording is about early.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> bool {
        self.summary.bytes += data.len() as u64;
        let mut header_completed = false;
        while let Some(newline) = memchr::memchr(b'\n', data) {
            self.keep(&data[..newline]);
            header_completed |= self.lines == 0;
            self.end_line();
            data = &data[newline + 1..];
        }
        self.keep(data);
        header_completed
    }

    /// Ends the input: reads a last line without a newline, and flags an empty recording.
    pub(crate) fn finish(mut self) -> CastSummary {
        if self.line_len > 0 {
            self.end_line();
        }
        if self.lines == 0 {
            self.flag("recording is empty".to_owned());
        }
        self.summary
    }

    /// What is known so far.
    pub(crate) fn summary(&self) -> &CastSummary {
        &self.summary
    }

    fn keep(&mut self, part: &[u8]) {
        let cap = if self.lines == 0 {
            MAX_HEADER_LINE
        } else {
            EVENT_PREFIX
        };
        let room = cap.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.line_len = self.line_len.saturating_add(part.len());
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let whole = line.len() == self.line_len;
        self.line_len = 0;
        self.lines += 1;
        if self.lines == 1 {
            self.read_header(&line, whole);
        } else {
            self.read_event(&line, whole);
        }
        self.line = line;
        self.line.clear();
    }

    fn read_header(&mut self, line: &[u8], whole: bool) {
        if !whole {
            self.flag(format!(
                "line 1: header is longer than {MAX_HEADER_LINE} bytes"
            ));
            return;
        }
        match LenientHeader::parse(line) {
            Ok(header) => {
                if let Some(problem) = header.problem() {
                    self.flag(format!("line 1: {problem}"));
                }
                self.summary.header = Some(header);
            }
            Err(error) => self.flag(format!("line 1: {error}")),
        }
    }

    fn read_event(&mut self, line: &[u8], whole: bool) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Some((time, code)) = parse_event_prefix(line) else {
            self.flag(format!("line {}: not an asciicast event", self.lines));
            return;
        };
        self.summary.events += 1;
        self.summary.duration = Some(self.summary.duration.map_or(time, |d| d.max(time)));
        if whole && matches!(code, "m" | "x") {
            let Ok(event) = CastEvent::parse(line) else {
                return;
            };
            if let Some(code) = event.exit_code() {
                self.summary.exit_code = Some(code);
            } else if code == "m" && self.is_file_copy() {
                if let Some(file) = CopiedFile::from_marker(&event.data) {
                    self.list_file(file);
                }
            }
        } else if !whole && code == "m" && self.is_file_copy() && is_cut_file_marker(line) {
            self.summary.copied_files_omitted += 1;
        }
    }

    fn is_file_copy(&self) -> bool {
        self.summary
            .header
            .as_ref()
            .is_some_and(|h| h.file_copy.is_some())
    }

    fn list_file(&mut self, file: CopiedFile) {
        if self.summary.copied_files.len() < MAX_LISTED_FILES {
            self.summary.copied_files.push(file);
        } else {
            self.summary.copied_files_omitted += 1;
        }
    }

    fn flag(&mut self, problem: String) {
        self.summary.malformed.get_or_insert(problem);
    }
}

/// Whether the kept start of a marker line too long to hold is a file marker's.
fn is_cut_file_marker(prefix: &[u8]) -> bool {
    let Some(code_at) = prefix.windows(3).position(|w| w == b"\"m\"") else {
        return false;
    };
    let rest = prefix[code_at + 3..].trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b",") else {
        return false;
    };
    rest.trim_ascii_start()
        .strip_prefix(b"\"")
        .is_some_and(|data| data.starts_with(CopiedFile::MARKER_PREFIX.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CAST: &str = concat!(
        r#"{"version":2,"width":80,"height":24,"timestamp":1714564984,"srcNodeUser":"alice@example.com","kubernetes":{"PodName":"demo","Namespace":"default","Container":"c","SessionType":"exec"}}"#,
        "\n",
        r#"[0.1,"o","hello\r\n"]"#,
        "\n",
        r#"[0.5,"r","100x30"]"#,
        "\n",
        r#"[1.25,"o","bye"]"#,
        "\n",
        r#"[1.3,"m","exit 3"]"#,
        "\n",
    );

    fn scan(chunks: &[&[u8]]) -> CastSummary {
        let mut scanner = CastScanner::new();
        for chunk in chunks {
            scanner.feed(chunk);
        }
        scanner.finish()
    }

    #[test]
    fn learns_the_index_fields() {
        let summary = scan(&[CAST.as_bytes()]);
        let header = summary.header.as_ref().expect("header");
        assert_eq!(header.pod.as_deref(), Some("demo"));
        assert_eq!(summary.events, 4);
        assert_eq!(summary.duration, Some(1.3));
        assert_eq!(summary.exit_code, Some(3));
        assert_eq!(summary.bytes, CAST.len() as u64);
        assert_eq!(summary.malformed, None);
    }

    #[test]
    fn reports_header_completion_once() {
        let mut scanner = CastScanner::new();
        let (head, rest) = CAST.as_bytes().split_at(30);
        assert!(!scanner.feed(head));
        assert!(scanner.feed(rest));
        assert!(!scanner.feed(b"[2,\"o\",\"x\"]\n"));
        assert_eq!(scanner.summary().events, 5);
    }

    #[test]
    fn keeps_a_last_line_without_newline() {
        let summary = scan(&[b"{\"version\":2}\n[0.5,\"o\",\"a\"]\n[2,\"o\",\"cut"]);
        assert_eq!(summary.events, 2);
        assert_eq!(summary.duration, Some(2.0));
    }

    #[test]
    fn flags_the_first_problem_and_goes_on() {
        let summary =
            scan(&[b"{\"version\":2}\n[0.5,\"o\",\"a\"]\nnonsense\n{}\n[3,\"o\",\"b\"]\n"]);
        assert_eq!(
            summary.malformed.as_deref(),
            Some("line 3: not an asciicast event")
        );
        assert_eq!(summary.events, 2);
        assert_eq!(summary.duration, Some(3.0));
        assert_eq!(
            scan(&[b""]).malformed.as_deref(),
            Some("recording is empty")
        );
        assert!(scan(&[b"not json\n"])
            .malformed
            .expect("flag")
            .starts_with("line 1: header is not JSON"));
    }

    #[test]
    fn bounds_the_header_and_event_lines() {
        let mut scanner = CastScanner::new();
        let big = vec![b' '; MAX_HEADER_LINE + 1];
        scanner.feed(&big);
        scanner.feed(b"{}\n");
        let long_event = format!("[7.5,\"o\",\"{}\"]\n", "x".repeat(EVENT_PREFIX * 4));
        scanner.feed(long_event.as_bytes());
        assert!(scanner.line.capacity() <= MAX_HEADER_LINE + 8);
        let summary = scanner.finish();
        assert_eq!(
            summary.malformed.as_deref(),
            Some("line 1: header is longer than 65536 bytes")
        );
        assert_eq!(summary.duration, Some(7.5));
    }

    const COPY: &str = concat!(
        r#"{"version":2,"width":0,"height":0,"timestamp":1,"command":"tar cf - x","kubernetes":{"PodName":"demo","SessionType":"exec"},"fileCopy":{"direction":"from-pod","paths":["x"]}}"#,
        "\n",
        r#"[0.1,"m","directory: x/"]"#,
        "\n",
        r#"[0.1,"m","file: x/a.bin (300000 bytes)"]"#,
        "\n",
        r#"[0.2,"o","tar: Removing leading `/' from member names\n"]"#,
        "\n",
        r#"[0.2,"m","file: x/b (c).txt (6 bytes)"]"#,
        "\n",
        r#"[0.3,"m","exit 0"]"#,
        "\n",
    );

    #[test]
    fn lists_the_files_of_a_file_copy() {
        let summary = scan(&[COPY.as_bytes()]);
        assert_eq!(
            summary.copied_files,
            vec![
                CopiedFile {
                    path: "x/a.bin".into(),
                    size: 300_000
                },
                CopiedFile {
                    path: "x/b (c).txt".into(),
                    size: 6
                },
            ]
        );
        assert_eq!(summary.copied_files_omitted, 0);
        assert_eq!(summary.exit_code, Some(0));
        // The same markers in a session that is not a file copy list nothing.
        let plain = COPY.replace(r#","fileCopy":{"direction":"from-pod","paths":["x"]}"#, "");
        assert!(scan(&[plain.as_bytes()]).copied_files.is_empty());
    }

    #[test]
    fn the_file_list_is_bounded() {
        let mut scanner = CastScanner::new();
        scanner.feed(COPY.lines().next().unwrap_or_default().as_bytes());
        scanner.feed(b"\n");
        for i in 0..MAX_LISTED_FILES + 5 {
            scanner.feed(format!("[1,\"m\",\"file: f{i} (1 bytes)\"]\n").as_bytes());
        }
        let long = format!(
            "[2,\"m\",\"file: {} (1 bytes)\"]\n",
            "n".repeat(EVENT_PREFIX)
        );
        scanner.feed(long.as_bytes());
        let summary = scanner.finish();
        assert_eq!(summary.copied_files.len(), MAX_LISTED_FILES);
        assert_eq!(summary.copied_files_omitted, 6);
        assert_eq!(summary.copied_files[0].path, "f0");
    }

    proptest! {
        #[test]
        fn any_split_reads_the_same(cuts in proptest::collection::vec(0..CAST.len(), 0..8)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let bytes = CAST.as_bytes();
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in cuts {
                chunks.push(&bytes[from..cut]);
                from = cut;
            }
            chunks.push(&bytes[from..]);
            prop_assert_eq!(scan(&chunks), scan(&[bytes]));
        }
    }
}
