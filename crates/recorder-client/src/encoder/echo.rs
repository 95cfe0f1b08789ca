//! Which bytes typed in a tty session the terminal echoed: those are recorded as input, the others
//! are not. Pure: no I/O and no clock.
//!
//! The rules are [`EchoTracker`]'s.

use std::collections::VecDeque;
use std::time::Duration;

/// What became of typed bytes, in the order they were typed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EchoDecision {
    /// These bytes were echoed: record them as input. `at` is when the first of them was typed.
    Echoed {
        /// When the first byte was typed.
        at: Duration,
        /// The bytes, as typed.
        bytes: Vec<u8>,
    },
    /// `count` bytes were not echoed: they must not be recorded. `at` is when the first of them
    /// was typed.
    Redacted {
        /// When the first byte was typed.
        at: Duration,
        /// How many bytes.
        count: usize,
    },
}

/// How the output scanner is placed in an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Scan {
    /// Text.
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// In a CSI sequence (`ESC [`), until its final byte.
    Csi,
    /// In a string sequence (`ESC ]`, `ESC P`, ...), until BEL or `ESC \`.
    Str,
    /// After ESC inside a string sequence.
    StrEscape,
}

/// An output token: a text byte, or a whole escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Byte(u8),
    Escape,
}

/// What a typed byte is, for its echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Echoed as itself; not echoed, it redacts its line.
    Printable,
    /// `\r` or `\n`: echoed as `\r*\n`; ends a redacted line.
    LineEnd,
    /// DEL or backspace.
    Erase,
    /// Tab: echoed as itself; not echoed (a shell's completion), it is redacted alone.
    Tab,
    /// Any other control byte: echoed as `^X`.
    Control,
}

fn kind(byte: u8) -> Kind {
    match byte {
        b'\r' | b'\n' => Kind::LineEnd,
        0x7f | 0x08 => Kind::Erase,
        b'\t' => Kind::Tab,
        0x00..=0x1f => Kind::Control,
        _ => Kind::Printable,
    }
}

/// The result of showing a token to the echo match of the held byte.
enum Step {
    /// The echo is complete.
    Done,
    /// The echo goes on; the new progress.
    More(u8),
    /// The token is not part of the echo (escape sequences between echoes are skipped).
    Skip,
    /// The output goes on with something else.
    Mismatch,
}

/// Matches the echo of `byte`, `progress` tokens of it seen so far, against `token`.
fn step(byte: u8, progress: u8, token: Token) -> Step {
    let caret = |c: u8| match (progress, c) {
        (0, b'^') => Step::More(1),
        (1, c) if c == (byte ^ 0x40) => Step::Done,
        _ => Step::Mismatch,
    };
    match (kind(byte), token) {
        // `\b` + an escape sequence (readline's `\b\x1b[K`) is a complete erase.
        (Kind::Erase, Token::Escape) if progress == 1 => Step::Done,
        (_, Token::Escape) => Step::Skip,
        (Kind::Printable | Kind::Tab, Token::Byte(c)) => {
            if c == byte {
                Step::Done
            } else {
                Step::Mismatch
            }
        }
        (Kind::LineEnd, Token::Byte(b'\r')) => Step::More(1),
        (Kind::LineEnd, Token::Byte(b'\n')) => Step::Done,
        (Kind::LineEnd, Token::Byte(_)) => Step::Mismatch,
        // `\b \b`: progress 1 after `\b`, 2 after the space; `^?` / `^H`: progress 10 after `^`.
        (Kind::Erase, Token::Byte(c)) => match (progress, c) {
            (0, 0x08) => Step::More(1),
            (1, b' ') => Step::More(2),
            (2, 0x08) => Step::Done,
            (0, b'^') => Step::More(10),
            (10, b'?' | b'H') => Step::Done,
            _ => Step::Mismatch,
        },
        (Kind::Control, Token::Byte(c)) => caret(c),
    }
}

/// Decides which typed bytes of a tty session were echoed.
///
/// The proxy cannot see the pod's terminal settings, so it infers them from the two streams: a
/// typed byte is held until the output shows its echo. The rules:
///
/// - the echo of a held byte must come **next** in the output (escape sequences in the output,
///   such as bracketed-paste switches and colours, are skipped); output is never searched, so a
///   byte is only recorded when the output at that point shows it;
/// - echo forms: a printable byte (and every byte of a UTF-8 character) is echoed as itself; `\r`
///   and `\n` as `\n` after any number of `\r` (`\r\n` under `onlcr`); tab as tab; DEL and
///   backspace as `\b \b`, `\b` and an escape sequence (`\b\x1b[K`), `^?` or `^H`; any other control
///   byte as `^X` (`echoctl`: `^C`, `^[` for escape, so an arrow key is `^[[A`). The echo may come
///   in any number of pieces;
/// - a held byte is **not echoed** when the output goes on with something else (including the end
///   of the session or of the command, and more than [`EchoTracker::HELD_LIMIT`] bytes held);
/// - a printable byte that is not echoed **redacts its line**: it and every byte typed
///   after it up to and including the next `\r` or `\n` are not recorded, whatever the output
///   shows (a password typed at a no-echo prompt is redacted whole, even when the output after
///   it happens to start with some of its characters). A control byte, tab or typed escape
///   sequence that is not echoed is redacted alone: a backspace on an empty line echoes nothing, a
///   shell answers tab with a completion.
///
/// Redacted bytes are only counted. The result errs on the side of not recording: typed-ahead
/// input that the output of a running command separates from its echo is redacted too.
///
/// Feed it the session's input ([`input`](Self::input)) and its stdout ([`output`](Self::output))
/// in the order they happened, and [`finish`](Self::finish) it at the end. Each call returns what it
/// decided, in typing order: [`EchoDecision::Echoed`] bytes may be recorded,
/// [`EchoDecision::Redacted`] ones must not be. A byte is decided once; the decisions of all calls
/// together cover every typed byte, in order.
///
/// ```
/// use std::time::Duration;
/// use recorder_client::{EchoDecision, EchoTracker};
///
/// let mut echo = EchoTracker::new();
/// let t = Duration::ZERO;
/// assert!(echo.input(t, b"ls\r").is_empty(), "held until the output shows the echo");
/// assert_eq!(echo.output(b"ls\r\nfile\r\n$ "), [EchoDecision::Echoed { at: t, bytes: b"ls\r".to_vec() }]);
/// // A no-echo prompt: what is typed never shows.
/// echo.input(t, b"hunter2\r");
/// assert_eq!(echo.output(b"\r\nok\r\n"), [EchoDecision::Redacted { at: t, count: 8 }]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct EchoTracker {
    /// Typed bytes not decided yet, with when each was typed.
    held: VecDeque<(Duration, u8)>,
    /// Progress of the echo of the first held byte.
    progress: u8,
    /// A printable byte was not echoed and no line end has been typed since: typed bytes are
    /// redacted through the next line end. Nothing is held meanwhile.
    tainted: bool,
    /// Redacted bytes not reported yet (reported once the redacted run ends).
    redacted: Option<(Duration, usize)>,
    /// The output scanner.
    scan: Scan,
}

impl EchoTracker {
    /// The most typed bytes held waiting for their echo; past this the oldest are decided not
    /// echoed.
    pub const HELD_LIMIT: usize = 4096;

    /// A tracker for a session that has just started.
    pub fn new() -> Self {
        EchoTracker {
            held: VecDeque::new(),
            progress: 0,
            tainted: false,
            redacted: None,
            scan: Scan::Ground,
        }
    }

    /// Bytes typed at `at`.
    pub fn input(&mut self, at: Duration, bytes: &[u8]) -> Vec<EchoDecision> {
        let mut decisions = Vec::new();
        let mut rest = bytes;
        if self.tainted {
            let end = rest
                .iter()
                .position(|&b| kind(b) == Kind::LineEnd)
                .map(|i| i + 1);
            let taken = end.unwrap_or(rest.len());
            self.redact(at, taken);
            rest = &rest[taken..];
            if end.is_some() {
                self.tainted = false;
            }
        }
        self.held.extend(rest.iter().map(|&b| (at, b)));
        while self.held.len() > Self::HELD_LIMIT {
            self.not_echoed();
        }
        self.report_redacted(&mut decisions);
        decisions
    }

    /// Output on stdout (in a tty session stderr is stdout; output on another stream is no echo
    /// and is not shown here).
    pub fn output(&mut self, bytes: &[u8]) -> Vec<EchoDecision> {
        let mut decisions = Vec::new();
        for &byte in bytes {
            let Some(token) = self.token(byte) else {
                continue;
            };
            while let Some(&(at, typed)) = self.held.front() {
                match step(typed, self.progress, token) {
                    Step::Done => {
                        self.held.pop_front();
                        self.progress = 0;
                        self.echoed(at, typed, &mut decisions);
                    }
                    Step::More(progress) => self.progress = progress,
                    Step::Skip => {}
                    // The token may be the echo of the next held byte.
                    Step::Mismatch => {
                        self.not_echoed();
                        continue;
                    }
                }
                break;
            }
        }
        self.report_redacted(&mut decisions);
        decisions
    }

    /// The command ended, or the session: nothing held will be echoed now.
    pub fn finish(&mut self) -> Vec<EchoDecision> {
        let mut decisions = Vec::new();
        if let Some(&(at, _)) = self.held.front() {
            let count = self.held.len();
            self.held.clear();
            self.redact(at, count);
        }
        self.progress = 0;
        self.tainted = false;
        self.flush_redacted(&mut decisions);
        decisions
    }

    /// Whether typed bytes are waiting for their echo.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Runs the output scanner on `byte`: the token it completes, if any.
    fn token(&mut self, byte: u8) -> Option<Token> {
        const ESC: u8 = 0x1b;
        const BEL: u8 = 0x07;
        let (next, token) = match (self.scan, byte) {
            (Scan::Ground, ESC) => (Scan::Escape, None),
            (Scan::Ground, byte) => (Scan::Ground, Some(Token::Byte(byte))),
            (Scan::Escape, b'[') => (Scan::Csi, None),
            (Scan::Escape, b']' | b'P' | b'X' | b'^' | b'_') => (Scan::Str, None),
            (Scan::Escape, ESC) => (Scan::Escape, None),
            // Intermediate bytes (`ESC ( B`) go on; anything else ends a two-byte sequence.
            (Scan::Escape, 0x20..=0x2f) => (Scan::Escape, None),
            (Scan::Escape, _) => (Scan::Ground, Some(Token::Escape)),
            (Scan::Csi, 0x40..=0x7e) => (Scan::Ground, Some(Token::Escape)),
            (Scan::Csi, ESC) => (Scan::Escape, Some(Token::Escape)),
            (Scan::Csi, _) => (Scan::Csi, None),
            (Scan::Str, BEL) => (Scan::Ground, Some(Token::Escape)),
            (Scan::Str, ESC) => (Scan::StrEscape, None),
            (Scan::Str, _) => (Scan::Str, None),
            (Scan::StrEscape, b'\\') => (Scan::Ground, Some(Token::Escape)),
            (Scan::StrEscape, _) => (Scan::Str, None),
        };
        self.scan = next;
        token
    }

    fn echoed(&mut self, at: Duration, byte: u8, decisions: &mut Vec<EchoDecision>) {
        self.flush_redacted(decisions);
        if let Some(EchoDecision::Echoed { bytes, .. }) = decisions.last_mut() {
            bytes.push(byte);
        } else {
            decisions.push(EchoDecision::Echoed {
                at,
                bytes: vec![byte],
            });
        }
    }

    /// The first held byte is not echoed: redacts it (and its escape sequence, or its line).
    fn not_echoed(&mut self) {
        let Some(&(at, first)) = self.held.front() else {
            return;
        };
        self.progress = 0;
        let count = match kind(first) {
            Kind::Control if first == 0x1b => self.escape_sequence_len(),
            Kind::Control | Kind::Erase | Kind::Tab | Kind::LineEnd => 1,
            Kind::Printable => {
                match self
                    .held
                    .iter()
                    .position(|&(_, b)| kind(b) == Kind::LineEnd)
                {
                    Some(end) => end + 1,
                    None => {
                        self.tainted = true;
                        self.held.len()
                    }
                }
            }
        };
        self.held.drain(..count);
        self.redact(at, count);
    }

    /// The length of the typed escape sequence at the front of `held` (ESC alone when what
    /// follows is not one): `ESC [ params final`, `ESC O x`, `ESC x`.
    fn escape_sequence_len(&self) -> usize {
        let mut bytes = self.held.iter().map(|&(_, b)| b).skip(1);
        match bytes.next() {
            Some(b'[') => {
                for (i, b) in bytes.enumerate() {
                    match b {
                        0x20..=0x3f => {}
                        0x40..=0x7e => return i + 3,
                        _ => return i + 2,
                    }
                }
                self.held.len()
            }
            Some(b'O') => self.held.len().min(3),
            Some(0x20..=0x7e) => 2,
            _ => 1,
        }
    }

    fn redact(&mut self, at: Duration, count: usize) {
        if count == 0 {
            return;
        }
        match &mut self.redacted {
            Some((_, total)) => *total += count,
            None => self.redacted = Some((at, count)),
        }
    }

    /// Reports the redacted run unless it goes on (a redacted line whose end is not typed yet).
    fn report_redacted(&mut self, decisions: &mut Vec<EchoDecision>) {
        if !self.tainted {
            self.flush_redacted(decisions);
        }
    }

    fn flush_redacted(&mut self, decisions: &mut Vec<EchoDecision>) {
        if let Some((at, count)) = self.redacted.take() {
            decisions.push(EchoDecision::Redacted { at, count });
        }
    }
}

#[cfg(test)]
mod tests;
