//! Streaming UTF-8 decoding with a carry, so that a character split across two events is decoded
//! whole.
//!
//! The decoded text of a stream, fed in any number of pieces split anywhere and then
//! [finished](Utf8Carry::finish), equals `String::from_utf8_lossy` of the whole stream: valid
//! characters pass through, each maximal invalid sequence becomes one U+FFFD (the "substitution of
//! maximal subparts" practice of Unicode §3.9 that the standard library follows), and an incomplete
//! sequence at the very end becomes one U+FFFD.

/// The replacement character written for invalid bytes.
pub const REPLACEMENT: char = '\u{FFFD}';

/// A UTF-8 decoder for one byte stream that carries an incomplete trailing sequence (1 to 3 bytes)
/// into the next call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Utf8Carry {
    carry: [u8; 4],
    len: u8,
}

impl Utf8Carry {
    /// A decoder with nothing carried.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes carried from the previous call: the start of a character whose remaining bytes have
    /// not arrived yet (empty when none).
    pub fn pending(&self) -> &[u8] {
        &self.carry[..usize::from(self.len)]
    }

    /// Decodes `input` (the next bytes of the stream) and appends the text to `out`. A trailing
    /// incomplete sequence is kept for the next call instead of being replaced.
    pub fn decode(&mut self, mut input: &[u8], out: &mut String) {
        if self.len > 0 {
            input = self.complete_carry(input, out);
            if self.len > 0 {
                // Still incomplete: every input byte went into the carry.
                return;
            }
        }
        // The common case, all of it valid, is checked word at a time by the standard library,
        // far faster than walking chunks.
        if let Ok(text) = std::str::from_utf8(input) {
            out.push_str(text);
            return;
        }
        let mut chunks = input.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            out.push_str(chunk.valid());
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            if chunks.peek().is_none() && is_incomplete_prefix(invalid) {
                // The last thing in the input is the start of a character: wait for the rest.
                self.carry[..invalid.len()].copy_from_slice(invalid);
                self.len = invalid.len() as u8; // at most 3
            } else {
                out.push(REPLACEMENT);
            }
        }
    }

    /// Ends the stream: a carried incomplete sequence becomes one U+FFFD (as
    /// `String::from_utf8_lossy` does for a truncated character at the end).
    pub fn finish(&mut self, out: &mut String) {
        if self.len > 0 {
            out.push(REPLACEMENT);
            self.len = 0;
        }
    }

    /// Resolves the carried bytes with the first bytes of `input`; returns the rest of `input`.
    fn complete_carry<'a>(&mut self, input: &'a [u8], out: &mut String) -> &'a [u8] {
        let carried = usize::from(self.len);
        // A UTF-8 sequence is at most 4 bytes, so 4 bytes decide what the carried prefix is.
        let take = input.len().min(4 - carried);
        let mut window = [0u8; 4];
        window[..carried].copy_from_slice(&self.carry[..carried]);
        window[carried..carried + take].copy_from_slice(&input[..take]);
        let window = &window[..carried + take];
        let first = window
            .utf8_chunks()
            .next()
            .map(|chunk| (chunk.valid().chars().next(), chunk.invalid()));
        match first {
            Some((Some(ch), _)) => {
                // The carried prefix completed a character.
                out.push(ch);
                self.len = 0;
                &input[ch.len_utf8() - carried..]
            }
            Some((None, invalid))
                if invalid.len() == window.len() && is_incomplete_prefix(invalid) =>
            {
                // All of the input extends the prefix, which is still incomplete.
                self.carry[..window.len()].copy_from_slice(window);
                self.len = window.len() as u8;
                &input[take..]
            }
            Some((None, invalid)) => {
                // The carried prefix cannot be completed: one replacement for the maximal invalid
                // subpart, which always covers at least the carried bytes.
                out.push(REPLACEMENT);
                self.len = 0;
                let used = invalid.len().max(carried);
                &input[used - carried..]
            }
            None => input, // unreachable: the window holds at least the carried bytes
        }
    }
}

/// Whether `bytes` (an invalid chunk reported by `utf8_chunks`) is the start of a valid sequence cut
/// short, as opposed to bytes that can never be valid.
fn is_incomplete_prefix(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_split(bytes: &[u8], cuts: &[usize]) -> String {
        let mut decoder = Utf8Carry::new();
        let mut out = String::new();
        let mut start = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        for cut in cuts {
            decoder.decode(&bytes[start..cut], &mut out);
            start = cut;
        }
        decoder.decode(&bytes[start..], &mut out);
        decoder.finish(&mut out);
        out
    }

    #[test]
    fn multibyte_split_in_every_place_is_whole() {
        let text = "a€b😀c\u{7ff}";
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                assert_eq!(decode_split(bytes, &[i, j]), text, "cuts {i} {j}");
            }
        }
    }

    #[test]
    fn carried_bytes_are_not_emitted_until_complete() {
        let mut decoder = Utf8Carry::new();
        let mut out = String::new();
        decoder.decode(&[b'x', 0xE2, 0x82], &mut out);
        assert_eq!(out, "x");
        assert_eq!(decoder.pending(), &[0xE2, 0x82]);
        decoder.decode(&[0xAC], &mut out);
        assert_eq!(out, "x€");
        assert!(decoder.pending().is_empty());
    }

    #[test]
    fn broken_carry_is_one_replacement_then_the_rest() {
        let mut decoder = Utf8Carry::new();
        let mut out = String::new();
        decoder.decode(&[0xF0, 0x90], &mut out);
        decoder.decode(&[0x80, b'A'], &mut out);
        decoder.finish(&mut out);
        assert_eq!(out, String::from_utf8_lossy(&[0xF0, 0x90, 0x80, b'A']));
    }

    #[test]
    fn dangling_carry_is_flushed_as_replacement() {
        let mut decoder = Utf8Carry::new();
        let mut out = String::new();
        decoder.decode(&[b'o', b'k', 0xE2], &mut out);
        decoder.finish(&mut out);
        assert_eq!(out, "ok\u{FFFD}");
        decoder.finish(&mut out);
        assert_eq!(out, "ok\u{FFFD}", "finish twice adds nothing");
    }

    #[test]
    fn invalid_bytes_are_replaced_like_from_utf8_lossy() {
        let cases: &[&[u8]] = &[
            &[0x80],
            &[0xFF, 0xFE],
            &[0xED, 0xA0, 0x80], // surrogate
            &[0xC0, 0xAF],       // overlong
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xE2, 0x82, b'x', 0xE2],
        ];
        for case in cases {
            for i in 0..=case.len() {
                assert_eq!(
                    decode_split(case, &[i]),
                    String::from_utf8_lossy(case),
                    "{case:x?} cut at {i}"
                );
            }
        }
    }

    /// Bytes that are mostly near UTF-8 (lead and continuation bytes, ASCII, whole characters) so that
    /// the interesting cases (split, truncated and broken sequences) come up often.
    fn utf8ish_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            any::<u8>().prop_map(|b| vec![b]),
            (0x80u8..0xC0).prop_map(|b| vec![b]),
            (0xC0u8..0xF8).prop_map(|b| vec![b]),
            any::<char>().prop_map(|c| c.to_string().into_bytes()),
            "[a-z€😀ß]{0,4}".prop_map(String::into_bytes),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn any_split_decodes_like_from_utf8_lossy(
            bytes in utf8ish_bytes(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            prop_assert_eq!(decode_split(&bytes, &cuts), String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn byte_at_a_time_decodes_like_from_utf8_lossy(bytes in utf8ish_bytes()) {
            let mut decoder = Utf8Carry::new();
            let mut out = String::new();
            for b in &bytes {
                decoder.decode(std::slice::from_ref(b), &mut out);
            }
            decoder.finish(&mut out);
            prop_assert_eq!(out, String::from_utf8_lossy(&bytes));
        }
    }
}
