//! A client's header blocks read the way the kubelet's SPDY stack reads them.
//!
//! spdystream (`spdy/read.go`, `parseHeaderValueBlock`, v0.5.0) lowercases each name, splits each
//! value on NUL and `Add`s every piece to a Go `http.Header`, which canonicalises the name. A name
//! that was not lowercase (`UnlowercasedHeaderName`) or that comes twice (`DuplicateHeaders`) is
//! still returned as an error, and `readSynStreamFrame`, `readSynReplyFrame` and
//! `readHeadersFrame` pass it on, so `ReadFrame` fails and `Connection.Serve` stops reading the
//! connection. So do the headers a frame may not carry (`invalidReqHeaders`,
//! `invalidRespHeaders` in `spdy/types.go`). The kubelet then takes a stream's role from
//! `stream.Headers().Get("streamType")`: the first value of the first `streamtype` pair.

use spdyframe::HeaderBlock;

/// `invalidReqHeaders`: refused in a SYN_STREAM (and in HEADERS on an even stream).
pub(super) const INVALID_REQUEST_HEADERS: &[&str] = &[
    "connection",
    "host",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// `invalidRespHeaders`: refused in a SYN_REPLY (and in HEADERS on an odd stream).
pub(super) const INVALID_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// Why spdystream would refuse the frame carrying `block` (and stop reading the connection), or
/// `None` when it reads it. `forbidden` lists the lowercase names the frame may not carry.
pub(super) fn refusal(block: &HeaderBlock, forbidden: &[&str]) -> Option<String> {
    let mut seen: Vec<String> = Vec::with_capacity(block.len());
    for (name, _) in block.iter() {
        // Go's strings.ToLower, which is Unicode-aware like str::to_lowercase.
        let lower = name.to_lowercase();
        if lower != name {
            return Some(format!("header name {name:?} is not lowercase"));
        }
        if seen.contains(&lower) {
            return Some(format!("header {name:?} appears twice"));
        }
        if forbidden.contains(&lower.as_str()) {
            return Some(format!("header {name:?} is not allowed in this frame"));
        }
        seen.push(lower);
    }
    None
}

/// The stream's `streamtype` as the kubelet reads it from a block spdystream accepted: the first
/// NUL-separated piece of the value (`strings.Split(value, "\x00")`, then `Header.Get`), so
/// `"stdout\0anything"` is `stdout`.
pub(super) fn stream_type(block: &HeaderBlock) -> &str {
    block
        .iter()
        .find(|(name, _)| *name == "streamtype")
        .map(|(_, value)| value.split_once('\0').map_or(value, |(first, _)| first))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(pairs: &[(&str, &str)]) -> HeaderBlock {
        pairs.iter().copied().collect()
    }

    #[test]
    fn the_first_nul_separated_value_is_the_stream_type() {
        assert_eq!(stream_type(&block(&[("streamtype", "stdout")])), "stdout");
        assert_eq!(stream_type(&block(&[("streamtype", "stdout\0")])), "stdout");
        assert_eq!(
            stream_type(&block(&[("streamtype", "stdout\0stdin")])),
            "stdout"
        );
        assert_eq!(stream_type(&block(&[("streamtype", "\0stdout")])), "");
        assert_eq!(stream_type(&block(&[("x", "y")])), "");
    }

    #[test]
    fn blocks_spdystream_refuses() {
        let request = INVALID_REQUEST_HEADERS;
        assert_eq!(refusal(&block(&[("streamtype", "stdout")]), request), None);
        for bad in [
            block(&[("StreamType", "stdout")]),
            block(&[("streamtype", "stdin"), ("streamtype", "stdout")]),
            block(&[("host", "x"), ("streamtype", "stdout")]),
        ] {
            assert!(refusal(&bad, request).is_some(), "{bad:?}");
        }
        assert_eq!(
            refusal(&block(&[("host", "x")]), INVALID_RESPONSE_HEADERS),
            None
        );
    }
}
