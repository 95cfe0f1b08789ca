//! Writing text as a JSON string literal, fast: the output of every recorded session passes
//! through here, so runs of bytes that need no escaping are found eight at a time and copied
//! whole.
//!
//! The bytes written are exactly those of `serde_json::to_writer` for a `&str` (the casts this
//! project wrote before stay byte-identical): `"` and `\` are escaped with a backslash,
//! backspace, tab, newline, form feed and carriage return as `\b \t \n \f \r`, the other control
//! characters below U+0020 as `\u00XX` with lower-case hex, and everything else (DEL and every
//! non-ASCII character included) as is.

/// Bytes with the high bit of every byte set.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
/// `0x01` in every byte.
const LOW_BITS: u64 = 0x0101_0101_0101_0101;

/// Appends `text` as a JSON string literal (quotes included) to `out`.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Most output needs no escape at all: reserve for that, grow only when escapes come.
    out.reserve(text.len() + 2);
    out.push(b'"');
    escape_into::<false>(out, text.as_bytes());
    out.push(b'"');
}

/// Appends `bytes` as a JSON string literal, like [`write_json_string`], when they are UTF-8,
/// and returns `true`; otherwise leaves `out` as it was and returns `false`.
///
/// One pass where a check and then the write would take two: the scan that looks for bytes to
/// escape also stops at the first byte that is not ASCII, so text that is all ASCII (most
/// command output) is checked for free. Only the rest from that byte on is validated as UTF-8
/// (by the standard library) and then escaped.
pub fn write_json_string_if_utf8(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let start = out.len();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let ascii = escape_into::<true>(out, bytes);
    if let Some(rest) = bytes.get(ascii..).filter(|rest| !rest.is_empty()) {
        // `ascii` is where a character starts (every byte before it is one), so the whole is
        // UTF-8 exactly when the rest is.
        let Ok(rest) = std::str::from_utf8(rest) else {
            out.truncate(start);
            return false;
        };
        escape_into::<false>(out, rest.as_bytes());
    }
    out.push(b'"');
    true
}

/// Escapes `bytes` into `out` (no quotes) and returns how many it took: all of them, or with
/// `STOP_AT_NON_ASCII` those before the first byte that is not ASCII.
fn escape_into<const STOP_AT_NON_ASCII: bool>(out: &mut Vec<u8>, bytes: &[u8]) -> usize {
    // The bits that stop the skipping: bytes to escape, and with STOP_AT_NON_ASCII high bytes.
    let stops = |word: &[u8]| {
        let escapes = escape_bits(word);
        if STOP_AT_NON_ASCII {
            escapes | (word_of(word) & HIGH_BITS)
        } else {
            escapes
        }
    };
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        // Skip blocks, then words, in which no byte needs an escape. (The block test is four
        // word tests combined, which the compiler turns into vector instructions.)
        while let Some(block) = bytes.get(at..at + BLOCK) {
            if block.chunks_exact(8).fold(0, |any, word| any | stops(word)) != 0 {
                break;
            }
            at += BLOCK;
        }
        while let Some(word) = bytes.get(at..at + 8) {
            if stops(word) != 0 {
                break;
            }
            at += 8;
        }
        // Then byte by byte through the word that has one (or the tail shorter than a word).
        let stop = (at + 8).min(bytes.len());
        while at < stop {
            let byte = bytes[at];
            if STOP_AT_NON_ASCII && !byte.is_ascii() {
                out.extend_from_slice(&bytes[copied..at]);
                return at;
            }
            if let Some(escape) = escape_of(byte) {
                out.extend_from_slice(&bytes[copied..at]);
                escape.write(out);
                copied = at + 1;
            }
            at += 1;
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    bytes.len()
}

/// Bytes tested at once while skipping.
const BLOCK: usize = 32;

/// Non-zero when any of the eight bytes of `word` is a control character below 0x20, `"` or
/// `\`; zero otherwise. Exact: these "has a byte below n" tests never report a word without one.
fn escape_bits(word: &[u8]) -> u64 {
    let word = word_of(word);
    // A byte below n: subtracting n borrows into its high bit, which `!word` keeps only for
    // bytes below 0x80 (non-ASCII bytes are never escaped). A byte equal to c is a zero byte
    // (below 1) of `word ^ c`.
    let below = |word: u64, n: u64| word.wrapping_sub(n * LOW_BITS) & !word & HIGH_BITS;
    below(word, 0x20)
        | below(word ^ (u64::from(b'"') * LOW_BITS), 1)
        | below(word ^ (u64::from(b'\\') * LOW_BITS), 1)
}

/// The eight bytes of `word` (exactly eight long) as one little-endian integer.
fn word_of(word: &[u8]) -> u64 {
    let mut eight = [0u8; 8];
    eight.copy_from_slice(word);
    u64::from_le_bytes(eight)
}

/// How one byte is escaped.
enum Escape {
    /// A backslash and this character.
    Short(u8),
    /// `\u00` and two lower-case hex digits.
    Unicode(u8),
}

impl Escape {
    fn write(self, out: &mut Vec<u8>) {
        match self {
            Escape::Short(letter) => out.extend_from_slice(&[b'\\', letter]),
            Escape::Unicode(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
        }
    }
}

/// The escape of `byte`, or `None` when it is written as is.
fn escape_of(byte: u8) -> Option<Escape> {
    Some(match byte {
        b'"' => Escape::Short(b'"'),
        b'\\' => Escape::Short(b'\\'),
        0x08 => Escape::Short(b'b'),
        b'\t' => Escape::Short(b't'),
        b'\n' => Escape::Short(b'n'),
        0x0c => Escape::Short(b'f'),
        b'\r' => Escape::Short(b'r'),
        0x00..=0x1f => Escape::Unicode(byte),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn written(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_json_string(&mut out, text);
        out
    }

    fn serde(text: &str) -> Vec<u8> {
        serde_json::to_vec(text).expect("a str serialises")
    }

    #[test]
    fn every_single_character_below_0x100_is_written_as_serde_json_writes_it() {
        for code in 0u32..0x100 {
            let ch = char::from_u32(code).expect("a char");
            let text = ch.to_string();
            assert_eq!(written(&text), serde(&text), "U+{code:04X}");
        }
    }

    #[test]
    fn escapes_at_every_position_of_a_block_are_found() {
        for position in 0..80 {
            for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}"] {
                let mut text = "x".repeat(80);
                text.replace_range(position..position + 1, special);
                assert_eq!(written(&text), serde(&text), "{special:?} at {position}");
            }
        }
    }

    #[test]
    fn multibyte_characters_beside_escapes_are_kept() {
        let text = "日本語\"€\u{7f}\u{80}😀\\\u{0}é".repeat(5);
        assert_eq!(written(&text), serde(&text));
    }

    #[test]
    fn the_word_test_reports_no_false_escape() {
        // Bytes just above each escaped class, and the bytes that make the zero test borrow.
        for byte in [0x20u8, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff] {
            assert_eq!(escape_bits(&[byte; 8]), 0, "{byte:#x}");
        }
        assert_ne!(escape_bits(b"aaaaaaa\""), 0);
        assert_ne!(escape_bits(b"\x1faaaaaaa"), 0);
    }

    /// What `write_json_string_if_utf8` must do: the checked write when the bytes are UTF-8,
    /// nothing otherwise.
    fn checked(prefix: &[u8], bytes: &[u8]) -> (bool, Vec<u8>) {
        let mut out = prefix.to_vec();
        let written = write_json_string_if_utf8(&mut out, bytes);
        (written, out)
    }

    fn expected(prefix: &[u8], bytes: &[u8]) -> (bool, Vec<u8>) {
        let mut out = prefix.to_vec();
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                out.extend_from_slice(&serde(text));
                (true, out)
            }
            Err(_) => (false, out),
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_anywhere_leave_the_output_as_it_was() {
        let valid = "abc\"日本\n€😀".as_bytes();
        for position in 0..=valid.len() {
            for bad in [
                &[0x80u8][..],
                &[0xff],
                &[0xc3],
                &[0xed, 0xa0, 0x80],
                &[0xe2, 0x82],
            ] {
                let mut bytes = valid.to_vec();
                bytes.splice(position..position, bad.iter().copied());
                assert_eq!(
                    checked(b"[1,", &bytes),
                    (false, b"[1,".to_vec()),
                    "{bytes:?}"
                );
            }
        }
        let long_ascii_then_bad = [&b"x".repeat(100)[..], &[0xc0, 0x80]].concat();
        assert_eq!(checked(b"", &long_ascii_then_bad), (false, Vec::new()));
    }

    #[test]
    fn checked_writes_match_serde_json_at_every_position_of_a_block() {
        for position in 0..80 {
            for special in ["\"", "\\", "\n", "\u{1}", "é", "€", "😀", "\u{7f}"] {
                let mut text = "x".repeat(80);
                text.replace_range(position..position + 1, special);
                assert_eq!(
                    checked(b"[", text.as_bytes()),
                    expected(b"[", text.as_bytes()),
                    "{special:?} at {position}"
                );
            }
        }
        assert_eq!(checked(b"", b""), (true, b"\"\"".to_vec()));
    }

    proptest! {
        #[test]
        fn any_bytes_are_written_checked_as_the_check_then_the_write_would(
            bytes in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            prop_assert_eq!(checked(b"x", &bytes), expected(b"x", &bytes));
        }

        #[test]
        fn mostly_ascii_bytes_are_written_checked_as_the_check_then_the_write_would(
            bytes in proptest::collection::vec(
                prop_oneof![12 => 0x20u8..0x7f, 2 => 0u8..0x20, 1 => any::<u8>()],
                0..300,
            )
        ) {
            prop_assert_eq!(checked(b"x", &bytes), expected(b"x", &bytes));
        }

        #[test]
        fn any_text_is_written_checked_as_serde_json_writes_it(text in any::<String>()) {
            prop_assert_eq!(checked(b"", text.as_bytes()), expected(b"", text.as_bytes()));
        }

        #[test]
        fn any_text_is_written_as_serde_json_writes_it(text in any::<String>()) {
            prop_assert_eq!(written(&text), serde(&text));
        }

        #[test]
        fn ascii_heavy_text_is_written_as_serde_json_writes_it(
            text in "[a-z\"\\\\\\x00-\\x1f\\x7f ]{0,200}"
        ) {
            prop_assert_eq!(written(&text), serde(&text));
        }
    }
}
