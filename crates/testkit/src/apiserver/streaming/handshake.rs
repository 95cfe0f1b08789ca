//! The HTTP side of an upgrade, shared by exec/attach and port-forward: reading the `Upgrade`
//! header and the protocol offers, the `101` that accepts, the plain-text refusals the kubelet's
//! `http.Error` writes, and the WebSocket handshake's key check and `Sec-WebSocket-Accept`
//! (RFC 6455 section 4.2.2: base64 of the SHA-1 of the key and the protocol's GUID).

use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use super::sha1::sha1;

/// `X-Stream-Protocol-Version`: the client's offers and the server's choice.
pub(crate) const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// The server's versions, sent when none of the client's offers matched.
pub(crate) const ACCEPTED_STREAM_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";

/// The GUID of RFC 6455 section 1.3, appended to the key before hashing.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether a comma-separated `Upgrade` header names `protocol`.
pub(crate) fn upgrades_to(headers: &HeaderMap, protocol: &str) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(protocol))
}

/// Every value of header `name`, split at commas and trimmed, empty ones dropped.
pub(crate) fn offers(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A plain-text error, as the kubelet's `http.Error` writes it.
pub(crate) fn text_error(code: StatusCode, message: &str) -> Response {
    let mut response = (code, format!("{message}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `101 Switching Protocols` with these headers.
pub(crate) fn switching(pairs: &[(&'static str, String)]) -> Response {
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().append(*name, value);
        }
    }
    response
}

/// The request's `Sec-WebSocket-Key`, if the handshake has one and asks for version 13 (else
/// answer [`bad_websocket_handshake`]).
pub(crate) fn websocket_key(headers: &HeaderMap) -> Option<&str> {
    let key = headers
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.trim().is_empty());
    let version = headers
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok());
    match (key, version.map(str::trim)) {
        (Some(key), Some("13")) => Some(key),
        _ => None,
    }
}

/// The `400` refusing a handshake without a key or with a version other than 13.
pub(crate) fn bad_websocket_handshake() -> Response {
    let mut refused = text_error(
        StatusCode::BAD_REQUEST,
        "websocket: missing or unsupported Sec-WebSocket-Key / Sec-WebSocket-Version",
    );
    refused
        .headers_mut()
        .insert("sec-websocket-version", HeaderValue::from_static("13"));
    refused
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub(crate) fn websocket_accept(key: &str) -> String {
    let mut input = String::with_capacity(key.len() + WEBSOCKET_GUID.len());
    input.push_str(key.trim());
    input.push_str(WEBSOCKET_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1(input.as_bytes()))
}

/// The message of `httpstream.Handshake`'s `403` when none of the client's SPDY protocol offers
/// is one of the server's (Go's `%v` of the two string slices).
pub(crate) fn spdy_no_match_message(offered: &[String], server: &[&str]) -> String {
    format!(
        "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
        offered.join(" "),
        server.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455() {
        // RFC 6455 section 1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn upgrade_and_offers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("foo, SPDY/3.1"));
        headers.append("x", HeaderValue::from_static("a, b"));
        headers.append("x", HeaderValue::from_static(" ,c"));
        assert!(upgrades_to(&headers, "spdy/3.1"));
        assert!(!upgrades_to(&headers, "websocket"));
        assert_eq!(offers(&headers, "x"), ["a", "b", "c"]);
    }
}
