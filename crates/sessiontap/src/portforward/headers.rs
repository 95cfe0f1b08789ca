//! The headers of a port-forward stream, read as the kubelet reads them.
//!
//! moby/spdystream splits each header value on NUL and adds every piece to a Go `http.Header`
//! (canonical keys, so names match in any letter case); the kubelet reads
//! `Headers().Get(name)`: the first piece of the first value. `httpStreamReceived`
//! (`pkg/kubelet/cri/streaming/portforward/httpstream.go`) resets a stream whose `port` is not
//! `strconv.ParseUint(s, 10, 16)` of at least 1 or whose `streamType` is neither `error` nor
//! `data`; `httpStreamHandler.requestID` pairs streams by `requestID`.

use spdyframe::{HeaderBlock, StreamId};

use super::error::PortForwardStreamError;

/// The two kinds of stream of a forwarded connection (apimachinery `StreamTypeError`,
/// `StreamTypeData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StreamType {
    Error,
    Data,
}

impl StreamType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            StreamType::Error => "error",
            StreamType::Data => "data",
        }
    }
}

/// What a client SYN_STREAM says about its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamHeaders {
    pub(crate) stream_type: StreamType,
    pub(crate) port: u16,
    pub(crate) request_id: String,
}

/// The first NUL-separated piece of the first value of `name` (any letter case), as Go's
/// `Header.Get` over spdystream's header map; `None` when absent or empty.
fn first<'a>(headers: &'a HeaderBlock, name: &'a str) -> Option<&'a str> {
    headers
        .values(name)
        .next()
        .filter(|value| !value.is_empty())
}

/// At most 64 bytes of a value, for an error message.
fn shown(value: &str) -> String {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

/// `strconv.ParseUint(value, 10, 16)`, then `> 0`.
fn parse_port(value: &str) -> Option<u16> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = value.trim_start_matches('0');
    if digits.len() > 5 {
        return None;
    }
    let port = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()?
    };
    u16::try_from(port).ok().filter(|port| *port >= 1)
}

impl StreamHeaders {
    /// Reads a client SYN_STREAM's headers, refusing what the kubelet refuses (and a missing
    /// or overlong `requestid`).
    pub(crate) fn read(
        stream_id: StreamId,
        headers: &HeaderBlock,
        max_request_id: usize,
    ) -> Result<StreamHeaders, PortForwardStreamError> {
        let missing = |header| PortForwardStreamError::MissingHeader { stream_id, header };
        let port = first(headers, "port").ok_or_else(|| missing("port"))?;
        let port = parse_port(port).ok_or_else(|| PortForwardStreamError::InvalidPort {
            stream_id,
            value: shown(port),
        })?;
        let stream_type = first(headers, "streamtype").ok_or_else(|| missing("streamtype"))?;
        let stream_type = match stream_type {
            "error" => StreamType::Error,
            "data" => StreamType::Data,
            other => {
                return Err(PortForwardStreamError::InvalidStreamType {
                    stream_id,
                    value: shown(other),
                })
            }
        };
        let request_id = first(headers, "requestid").ok_or_else(|| missing("requestid"))?;
        if request_id.len() > max_request_id {
            return Err(PortForwardStreamError::RequestIdTooLong {
                stream_id,
                len: request_id.len(),
                max: max_request_id,
            });
        }
        Ok(StreamHeaders {
            stream_type,
            port,
            request_id: request_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> StreamId {
        StreamId::new(n).expect("31-bit id")
    }

    fn read(pairs: &[(&str, &str)]) -> Result<StreamHeaders, PortForwardStreamError> {
        StreamHeaders::read(id(1), &pairs.iter().copied().collect(), 64)
    }

    #[test]
    fn ports_as_parse_uint_reads_them() {
        for (value, port) in [
            ("80", Some(80)),
            ("0080", Some(80)),
            ("65535", Some(65535)),
            ("000000000001", Some(1)),
            ("0", None),
            ("65536", None),
            ("+80", None),
            ("8_0", None),
            (" 80", None),
            ("0x50", None),
            ("99999999999999999999", None),
        ] {
            assert_eq!(parse_port(value), port, "{value:?}");
        }
    }

    #[test]
    fn first_value_in_any_letter_case() {
        let headers = read(&[
            ("StreamType", "data\0error"),
            ("port", "8080\0x1"),
            ("requestid", "7"),
            ("requestid", "8"),
        ])
        .expect("valid");
        assert_eq!(
            headers,
            StreamHeaders {
                stream_type: StreamType::Data,
                port: 8080,
                request_id: "7".into()
            }
        );
    }

    #[test]
    fn what_the_kubelet_refuses() {
        assert_eq!(
            read(&[("streamtype", "data"), ("requestid", "0")]),
            Err(PortForwardStreamError::MissingHeader {
                stream_id: id(1),
                header: "port"
            })
        );
        assert_eq!(
            read(&[("port", "\080"), ("streamtype", "data"), ("requestid", "0")]),
            Err(PortForwardStreamError::MissingHeader {
                stream_id: id(1),
                header: "port"
            })
        );
        assert!(matches!(
            read(&[("port", "80"), ("streamtype", "Data"), ("requestid", "0")]),
            Err(PortForwardStreamError::InvalidStreamType { .. })
        ));
        assert!(matches!(
            read(&[("port", "80"), ("streamtype", "data")]),
            Err(PortForwardStreamError::MissingHeader {
                header: "requestid",
                ..
            })
        ));
        let long = "1".repeat(65);
        assert!(matches!(
            read(&[("port", "80"), ("streamtype", "data"), ("requestid", &long)]),
            Err(PortForwardStreamError::RequestIdTooLong { len: 65, .. })
        ));
    }
}
