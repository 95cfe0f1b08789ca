//! A client's header blocks read the way the kubelet's SPDY stack reads them.
//!
//! spdystream (`spdy/read.go`, `parseHeaderValueBlock`, v0.5.0) lowercases each name, splits each
//! value on NUL and `Add`s every piece to a Go `http.Header`, which canonicalises the name. A name
//! that was not lowercase (`UnlowercasedHeaderName`) or that comes twice (`DuplicateHeaders`) is
//! still returned as an error, and `readSynStreamFrame`, `readSynReplyFrame` and
//! `readHeadersFrame` pass it on, so `ReadFrame` fails and `Connection.Serve` stops reading the
//! connection. So do the headers a frame may not carry (`invalidReqHeaders`,
//! `invalidRespHeaders` in `spdy/types.go`). The kubelet then reads a stream's headers with
//! `stream.Headers().Get(...)`: the first value of the first pair of that name (its role from
//! `streamType`; port-forward's `port` and `requestID` the same way).
//!
//! Shared by exec/attach (`remotecommand::spdy`) and port-forward (`portforward`).

use spdyframe::{ControlFrame, HeaderBlock, HeaderInflater};

/// `invalidReqHeaders`: refused in a SYN_STREAM (and in HEADERS on an even stream).
pub(crate) const INVALID_REQUEST_HEADERS: &[&str] = &[
    "connection",
    "host",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// `invalidRespHeaders`: refused in a SYN_REPLY (and in HEADERS on an odd stream).
pub(crate) const INVALID_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
];

/// Why spdystream would refuse the frame carrying `block` (and stop reading the connection), or
/// `None` when it reads it. `forbidden` lists the lowercase names the frame may not carry.
pub(crate) fn refusal(block: &HeaderBlock, forbidden: &[&str]) -> Option<String> {
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

/// Header `name` (lowercase) as the kubelet reads it from a block spdystream accepted: the first
/// NUL-separated piece of the value (`strings.Split(value, "\x00")`, then `Header.Get`), so
/// `"stdout\0anything"` is `stdout`; empty when absent.
pub(crate) fn first_value<'a>(block: &'a HeaderBlock, name: &str) -> &'a str {
    block
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.split_once('\0').map_or(value, |(first, _)| first))
        .unwrap_or_default()
}

/// The stream's `streamtype` (see [`first_value`]).
pub(crate) fn stream_type(block: &HeaderBlock) -> &str {
    first_value(block, "streamtype")
}

/// Inflates the header block a control frame carries, if any, and checks it as spdystream's
/// reader does. Every block goes through the one inflater of the client's direction, in order
/// (empty ones and HEADERS too). An error means spdystream stops reading the connection.
pub(crate) fn read_block(
    inflater: &mut HeaderInflater,
    frame: &ControlFrame<'_>,
) -> Result<Option<HeaderBlock>, String> {
    let Some(block) = frame.header_block() else {
        return Ok(None);
    };
    let headers = inflater.inflate(block).map_err(|e| e.to_string())?;
    let forbidden = match frame {
        ControlFrame::SynStream { .. } => INVALID_REQUEST_HEADERS,
        ControlFrame::Headers { stream_id, .. } if stream_id.get() % 2 == 0 => {
            INVALID_REQUEST_HEADERS
        }
        _ => INVALID_RESPONSE_HEADERS,
    };
    match refusal(&headers, forbidden) {
        Some(why) => Err(why),
        None => Ok(Some(headers)),
    }
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
        let pf = block(&[("port", "8080\09090"), ("requestid", "0")]);
        assert_eq!(first_value(&pf, "port"), "8080");
        assert_eq!(first_value(&pf, "requestid"), "0");
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
