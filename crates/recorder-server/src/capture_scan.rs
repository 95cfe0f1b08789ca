//! Learns a port-forward capture's metadata (castfmt's `kap-port-forward/1`) from its bytes as
//! they stream in, in bounded memory: the header (which session, connection, pod, who, when),
//! the number of events, the time of the last one, the bytes each way (base64 decoded), and the
//! first thing a strict reader would object to. Bytes may be split anywhere between calls. A line
//! longer than [`MAX_CAPTURE_LINE`] is stored but not read (and flagged).

use castfmt::{CaptureDirection, CaptureEvent, LenientCaptureHeader};

/// The longest capture line read: a writer's events carry at most 48 KiB (64 KiB of base64).
pub const MAX_CAPTURE_LINE: usize = 1024 * 1024;

/// What a scan found; see [`CaptureScanner`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CaptureSummary {
    /// The header, when the first line was a JSON object.
    pub(crate) header: Option<LenientCaptureHeader>,
    /// The first problem found, with its line number.
    pub(crate) malformed: Option<String>,
    /// Event lines seen.
    pub(crate) events: u64,
    /// The largest event time seen.
    pub(crate) duration: Option<f64>,
    /// Bytes fed (the stored file).
    pub(crate) bytes: u64,
    /// Data bytes from the client to the pod (`c` events).
    pub(crate) bytes_from_client: u64,
    /// Data bytes from the pod to the client (`s` events).
    pub(crate) bytes_to_client: u64,
}

/// An incremental reader of capture bytes; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct CaptureScanner {
    summary: CaptureSummary,
    line: Vec<u8>,
    line_len: usize,
    lines: u64,
}

impl CaptureScanner {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Reads more bytes. Returns true when this call completed the header line.
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

    /// Ends the input: reads a last line without a newline, and flags an empty capture.
    pub(crate) fn finish(mut self) -> CaptureSummary {
        if self.line_len > 0 {
            self.end_line();
        }
        if self.lines == 0 {
            self.flag("capture is empty".to_owned());
        }
        self.summary
    }

    /// What is known so far.
    pub(crate) fn summary(&self) -> &CaptureSummary {
        &self.summary
    }

    fn keep(&mut self, part: &[u8]) {
        let room = MAX_CAPTURE_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.line_len = self.line_len.saturating_add(part.len());
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        let whole = line.len() == self.line_len;
        self.line_len = 0;
        self.lines += 1;
        if !whole {
            self.flag(format!(
                "line {}: longer than {MAX_CAPTURE_LINE} bytes",
                self.lines
            ));
        } else if self.lines == 1 {
            self.read_header(&line);
        } else {
            self.read_event(&line);
        }
        line.clear();
        if line.capacity() > 128 * 1024 {
            line.shrink_to(128 * 1024);
        }
        self.line = line;
    }

    fn read_header(&mut self, line: &[u8]) {
        match LenientCaptureHeader::parse(line) {
            Ok(header) => {
                if let Some(problem) = header.problem() {
                    self.flag(format!("line 1: {problem}"));
                }
                self.summary.header = Some(header);
            }
            Err(error) => self.flag(format!("line 1: {error}")),
        }
    }

    fn read_event(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let event = match CaptureEvent::parse(line) {
            Ok(event) => event,
            Err(error) => {
                self.flag(format!("line {}: {error}", self.lines));
                return;
            }
        };
        self.summary.events += 1;
        self.summary.duration = Some(
            self.summary
                .duration
                .map_or(event.time, |d| d.max(event.time)),
        );
        let Some(direction) = event.direction() else {
            return;
        };
        match event.bytes() {
            Ok(bytes) => {
                let n = bytes.len() as u64;
                match direction {
                    CaptureDirection::ClientToPod => self.summary.bytes_from_client += n,
                    CaptureDirection::PodToClient => self.summary.bytes_to_client += n,
                }
            }
            Err(error) => self.flag(format!("line {}: {error}", self.lines)),
        }
    }

    fn flag(&mut self, problem: String) {
        self.summary.malformed.get_or_insert(problem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CAPTURE: &str = concat!(
        r#"{"version":"kap-port-forward/1","id":"s1","timestamp":1700000000,"transport":"spdy","connection":{"requestId":"2","port":8080},"kubernetes":{"PodName":"db","Namespace":"prod"},"srcNode":"n","srcNodeID":"nID","srcNodeUserID":1,"srcNodeUser":"alice@example.com"}"#,
        "\n",
        r#"[0.1,"c","aGVsbG8="]"#,
        "\n",
        r#"[0.2,"s","AP8="]"#,
        "\n",
        r#"[0.25,"m","note"]"#,
        "\n",
        r#"[0.3,"s","aGk"]"#,
        "\n",
    );

    fn scan(chunks: &[&[u8]]) -> CaptureSummary {
        let mut scanner = CaptureScanner::new();
        for chunk in chunks {
            scanner.feed(chunk);
        }
        scanner.finish()
    }

    #[test]
    fn counts_the_bytes_each_way() {
        let summary = scan(&[CAPTURE.as_bytes()]);
        let header = summary.header.as_ref().expect("header");
        assert_eq!(header.port, Some(8080));
        assert_eq!(header.request_id.as_deref(), Some("2"));
        assert_eq!(header.id.as_deref(), Some("s1"));
        assert_eq!(summary.events, 4);
        assert_eq!(summary.duration, Some(0.3));
        assert_eq!(summary.bytes_from_client, 5);
        assert_eq!(summary.bytes_to_client, 4);
        assert_eq!(summary.bytes, CAPTURE.len() as u64);
        assert_eq!(summary.malformed, None);
    }

    #[test]
    fn flags_the_first_problem_and_goes_on() {
        let summary = scan(&[b"{\"version\":\"2\"}\n[1,\"c\",\"!!\"]\n[2,\"s\",\"aGk=\"]\nnope\n"]);
        assert_eq!(
            summary.malformed.as_deref(),
            Some("line 1: version \"2\" is not kap-port-forward/1")
        );
        assert_eq!(summary.bytes_to_client, 2);
        assert_eq!(summary.events, 2);
        assert_eq!(scan(&[b""]).malformed.as_deref(), Some("capture is empty"));
        let cut = scan(&[b"{\"version\":\"kap-port-forward/1\"}\n[1,\"c\",\"!!\"]\n"]);
        assert_eq!(
            cut.malformed.as_deref(),
            Some("line 2: event data is not base64: Invalid symbol 33, offset 0.")
        );
    }

    #[test]
    fn bounds_the_lines() {
        let mut scanner = CaptureScanner::new();
        scanner.feed(b"{\"version\":\"kap-port-forward/1\"}\n");
        let long = format!("[1,\"c\",\"{}\"]\n", "A".repeat(MAX_CAPTURE_LINE));
        scanner.feed(long.as_bytes());
        assert!(scanner.line.capacity() <= MAX_CAPTURE_LINE + 64);
        scanner.feed(b"[2,\"s\",\"aGk=\"]\n");
        let summary = scanner.finish();
        assert_eq!(
            summary.malformed.as_deref(),
            Some("line 2: longer than 1048576 bytes")
        );
        assert_eq!(summary.bytes_to_client, 2);
        assert_eq!(summary.bytes_from_client, 0);
    }

    proptest! {
        #[test]
        fn any_split_reads_the_same(cuts in proptest::collection::vec(0..CAPTURE.len(), 0..8)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let bytes = CAPTURE.as_bytes();
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
