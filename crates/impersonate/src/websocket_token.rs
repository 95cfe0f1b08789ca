//! Bearer tokens carried in `Sec-WebSocket-Protocol`.
//!
//! Browsers cannot set `Authorization` on a WebSocket, so kube-apiserver also authenticates a
//! WebSocket request by a subprotocol entry `base64url.bearer.authorization.k8s.io.<token>`
//! (apiserver `pkg/authentication/request/websocket/protocol.go`). In auth mode such an entry is a
//! caller credential like `Authorization`, and must not reach the API server; the other entries
//! (the channel protocols being negotiated) must.

use http::header::{HeaderMap, HeaderValue, SEC_WEBSOCKET_PROTOCOL};

/// The subprotocol prefix kube-apiserver reads a bearer token from. The apiserver compares it
/// case-sensitively; it is removed here in any letter case, so nothing close to it passes.
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// True for a subprotocol entry that carries a bearer token (any letter case, surrounding spaces
/// ignored).
pub fn is_bearer_subprotocol(entry: &str) -> bool {
    let entry = entry.trim().as_bytes();
    entry.len() >= BEARER_SUBPROTOCOL_PREFIX.len()
        && entry[..BEARER_SUBPROTOCOL_PREFIX.len()]
            .eq_ignore_ascii_case(BEARER_SUBPROTOCOL_PREFIX.as_bytes())
}

/// Removes every bearer-token entry from every `Sec-WebSocket-Protocol` line, keeping the other
/// entries in order; a line left empty is dropped. A line that is not visible ASCII is dropped
/// whole: it cannot be split safely, and no channel protocol needs it.
pub(crate) fn strip_bearer_subprotocols(headers: &mut HeaderMap) {
    let lines: Vec<HeaderValue> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .cloned()
        .collect();
    let needs_work = lines.iter().any(|line| {
        line.to_str()
            .map_or(true, |text| text.split(',').any(is_bearer_subprotocol))
    });
    if !needs_work {
        return;
    }
    headers.remove(SEC_WEBSOCKET_PROTOCOL);
    for line in lines {
        let Ok(text) = line.to_str() else { continue };
        let kept: Vec<&str> = text
            .split(',')
            .filter(|entry| !is_bearer_subprotocol(entry))
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        if kept.is_empty() {
            continue;
        }
        if let Ok(value) = HeaderValue::from_str(&kept.join(", ")) {
            headers.append(SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn protocols(lines: &[&str]) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(SEC_WEBSOCKET_PROTOCOL, line.parse().unwrap());
        }
        strip_bearer_subprotocols(&mut headers);
        headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn token_entries_go_and_the_others_stay() {
        assert_eq!(
            protocols(&["v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.dG9rZW4, v4.channel.k8s.io"]),
            ["v5.channel.k8s.io, v4.channel.k8s.io"]
        );
        assert_eq!(
            protocols(&[
                "BASE64URL.Bearer.authorization.k8s.io.dG9rZW4",
                "v5.channel.k8s.io"
            ]),
            ["v5.channel.k8s.io"]
        );
        assert_eq!(protocols(&["v5.channel.k8s.io"]), ["v5.channel.k8s.io"]);
        assert!(protocols(&[" base64url.bearer.authorization.k8s.io.x "]).is_empty());
    }
}
