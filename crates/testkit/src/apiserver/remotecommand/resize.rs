//! The resize stream/channel: a JSON stream of `remotecommand.TerminalSize` objects
//! (`{"Width":80,"Height":24}`, one per size change, written by client-go's `json.Encoder`), which
//! a frame may carry several of, or part of one. Kubelet decodes it with `json.NewDecoder` in a
//! loop (`handleResizing`) and stops reading resizes at the first error; so does this decoder.

use serde::Deserialize;

/// The longest incomplete object held; anything longer is an error (kubelet has no limit, but
/// a size object is about 25 bytes).
const MAX_PENDING: usize = 4096;

/// `remotecommand.TerminalSize`. Go's decoder matches field names case-insensitively.
#[derive(Debug, Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width", alias = "width", default)]
    width: u16,
    #[serde(rename = "Height", alias = "height", default)]
    height: u16,
}

/// Splits the resize stream into sizes, however it is chunked.
#[derive(Debug, Default)]
pub(crate) struct ResizeDecoder {
    pending: Vec<u8>,
    failed: bool,
}

impl ResizeDecoder {
    /// Feeds the next bytes of the stream and returns the sizes completed, as `(cols, rows)`.
    /// After malformed input it returns nothing more.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<(u16, u16)> {
        let mut sizes = Vec::new();
        if self.failed {
            return sizes;
        }
        self.pending.extend_from_slice(bytes);
        let mut stream =
            serde_json::Deserializer::from_slice(&self.pending).into_iter::<TerminalSize>();
        loop {
            match stream.next() {
                Some(Ok(size)) => sizes.push((size.width, size.height)),
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "malformed resize stream; ignoring later resizes");
                    self.fail();
                    return sizes;
                }
                None => break,
            }
        }
        let consumed = stream.byte_offset();
        self.pending.drain(..consumed);
        if self.pending.len() > MAX_PENDING {
            tracing::debug!("resize object too long; ignoring later resizes");
            self.fail();
        }
        sizes
    }

    fn fail(&mut self) {
        self.failed = true;
        self.pending = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_split_and_joined_anyhow() {
        let mut d = ResizeDecoder::default();
        assert_eq!(
            d.feed(b"{\"Width\":80,\"Height\":24}\n{\"Width\":1"),
            [(80, 24)]
        );
        assert_eq!(d.feed(b"00,\"Heig"), []);
        assert_eq!(
            d.feed(b"ht\":30}\n{\"width\":0,\"height\":0}\n"),
            [(100, 30), (0, 0)]
        );
    }

    #[test]
    fn garbage_stops_decoding() {
        let mut d = ResizeDecoder::default();
        assert_eq!(d.feed(b"{\"Width\":-1}"), []);
        assert_eq!(d.feed(b"{\"Width\":80,\"Height\":24}"), []);
        let mut d = ResizeDecoder::default();
        assert_eq!(d.feed(&[b'['; 10]), []);
        let mut d = ResizeDecoder::default();
        let mut long = b"{\"Width\":\"".to_vec();
        long.extend(std::iter::repeat_n(b'a', 5000));
        assert_eq!(d.feed(&long), []);
        assert!(d.failed && d.pending.is_empty());
    }
}
