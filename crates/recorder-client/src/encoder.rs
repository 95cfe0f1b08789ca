//! Turns what happens in a session into asciicast v2 lines. Pure: no I/O and no clock; every call
//! is given the time since the session started.

use std::time::Duration;

use castfmt::{write_event_line, write_event_line_if_utf8, CastHeader, EventCode};

use sessiontap::{ExitStatus, OutputStream};

use crate::utf8::Utf8Carry;

mod file_copy;
mod tar_listing;

use file_copy::{ArchiveStream, FileCopyListing};

pub use echo::{EchoDecision, EchoTracker};

mod echo;

/// The label of the marker event that stands for typed bytes a tty session's terminal did not
/// echo: `input redacted: 8 bytes not echoed`.
pub(crate) fn redacted_label(count: usize) -> String {
    let unit = if count == 1 { "byte" } else { "bytes" };
    format!("input redacted: {count} {unit} not echoed")
}

/// The label of the marker event the encoder writes for an exit status: `exit 0` (for
/// [`ExitStatus::Success`] and for [`ExitStatus::Code`]`(0)` alike), `exit 3`,
/// `exit error: <message>`.
fn marker_label(status: &ExitStatus) -> String {
    match status {
        ExitStatus::Success => "exit 0".to_string(),
        ExitStatus::Code(code) => format!("exit {code}"),
        ExitStatus::Failure { message } => format!("exit error: {message}"),
    }
}

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TermSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

impl TermSize {
    /// Whether this is the `0x0` size kubectl sends when its terminal has no size: "unknown".
    pub fn is_unknown(self) -> bool {
        self.cols == 0 || self.rows == 0
    }
}

/// How a tty session's header gets its size.
///
/// The asciicast header of a tty session must carry the terminal's size, which only the client's
/// first resize message tells. The header therefore waits for that resize, but never stalls the
/// recording: output that arrives first is kept (up to [`pending_output_limit`](Self::pending_output_limit)
/// bytes of encoded lines) and written right after the header, and if no usable resize has arrived
/// by [`resize_deadline`](Self::resize_deadline) the header is written with
/// [`default_size`](Self::default_size). Resizes after the header become `r` events.
///
/// A `0x0` resize (kubectl under a terminal without a size) says the size is unknown: as the first
/// resize it makes the header use the default size at once; later it is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtyOptions {
    /// How long after the session start the header waits for the first resize. Default 2 s.
    pub resize_deadline: Duration,
    /// The size written when the real one is not known in time. Default 80x24. A `0x0` value here is
    /// replaced by 80x24: the header of a tty session never says `0x0`.
    pub default_size: TermSize,
    /// How many bytes of encoded lines may wait for the header; past this the header is written with
    /// the default size. Default 1 MiB.
    pub pending_output_limit: usize,
}

impl Default for TtyOptions {
    fn default() -> Self {
        TtyOptions {
            resize_deadline: Duration::from_secs(2),
            default_size: FALLBACK_SIZE,
            pending_output_limit: 1 << 20,
        }
    }
}

const FALLBACK_SIZE: TermSize = TermSize { cols: 80, rows: 24 };

/// What the encoder records and how it writes the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncoderOptions {
    /// Whether the session has a terminal (`tty=true`). Without one the header is written at
    /// [`CastEncoder::start`] with the width and height it was given (Tailscale's proxy writes 0 and 0).
    pub tty: bool,
    /// Whether stdin is recorded as `i` events. Off by default: typed input may hold secrets, and
    /// in a tty session the terminal's echo is in the output anyway.
    ///
    /// Without a tty every stdin byte is recorded. With a tty only what the terminal echoes is
    /// (an [`EchoTracker`] decides): typed bytes wait for their echo, and bytes that are not echoed
    /// (a password at a no-echo prompt) are left out, an `m` marker event
    /// `input redacted: <n> bytes not echoed` in their place.
    pub record_input: bool,
    /// How a tty session's header gets its size.
    pub tty_options: TtyOptions,
}

/// Encodes one session as asciicast v2: the header line, then one line per event.
///
/// Every method appends complete lines to the `out` buffer it is given (nothing when there is nothing
/// to write yet). Times are durations since the session started; they are made non-decreasing, as
/// asciicast requires, by holding a time that goes backwards at the latest time seen.
///
/// ```
/// use std::time::Duration;
/// use recorder_client::{CastEncoder, CastHeader, EncoderOptions, OutputStream};
///
/// let header: CastHeader = serde_json::from_str(r#"{"version":2,"width":0,"height":0,
///     "timestamp":1700000000,"srcNode":"laptop","srcNodeID":"n1"}"#).unwrap();
/// let mut encoder = CastEncoder::new(header, EncoderOptions { tty: true, ..Default::default() });
/// let mut out = Vec::new();
/// encoder.start(&mut out);
/// assert!(out.is_empty(), "a tty header waits for the first resize");
/// encoder.output(Duration::from_millis(5), OutputStream::Stdout, b"$ \xE2\x82", &mut out);
/// encoder.resize(Duration::from_millis(7), 120, 40, &mut out);
/// encoder.output(Duration::from_millis(9), OutputStream::Stdout, b"\xAC", &mut out);
/// encoder.finish(Duration::from_millis(10), &mut out);
/// let text = String::from_utf8(out).unwrap();
/// let lines: Vec<&str> = text.lines().collect();
/// assert!(lines[0].starts_with(r#"{"version":2,"width":120,"height":40,"#));
/// assert_eq!(lines[1], r#"[0.005000,"o","$ "]"#);
/// assert_eq!(lines[2], r#"[0.009000,"o","€"]"#);
/// ```
#[derive(Debug)]
pub struct CastEncoder {
    header: CastHeader,
    options: EncoderOptions,
    /// Encoded lines waiting for the header; `None` once the header is written.
    pending: Option<Vec<u8>>,
    stdout: Utf8Carry,
    stderr: Utf8Carry,
    stdin: Utf8Carry,
    /// The echo tracker of a tty session whose input is recorded.
    echo: Option<EchoTracker>,
    last_time: Duration,
    text: String,
    /// For a `kubectl cp` session (a header with `fileCopy`): the archive's listing.
    file_copy: Option<FileCopyListing>,
}

impl CastEncoder {
    /// An encoder for a session with this header (its `width` and `height` are replaced for tty
    /// sessions).
    pub fn new(header: CastHeader, mut options: EncoderOptions) -> Self {
        if options.tty_options.default_size.is_unknown() {
            options.tty_options.default_size = FALLBACK_SIZE;
        }
        CastEncoder {
            options,
            pending: Some(Vec::new()),
            stdout: Utf8Carry::new(),
            stderr: Utf8Carry::new(),
            stdin: Utf8Carry::new(),
            echo: (options.tty && options.record_input).then(EchoTracker::new),
            last_time: Duration::ZERO,
            text: String::new(),
            file_copy: FileCopyListing::for_header(&header),
            header,
        }
    }

    /// Starts the recording: writes the header at once unless the session has a tty (then it waits
    /// for the first resize or [`header_deadline`](Self::header_deadline)). Without a tty the first
    /// event also writes the header, so calling this is only needed to write it before any event.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if !self.options.tty {
            self.write_header(out);
        }
    }

    /// The header as written, or as it will be written when it is still waiting.
    pub fn header(&self) -> &CastHeader {
        &self.header
    }

    /// Whether the header has been written.
    pub fn header_written(&self) -> bool {
        self.pending.is_none()
    }

    /// When (since the session start) the header stops waiting for a resize, while it waits; the
    /// caller calls [`deadline_passed`](Self::deadline_passed) then, if no event came first.
    pub fn header_deadline(&self) -> Option<Duration> {
        (self.pending.is_some() && self.options.tty)
            .then_some(self.options.tty_options.resize_deadline)
    }

    /// Time passed: writes a waiting tty header with the default size once its deadline is reached.
    pub fn deadline_passed(&mut self, now: Duration, out: &mut Vec<u8>) {
        if let Some(deadline) = self.header_deadline() {
            if now >= deadline {
                self.write_default_header(out);
            }
        }
    }

    /// Output on stdout or stderr: an `o` event with the bytes decoded as UTF-8 (an incomplete
    /// character at the end waits for the next output on the same stream). Both streams are
    /// recorded as `o` events; each has its own UTF-8 carry, so interleaved streams never corrupt
    /// each other's characters.
    ///
    /// In a tty session whose input is recorded, typed bytes this output echoes (or shows not
    /// echoed) are written first, as `i` events (or redaction markers).
    ///
    /// In a `kubectl cp` session from the pod, stdout is the archive: it is recorded as a listing
    /// (see [`CastHeader::file_copy`]).
    pub fn output(&mut self, at: Duration, stream: OutputStream, bytes: &[u8], out: &mut Vec<u8>) {
        if stream == OutputStream::Stdout
            && self.archive_bytes(at, ArchiveStream::Stdout, bytes, out)
        {
            return;
        }
        if stream == OutputStream::Stdout {
            if let Some(echo) = &mut self.echo {
                let decisions = echo.output(bytes);
                self.write_decisions(decisions, out);
            }
        }
        let at = self.tick(at, out);
        let carried = match stream {
            OutputStream::Stdout => !self.stdout.pending().is_empty(),
            OutputStream::Stderr => !self.stderr.pending().is_empty(),
        };
        // The common case, whole characters and nothing carried from the last output, is
        // written straight from the session's bytes (no copy into `text`, and for ASCII no pass
        // of its own to check them); the decoder is then in the state decoding these bytes would
        // leave it: nothing carried. An empty output writes no line either way.
        if !carried
            && (bytes.is_empty()
                || self.emit_line_if(out, |line| {
                    write_event_line_if_utf8(line, at, EventCode::Output, bytes)
                }))
        {
            return;
        }
        let decoder = match stream {
            OutputStream::Stdout => &mut self.stdout,
            OutputStream::Stderr => &mut self.stderr,
        };
        self.text.clear();
        decoder.decode(bytes, &mut self.text);
        self.emit_text(at, EventCode::Output, out);
    }

    /// Input on stdin: an `i` event when input is recorded, else nothing. In a tty session the
    /// bytes wait for their echo (see [`EncoderOptions::record_input`]).
    ///
    /// In a `kubectl cp` session to the pod, stdin is the archive: it is recorded as a listing
    /// whether or not input is recorded (see [`CastHeader::file_copy`]).
    pub fn input(&mut self, at: Duration, bytes: &[u8], out: &mut Vec<u8>) {
        if self.archive_bytes(at, ArchiveStream::Stdin, bytes, out) {
            return;
        }
        if let Some(copy) = self.file_copy.as_mut().filter(|_| !bytes.is_empty()) {
            let mut labels = Vec::new();
            copy.input_arrived(&mut labels);
            for label in labels {
                self.marker(at, &label, out);
            }
        }
        if !self.options.record_input {
            return;
        }
        if let Some(echo) = &mut self.echo {
            let decisions = echo.input(at, bytes);
            self.write_decisions(decisions, out);
            return;
        }
        self.write_input(at, bytes, out);
    }

    fn write_input(&mut self, at: Duration, bytes: &[u8], out: &mut Vec<u8>) {
        let at = self.tick(at, out);
        self.text.clear();
        self.stdin.decode(bytes, &mut self.text);
        self.emit_text(at, EventCode::Input, out);
    }

    /// Writes what the echo tracker decided: echoed bytes as `i` events, redacted ones as markers.
    fn write_decisions(&mut self, decisions: Vec<EchoDecision>, out: &mut Vec<u8>) {
        for decision in decisions {
            match decision {
                EchoDecision::Echoed { at, bytes } => self.write_input(at, &bytes, out),
                EchoDecision::Redacted { at, count } => {
                    self.marker(at, &redacted_label(count), out)
                }
            }
        }
    }

    /// Decides typed bytes still waiting for their echo: not echoed.
    fn end_echo(&mut self, out: &mut Vec<u8>) {
        if let Some(echo) = &mut self.echo {
            let decisions = echo.finish();
            self.write_decisions(decisions, out);
        }
    }

    /// The client's terminal was resized. The first resize of a tty session sets the header's size;
    /// later ones are `r` events (`0x0` ones are left out). Resizes of sessions without a tty are
    /// recorded as `r` events when they are not `0x0`.
    pub fn resize(&mut self, at: Duration, cols: u16, rows: u16, out: &mut Vec<u8>) {
        let at = self.tick(at, out);
        let size = TermSize { cols, rows };
        if self.pending.is_some() && self.options.tty {
            if size.is_unknown() {
                self.write_default_header(out);
            } else {
                self.header.width = cols;
                self.header.height = rows;
                self.write_header(out);
            }
            return;
        }
        if size.is_unknown() {
            return;
        }
        self.emit_line(out, |line| {
            write_event_line(line, at, EventCode::Resize, &format!("{cols}x{rows}"))
        });
    }

    /// The command ended: an `m` (marker) event labelled `exit 0` ([`ExitStatus::Success`] is
    /// recorded as exit code 0), `exit <code>` or `exit error: <message>`.
    ///
    /// Typed bytes of a tty session still waiting for their echo are decided not echoed first.
    pub fn exit(&mut self, at: Duration, status: &ExitStatus, out: &mut Vec<u8>) {
        self.end_echo(out);
        let at = self.tick(at, out);
        let label = marker_label(status);
        self.emit_line(out, |line| {
            write_event_line(line, at, EventCode::Marker, &label)
        });
    }

    /// A note about the session that is not the command's output, such as why the proxy ended
    /// it: an `m` (marker) event with `label`.
    pub fn marker(&mut self, at: Duration, label: &str, out: &mut Vec<u8>) {
        let at = self.tick(at, out);
        self.emit_line(out, |line| {
            write_event_line(line, at, EventCode::Marker, label)
        });
    }

    /// Ends the recording: typed bytes of a tty session still waiting for their echo are redacted,
    /// incomplete characters still carried become U+FFFD `o`/`i` events, and a header still waiting
    /// is written with the default size (then the output that waited for it).
    pub fn finish(&mut self, at: Duration, out: &mut Vec<u8>) {
        self.finish_archive(at, out);
        self.end_echo(out);
        let at = self.tick(at, out);
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            self.text.clear();
            match stream {
                OutputStream::Stdout => self.stdout.finish(&mut self.text),
                OutputStream::Stderr => self.stderr.finish(&mut self.text),
            }
            self.emit_text(at, EventCode::Output, out);
        }
        self.text.clear();
        self.stdin.finish(&mut self.text);
        if self.options.record_input {
            self.emit_text(at, EventCode::Input, out);
        }
        if self.pending.is_some() {
            self.write_default_header(out);
        }
    }

    /// Bytes of a stream that carries a file copy's archive: listed as markers, and what is not
    /// archive recorded as that stream is in any session. False when `stream` carries no archive.
    fn archive_bytes(
        &mut self,
        at: Duration,
        stream: ArchiveStream,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(copy) = self.file_copy.as_mut().filter(|c| c.stream() == stream) else {
            return false;
        };
        let mut labels = Vec::new();
        let mut not_archive = Vec::new();
        copy.feed(bytes, &mut labels, &mut not_archive);
        for label in labels {
            self.marker(at, &label, out);
        }
        if not_archive.is_empty() {
            return true;
        }
        let at = self.tick(at, out);
        self.text.clear();
        let code = match stream {
            ArchiveStream::Stdout => {
                self.stdout.decode(&not_archive, &mut self.text);
                EventCode::Output
            }
            ArchiveStream::Stdin if self.options.record_input => {
                self.stdin.decode(&not_archive, &mut self.text);
                EventCode::Input
            }
            ArchiveStream::Stdin => return true,
        };
        self.emit_text(at, code, out);
        true
    }

    /// The end of a file copy session: a marker when its archive was incomplete or not listed.
    fn finish_archive(&mut self, at: Duration, out: &mut Vec<u8>) {
        let mut labels = Vec::new();
        if let Some(copy) = &mut self.file_copy {
            copy.finish(&mut labels);
        }
        for label in labels {
            self.marker(at, &label, out);
        }
    }

    /// Makes `at` non-decreasing, writes a non-tty header not yet written and applies the tty
    /// header deadline.
    fn tick(&mut self, at: Duration, out: &mut Vec<u8>) -> Duration {
        let at = at.max(self.last_time);
        self.last_time = at;
        if self.options.tty {
            self.deadline_passed(at, out);
        } else {
            self.write_header(out);
        }
        at
    }

    fn emit_text(&mut self, at: Duration, code: EventCode, out: &mut Vec<u8>) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        self.emit_str(at, code, &text, out);
        self.text = text;
    }

    /// Writes an event line with `text`, unless it is empty.
    fn emit_str(&mut self, at: Duration, code: EventCode, text: &str, out: &mut Vec<u8>) {
        if !text.is_empty() {
            self.emit_line(out, |line| write_event_line(line, at, code, text));
        }
    }

    /// Writes a line to `out`, or keeps it while the header waits.
    fn emit_line(&mut self, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
        self.emit_line_if(out, |line| {
            write(line);
            true
        });
    }

    /// Like [`emit_line`](Self::emit_line) for a write that may decline (and then writes
    /// nothing): returns whether it wrote.
    fn emit_line_if(
        &mut self,
        out: &mut Vec<u8>,
        write: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> bool {
        match &mut self.pending {
            None => write(out),
            Some(pending) => {
                let wrote = write(pending);
                if pending.len() > self.options.tty_options.pending_output_limit {
                    self.write_default_header(out);
                }
                wrote
            }
        }
    }

    fn write_default_header(&mut self, out: &mut Vec<u8>) {
        let size = self.options.tty_options.default_size;
        self.header.width = size.cols;
        self.header.height = size.rows;
        self.write_header(out);
    }

    fn write_header(&mut self, out: &mut Vec<u8>) {
        if let Some(pending) = self.pending.take() {
            self.header.write_json_line(out);
            out.extend_from_slice(&pending);
        }
    }
}

#[cfg(test)]
mod tests;
