//! Hop-by-hop headers (RFC 9110 §7.6.1), which a proxy must not forward.
//!
//! A caller's `Connection` header names headers that belong to its connection only. Removing them
//! is right, but it must happen *before* the proxy writes headers of its own: a caller that sends
//! `Connection: close, Impersonate-User` must not be able to remove the `Impersonate-User` the
//! proxy writes, or the request would reach the API server with only the proxy's own credentials.
//! [`crate::prepare_upstream_headers`] therefore starts with this.

use http::header::{self, HeaderMap, HeaderName};

use crate::headers::retain_headers;

/// Headers that describe one connection, never the message.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
];

/// `Proxy-Connection`: not standard, but sent by old clients and honoured by some proxies.
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes the fixed hop-by-hop headers, `Proxy-Connection`, and every header the `Connection`
/// header names (all its values and lines), keeping every other header in its original order.
///
/// Call it on what a peer sent, before adding headers of your own.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    retain_headers(headers, |name| {
        !HOP_BY_HOP.contains(name) && *name != PROXY_CONNECTION && !named.contains(name)
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn removes_fixed_and_connection_named_headers_keeping_order() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, "application/json".parse().unwrap());
        headers.insert(header::CONNECTION, "keep-alive, X-Secret".parse().unwrap());
        headers.append(header::CONNECTION, "X-Other".parse().unwrap());
        headers.insert("x-secret", "1".parse().unwrap());
        headers.insert("x-other", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("proxy-connection", "keep-alive".parse().unwrap());
        headers.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        headers.insert(header::USER_AGENT, "kubectl".parse().unwrap());
        remove_hop_by_hop(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept", "user-agent"]);
    }
}
