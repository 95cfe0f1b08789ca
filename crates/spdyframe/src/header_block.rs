//! The uncompressed name/value header block (draft section 2.6.10).
//!
//! ```text
//! | number of pairs (32) | length of name (32) | name | length of value (32) | value | ...
//! ```
//! Names are lowercase; one name carrying several values joins them with NUL bytes.

use crate::HeaderError;

/// An ordered list of (name, value) pairs, as a SYN_STREAM, SYN_REPLY or HEADERS frame carries
/// them. A value may contain NUL bytes: it then holds several values ([`HeaderBlock::values`]).
///
/// Names should be lowercase (the draft requires it, spdystream lowercases them); lookups
/// match names ASCII case-insensitively so a peer's stray capital does not hide a header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    pairs: Vec<(String, String)>,
}

impl HeaderBlock {
    /// An empty block.
    pub fn new() -> Self {
        HeaderBlock::default()
    }

    /// Appends a pair. A name may be pushed more than once; join several values of one name with
    /// `\0` to send them as spdystream does.
    pub fn push(&mut self, name: &str, value: &str) {
        self.pairs.push((name.to_owned(), value.to_owned()));
    }

    /// The whole value of the first pair named `name` (NULs included).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`: the values of all pairs with that name, in order, each split on NUL.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split('\0'))
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the block has no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Appends the uncompressed encoding to `out`. Names and values longer than `u32::MAX` bytes
    /// cannot be framed and are not expected; their length field saturates.
    pub fn encode_raw(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&len_field(self.pairs.len()));
        for (name, value) in &self.pairs {
            out.extend_from_slice(&len_field(name.len()));
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&len_field(value.len()));
            out.extend_from_slice(value.as_bytes());
        }
    }

    /// The size of [`HeaderBlock::encode_raw`]'s output.
    pub fn encoded_len(&self) -> usize {
        self.pairs
            .iter()
            .fold(4, |sum, (n, v)| sum.saturating_add(8 + n.len() + v.len()))
    }

    /// Decodes an uncompressed block. Every count and length is checked against the bytes
    /// actually present (nothing is allocated from an announced count), the block must end
    /// exactly after its last pair, and names and values must be UTF-8.
    pub fn decode_raw(bytes: &[u8]) -> Result<HeaderBlock, HeaderError> {
        let mut rest = bytes;
        let count =
            read_u32(&mut rest).ok_or(HeaderError::Malformed("block shorter than its count"))?;
        // Each pair takes at least 8 bytes, which bounds a believable count.
        let plausible = rest.len() / 8;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count > plausible {
            return Err(HeaderError::Malformed("pair count exceeds the block"));
        }
        let mut pairs = Vec::with_capacity(count);
        for _ in 0..count {
            let name = read_str(&mut rest, Field::Name)?;
            let value = read_str(&mut rest, Field::Value)?;
            pairs.push((name.to_owned(), value.to_owned()));
        }
        if !rest.is_empty() {
            return Err(HeaderError::Malformed("bytes after the last pair"));
        }
        Ok(HeaderBlock { pairs })
    }
}

impl<'n, 'v> FromIterator<(&'n str, &'v str)> for HeaderBlock {
    fn from_iter<I: IntoIterator<Item = (&'n str, &'v str)>>(iter: I) -> Self {
        HeaderBlock {
            pairs: iter
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

fn len_field(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

fn read_u32(rest: &mut &[u8]) -> Option<u32> {
    let (word, tail) = rest.split_first_chunk::<4>()?;
    *rest = tail;
    Some(u32::from_be_bytes(*word))
}

/// Which string of a pair is being read, for the error message.
#[derive(Clone, Copy)]
enum Field {
    Name,
    Value,
}

impl Field {
    fn errors(self) -> [&'static str; 3] {
        match self {
            Field::Name => [
                "name length past the end of the block",
                "name past the end of the block",
                "name is not UTF-8",
            ],
            Field::Value => [
                "value length past the end of the block",
                "value past the end of the block",
                "value is not UTF-8",
            ],
        }
    }
}

fn read_str<'b>(rest: &mut &'b [u8], field: Field) -> Result<&'b str, HeaderError> {
    let [no_length, truncated, not_utf8] = field.errors();
    let len = read_u32(rest).ok_or(HeaderError::Malformed(no_length))?;
    let (bytes, tail) = rest
        .split_at_checked(usize::try_from(len).unwrap_or(usize::MAX))
        .ok_or(HeaderError::Malformed(truncated))?;
    *rest = tail;
    std::str::from_utf8(bytes).map_err(|_| HeaderError::Malformed(not_utf8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip_and_lookup() {
        let mut block = HeaderBlock::new();
        block.push("streamtype", "stdout");
        block.push(
            "x-stream-protocol-version",
            "v4.channel.k8s.io\0channel.k8s.io",
        );
        block.push("x-stream-protocol-version", "v2.channel.k8s.io");
        let mut raw = Vec::new();
        block.encode_raw(&mut raw);
        assert_eq!(raw.len(), block.encoded_len());
        let decoded = HeaderBlock::decode_raw(&raw).expect("valid block");
        assert_eq!(decoded, block);
        assert_eq!(decoded.get("StreamType"), Some("stdout"));
        let versions: Vec<_> = decoded.values("x-stream-protocol-version").collect();
        assert_eq!(
            versions,
            ["v4.channel.k8s.io", "channel.k8s.io", "v2.channel.k8s.io"]
        );
        assert_eq!(decoded.values("missing").count(), 0);
    }

    #[test]
    fn exact_bytes() {
        let block: HeaderBlock = [("a", "bc")].into_iter().collect();
        let mut raw = Vec::new();
        block.encode_raw(&mut raw);
        assert_eq!(raw, [0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 2, b'b', b'c']);
    }

    #[test]
    fn malformed_blocks_are_errors() {
        for bad in [
            &[][..],
            &[0, 0, 0][..],
            &[0xff, 0xff, 0xff, 0xff][..],
            &[0, 0, 0, 1, 0, 0, 0, 1][..],
            &[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..],
            &[0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0, 0, 0, 0][..],
            &[0, 0, 0, 0, 0][..],
        ] {
            assert!(
                matches!(HeaderBlock::decode_raw(bad), Err(HeaderError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            HeaderBlock::decode_raw(&[0, 0, 0, 0]),
            Ok(HeaderBlock::new())
        );
    }
}
