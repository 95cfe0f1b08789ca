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
    let bytes = text.as_bytes();
    // Most output needs no escape at all: reserve for that, grow only when escapes come.
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        // Skip blocks, then words, in which no byte needs an escape. (The block test is four
        // word tests combined, which the compiler turns into vector instructions.)
        while let Some(block) = bytes.get(at..at + BLOCK) {
            if block
                .chunks_exact(8)
                .fold(0, |any, word| any | escape_bits(word))
                != 0
            {
                break;
            }
            at += BLOCK;
        }
        while let Some(word) = bytes.get(at..at + 8) {
            if escape_bits(word) != 0 {
                break;
            }
            at += 8;
        }
        // Then byte by byte through the word that has one (or the tail shorter than a word).
        let stop = (at + 8).min(bytes.len());
        while at < stop {
            let byte = bytes[at];
            if let Some(escape) = escape_of(byte) {
                out.extend_from_slice(&bytes[copied..at]);
                escape.write(out);
                copied = at + 1;
            }
            at += 1;
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// Bytes tested at once while skipping.
const BLOCK: usize = 32;

/// Non-zero when any of the eight bytes of `word` is a control character below 0x20, `"` or
/// `\`; zero otherwise. Exact: these "has a byte below n" tests never report a word without one.
fn escape_bits(word: &[u8]) -> u64 {
    let mut eight = [0u8; 8];
    eight.copy_from_slice(word);
    let word = u64::from_le_bytes(eight);
    // A byte below n: subtracting n borrows into its high bit, which `!word` keeps only for
    // bytes below 0x80 (non-ASCII bytes are never escaped). A byte equal to c is a zero byte
    // (below 1) of `word ^ c`.
    let below = |word: u64, n: u64| word.wrapping_sub(n * LOW_BITS) & !word & HIGH_BITS;
    below(word, 0x20)
        | below(word ^ (u64::from(b'"') * LOW_BITS), 1)
        | below(word ^ (u64::from(b'\\') * LOW_BITS), 1)
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

    proptest! {
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
