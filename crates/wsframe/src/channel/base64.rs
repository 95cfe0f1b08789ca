//! Incremental base64 decoding with the semantics of Go's `base64.StdEncoding.Decode`, which
//! `wsstream` applies to each whole message: standard alphabet, padding required, `\r` and
//! `\n` skipped anywhere, nothing but line breaks after the padding, and non-zero trailing
//! bits accepted (the encoding is not `Strict`).
//!
//! A message arrives in pieces split anywhere, so up to three characters of an incomplete
//! 4-character group are carried to the next piece.

use crate::error::ChannelError;

const INVALID: u8 = 0xFF;

/// Maps an ASCII byte to its 6-bit value, or `INVALID`.
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Padding {
    /// No `=` yet.
    None,
    /// One `=` after two characters; a second must follow.
    NeedSecond,
    /// The group is padded: only line breaks may follow.
    Done,
}

/// The carried state of one message's base64 body.
#[derive(Clone, Debug)]
pub(crate) struct Base64Decoder {
    group: [u8; 4],
    held: usize,
    padding: Padding,
}

impl Base64Decoder {
    pub(crate) fn new() -> Self {
        Self {
            group: [0; 4],
            held: 0,
            padding: Padding::None,
        }
    }

    /// Decodes `input`, replacing `out` with the bytes it completes.
    pub(crate) fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ChannelError> {
        out.clear();
        // Exact, not amortized: the buffer must stay bounded by the largest piece.
        out.reserve_exact(input.len() / 4 * 3 + 3);
        let mut i = 0;
        while i < input.len() {
            if self.held == 0 && self.padding == Padding::None {
                // Fast path: whole groups of four alphabet characters.
                while let Some(&[a, b, c, d]) = input.get(i..i + 4) {
                    let (a, b, c, d) = (
                        DECODE[usize::from(a)],
                        DECODE[usize::from(b)],
                        DECODE[usize::from(c)],
                        DECODE[usize::from(d)],
                    );
                    // Alphabet values are below 64; INVALID has the top bits set.
                    if (a | b | c | d) & 0xC0 != 0 {
                        break;
                    }
                    out.extend_from_slice(&[
                        (a << 2) | (b >> 4),
                        (b << 4) | (c >> 2),
                        (c << 6) | d,
                    ]);
                    i += 4;
                }
                let Some(&byte) = input.get(i) else { break };
                self.push(byte, out)?;
            } else {
                self.push(input[i], out)?;
            }
            i += 1;
        }
        Ok(())
    }

    /// Ends the message: an incomplete group or half padding is an error. Resets the state.
    pub(crate) fn finish(&mut self) -> Result<(), ChannelError> {
        let complete = match self.padding {
            Padding::None => self.held == 0,
            Padding::NeedSecond => false,
            Padding::Done => true,
        };
        *self = Self::new();
        if complete {
            Ok(())
        } else {
            Err(ChannelError::InvalidBase64)
        }
    }

    fn push(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<(), ChannelError> {
        if byte == b'\r' || byte == b'\n' {
            return Ok(());
        }
        match self.padding {
            Padding::Done => Err(ChannelError::InvalidBase64),
            Padding::NeedSecond if byte == b'=' => {
                self.padding = Padding::Done;
                self.emit(out);
                Ok(())
            }
            Padding::NeedSecond => Err(ChannelError::InvalidBase64),
            Padding::None => {
                let value = DECODE[usize::from(byte)];
                if value != INVALID {
                    self.group[self.held] = value;
                    self.held += 1;
                    if self.held == 4 {
                        self.emit(out);
                    }
                    return Ok(());
                }
                match (byte, self.held) {
                    (b'=', 2) => {
                        self.padding = Padding::NeedSecond;
                        Ok(())
                    }
                    (b'=', 3) => {
                        self.padding = Padding::Done;
                        self.emit(out);
                        Ok(())
                    }
                    _ => Err(ChannelError::InvalidBase64),
                }
            }
        }
    }

    /// Writes the bytes of the held group (1, 2 or 3 of them for 2, 3 or 4 characters).
    fn emit(&mut self, out: &mut Vec<u8>) {
        let [a, b, c, d] = self.group;
        let bytes = [(a << 2) | (b >> 4), (b << 4) | (c >> 2), (c << 6) | d];
        out.extend_from_slice(&bytes[..self.held - 1]);
        self.held = 0;
        self.group = [0; 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn decode_whole(text: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let mut decoder = Base64Decoder::new();
        let mut out = Vec::new();
        decoder.decode(text, &mut out)?;
        decoder.finish()?;
        Ok(out)
    }

    fn decode_split(text: &[u8], at: usize) -> Result<Vec<u8>, ChannelError> {
        let mut decoder = Base64Decoder::new();
        let (mut all, mut out) = (Vec::new(), Vec::new());
        for part in [&text[..at], &text[at..]] {
            decoder.decode(part, &mut out)?;
            all.extend_from_slice(&out);
        }
        decoder.finish()?;
        Ok(all)
    }

    #[test]
    fn decodes_every_length_split_anywhere() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..20 {
            let text = base64::engine::general_purpose::STANDARD.encode(&data[len * 7..len * 8]);
            for at in 0..=text.len() {
                assert_eq!(
                    decode_split(text.as_bytes(), at),
                    Ok(data[len * 7..len * 8].to_vec())
                );
            }
        }
    }

    #[test]
    fn follows_go_std_encoding() {
        // wsstream's doc comment calls "Zm9vCgo=" "foo\n"; Go decodes it to "foo\n\n".
        assert_eq!(decode_whole(b"Zm9vCgo="), Ok(b"foo\n\n".to_vec()));
        assert_eq!(decode_whole(b"Cg=="), Ok(b"\n".to_vec()));
        // Line breaks are skipped anywhere, also inside and after the padding.
        assert_eq!(decode_whole(b"Z\r\nm9v\nCg=\n=\r\n"), Ok(b"foo\n".to_vec()));
        // Non-zero trailing bits are accepted (not Strict).
        assert_eq!(decode_whole(b"Zh=="), Ok(b"f".to_vec()));
        assert_eq!(decode_whole(b""), Ok(Vec::new()));
        for bad in [
            &b"Zm9"[..],
            b"Z===",
            b"Zg=",
            b"Zg==Zg==",
            b"Zg=x",
            b"Zm9v Cg==",
            b"=",
            b"Zm9v-A==",
        ] {
            assert_eq!(
                decode_whole(bad),
                Err(ChannelError::InvalidBase64),
                "{bad:?}"
            );
        }
    }
}
