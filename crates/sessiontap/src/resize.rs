//! The resize stream: a JSON stream of `remotecommand.TerminalSize` objects.
//!
//! client-go (`tools/remotecommand`, `streamProtocolV3.handleResizes`) writes one
//! `{"Width":80,"Height":24}` per size change with `json.Encoder`; kubelet reads them with
//! `json.NewDecoder(stream).Decode(&size)` in a loop. The stream carries no framing of its own: a
//! SPDY data frame or WebSocket message may hold several objects, or part of one. This module splits
//! the stream into objects by tracking brace depth and strings, holding at most one incomplete object.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::json_stream::{ObjectScanner, Scanned};

/// Why the resize stream could not be read. Kubelet stops reading resizes after such an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResizeError {
    /// One object was longer than [`TapLimits::max_resize_object`](crate::TapLimits::max_resize_object).
    #[error("resize object longer than {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// Something other than whitespace or an object at the top level of the stream.
    #[error("resize stream: unexpected byte 0x{byte:02x} between objects")]
    NotAnObject {
        /// The byte found.
        byte: u8,
    },
    /// An object that is not a valid `TerminalSize` (bad JSON, or a size that is not an integer
    /// from 0 to 65535).
    #[error("resize object is not a terminal size: {reason}")]
    Invalid {
        /// What the JSON decoder said.
        reason: String,
    },
}

/// Splits a resize stream into `TerminalSize` objects, however it is chunked.
#[derive(Debug)]
pub(crate) struct ResizeDecoder {
    /// The start of an object that did not end in the chunk it started in.
    partial: Vec<u8>,
    scanner: ObjectScanner,
    max_object: usize,
}

impl ResizeDecoder {
    pub(crate) fn new(max_object: usize) -> Self {
        ResizeDecoder {
            partial: Vec::new(),
            scanner: ObjectScanner::default(),
            max_object,
        }
    }

    /// Feeds the next piece of the stream, calling `emit(cols, rows)` for every complete object.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        emit: &mut dyn FnMut(u16, u16),
    ) -> Result<(), ResizeError> {
        // Where the current object starts in `input` (0 when it started in an earlier chunk).
        let mut start = 0;
        for (index, &byte) in input.iter().enumerate() {
            match self.scanner.push(byte) {
                Scanned::Between | Scanned::Inside => {}
                Scanned::Opened => start = index,
                Scanned::Unexpected => return Err(ResizeError::NotAnObject { byte }),
                Scanned::Closed => {
                    let piece = &input[start..=index];
                    let (cols, rows) = if self.partial.is_empty() {
                        self.check_len(piece.len())?;
                        parse_size(piece)?
                    } else {
                        self.check_len(self.partial.len() + piece.len())?;
                        self.partial.extend_from_slice(piece);
                        let size = parse_size(&self.partial);
                        self.partial.clear();
                        size?
                    };
                    emit(cols, rows);
                }
            }
        }
        if self.scanner.is_inside() {
            let rest = &input[start..];
            self.check_len(self.partial.len() + rest.len())?;
            self.partial.extend_from_slice(rest);
        }
        Ok(())
    }

    fn check_len(&self, len: usize) -> Result<(), ResizeError> {
        if len > self.max_object {
            Err(ResizeError::TooLarge {
                limit: self.max_object,
            })
        } else {
            Ok(())
        }
    }
}

fn parse_size(object: &[u8]) -> Result<(u16, u16), ResizeError> {
    serde_json::from_slice::<TerminalSize>(object)
        .map(|size| (size.width, size.height))
        .map_err(|err| ResizeError::Invalid {
            reason: err.to_string(),
        })
}

/// Go's `remotecommand.TerminalSize{Width, Height uint16}` as `encoding/json` decodes it: keys match
/// in any letter case (the last one wins), unknown keys and `null` values are ignored, and a value
/// must be an integer that fits in 16 bits.
struct TerminalSize {
    width: u16,
    height: u16,
}

impl<'de> Deserialize<'de> for TerminalSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TerminalSizeVisitor)
    }
}

struct TerminalSizeVisitor;

impl<'de> Visitor<'de> for TerminalSizeVisitor {
    type Value = TerminalSize;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an object with Width and Height")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TerminalSize, A::Error> {
        let mut size = TerminalSize {
            width: 0,
            height: 0,
        };
        while let Some(key) = map.next_key::<String>()? {
            let field = if key.eq_ignore_ascii_case("width") {
                &mut size.width
            } else if key.eq_ignore_ascii_case("height") {
                &mut size.height
            } else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if let Some(value) = map.next_value::<Option<u16>>()? {
                *field = value;
            }
        }
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_chunks(chunks: &[&[u8]]) -> Result<Vec<(u16, u16)>, ResizeError> {
        let mut decoder = ResizeDecoder::new(4096);
        let mut sizes = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut |c, r| sizes.push((c, r)))?;
        }
        Ok(sizes)
    }

    #[test]
    fn several_objects_in_one_chunk() {
        let sizes =
            decode_chunks(&[b"{\"Width\":81,\"Height\":25}\n{\"Width\":80,\"Height\":24}\n"]);
        assert_eq!(sizes, Ok(vec![(81, 25), (80, 24)]));
    }

    #[test]
    fn one_object_split_across_chunks() {
        let stream = b"{\"Width\":120,\"Height\":40}{\"Width\":0,\"Height\":0}";
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(
                decode_chunks(&[a, b]),
                Ok(vec![(120, 40), (0, 0)]),
                "split at {split}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes), Ok(vec![(120, 40), (0, 0)]));
    }

    #[test]
    fn keys_match_like_go() {
        let sizes = decode_chunks(&[
            br#"{"width":1,"HEIGHT":2}{"Height":3,"extra":{"Width":"}"},"Width":4}"#,
            br#"{"Width":null,"Height":7}{"Width":5,"width":6}{}"#,
        ]);
        assert_eq!(sizes, Ok(vec![(1, 2), (4, 3), (0, 7), (6, 0), (0, 0)]));
    }

    #[test]
    fn bad_streams_are_errors() {
        for bad in [
            &b"[1,2]"[..],
            b"null",
            b"{\"Width\":-1}",
            b"{\"Width\":65536}",
            b"{\"Width\":80.5}",
            b"{\"Width\":\"80\"}",
            b"{\"Width\" 80}",
        ] {
            assert!(
                decode_chunks(&[bad]).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn oversized_object_is_an_error_with_bounded_memory() {
        let mut decoder = ResizeDecoder::new(64);
        decoder
            .feed(b"{\"Width\":", &mut |_, _| {})
            .expect("prefix");
        let filler = [b' '; 60];
        assert_eq!(
            decoder.feed(&filler, &mut |_, _| {}),
            Err(ResizeError::TooLarge { limit: 64 })
        );
        assert!(decoder.partial.len() <= 64);
        let mut one_chunk = b"{\"Width\":1".to_vec();
        one_chunk.extend_from_slice(&[b' '; 100]);
        one_chunk.push(b'}');
        // Under the 4 KiB limit of decode_chunks.
        assert_eq!(decode_chunks(&[&one_chunk]), Ok(vec![(1, 0)]));
        let mut small = ResizeDecoder::new(64);
        assert_eq!(
            small.feed(&one_chunk, &mut |_, _| {}),
            Err(ResizeError::TooLarge { limit: 64 })
        );
    }
}
