//! Choosing the protocol of an exec/attach upgrade, as the kubelet's streaming server does.
//!
//! - SPDY: `httpstream.Handshake` (apimachinery `pkg/util/httpstream/httpstream.go`): the client's
//!   `X-Stream-Protocol-Version` offers (several header lines, each possibly comma-separated) are
//!   tried in the client's order against the server's list; the kubelet's list is
//!   v4, v3, v2, v1 (`remotecommand.SupportedStreamingProtocols`), so kubectl, which offers
//!   v5 first, gets `v4.channel.k8s.io`. No offer at all is `400`; no match is `403` with one
//!   `X-Accepted-Stream-Protocol-Versions` line per server version.
//! - WebSocket: the offers of `Sec-WebSocket-Protocol` are matched in the server's preference
//!   order (v5, v4, v4.base64, base64, channel); no offer is served as `channel.k8s.io`
//!   (wsstream registers `""` as binary v1); offers none of which match get `403 Forbidden` with
//!   an empty body, as `golang.org/x/net/websocket` answers a failed handshake, which kubectl
//!   reads as an upgrade failure and retries over SPDY.
//! - `Sec-WebSocket-Accept` is RFC 6455 section 4.2.2: base64 of the SHA-1 of the key and the
//!   protocol's GUID.

use base64::Engine as _;
use http::HeaderMap;
use sessiontap::{ChannelProtocol, RemoteCommandVersion};

use super::sha1::sha1;

/// `X-Stream-Protocol-Version`: the client's offers and the server's choice.
pub(crate) const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";
/// The server's versions, sent when none of the client's offers matched.
pub(crate) const ACCEPTED_STREAM_PROTOCOL_VERSIONS: &str = "x-accepted-stream-protocol-versions";

/// The kubelet's SPDY versions (`SupportedStreamingProtocols`), in its order.
pub(crate) const SPDY_VERSIONS: [RemoteCommandVersion; 4] = [
    RemoteCommandVersion::V4,
    RemoteCommandVersion::V3,
    RemoteCommandVersion::V2,
    RemoteCommandVersion::V1,
];

/// The WebSocket subprotocols served, most preferred first.
pub(crate) const WEBSOCKET_PREFERENCE: [ChannelProtocol; 5] = [
    ChannelProtocol::V5,
    ChannelProtocol::V4,
    ChannelProtocol::V4Base64,
    ChannelProtocol::Base64,
    ChannelProtocol::Channel,
];

/// The GUID of RFC 6455 section 1.3, appended to the key before hashing.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The outcome of SPDY version negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpdyChoice {
    /// Serve this version.
    Version(RemoteCommandVersion),
    /// The request offered no version (`400`).
    NoOffer,
    /// The request offered only versions the server does not speak (`403`).
    NoMatch {
        /// The client's offers, for the error message.
        offered: Vec<String>,
    },
}

/// Every value of header `name`, split at commas and trimmed, empty ones dropped.
fn offers(headers: &HeaderMap, name: &str) -> Vec<String> {
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

/// Chooses the SPDY remote command version for a request.
pub(crate) fn choose_spdy_version(headers: &HeaderMap) -> SpdyChoice {
    let offered = offers(headers, STREAM_PROTOCOL_VERSION);
    if offered.is_empty() {
        return SpdyChoice::NoOffer;
    }
    let chosen = offered.iter().find_map(|offer| {
        SPDY_VERSIONS
            .iter()
            .copied()
            .find(|version| version.name() == offer)
    });
    match chosen {
        Some(version) => SpdyChoice::Version(version),
        None => SpdyChoice::NoMatch { offered },
    }
}

/// The message of the `403` for [`SpdyChoice::NoMatch`], worded as `httpstream.Handshake`'s.
pub(crate) fn spdy_no_match_message(offered: &[String]) -> String {
    let server: Vec<&str> = SPDY_VERSIONS.iter().map(|v| v.name()).collect();
    format!(
        "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
        offered.join(" "),
        server.join(" ")
    )
}

/// The outcome of WebSocket subprotocol negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebSocketChoice {
    /// Serve `protocol`; `echo` says whether the 101 names it (not when none was offered).
    Protocol {
        /// The channel protocol in force.
        protocol: ChannelProtocol,
        /// Whether to send `Sec-WebSocket-Protocol` in the 101.
        echo: bool,
    },
    /// None of the offers is served (`403`).
    NoMatch,
}

/// Chooses the WebSocket subprotocol for a request.
pub(crate) fn choose_websocket_protocol(headers: &HeaderMap) -> WebSocketChoice {
    let offered = offers(headers, "sec-websocket-protocol");
    if offered.is_empty() {
        return WebSocketChoice::Protocol {
            protocol: ChannelProtocol::Channel,
            echo: false,
        };
    }
    WEBSOCKET_PREFERENCE
        .iter()
        .copied()
        .find(|protocol| offered.iter().any(|offer| offer == protocol.name()))
        .map_or(WebSocketChoice::NoMatch, |protocol| {
            WebSocketChoice::Protocol {
                protocol,
                echo: true,
            }
        })
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub(crate) fn websocket_accept(key: &str) -> String {
    let mut input = String::with_capacity(key.len() + WEBSOCKET_GUID.len());
    input.push_str(key.trim());
    input.push_str(WEBSOCKET_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1(input.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn spdy_prefers_the_clients_order_among_the_kubelets_versions() {
        // kubectl 1.32 sends one header line per version.
        let kubectl = headers(
            STREAM_PROTOCOL_VERSION,
            &[
                "v5.channel.k8s.io",
                "v4.channel.k8s.io",
                "v3.channel.k8s.io",
                "v2.channel.k8s.io",
                "channel.k8s.io",
            ],
        );
        assert_eq!(
            choose_spdy_version(&kubectl),
            SpdyChoice::Version(RemoteCommandVersion::V4)
        );
        let old = headers(
            STREAM_PROTOCOL_VERSION,
            &["v2.channel.k8s.io, channel.k8s.io"],
        );
        assert_eq!(
            choose_spdy_version(&old),
            SpdyChoice::Version(RemoteCommandVersion::V2)
        );
        assert_eq!(choose_spdy_version(&HeaderMap::new()), SpdyChoice::NoOffer);
        let v5_only = headers(STREAM_PROTOCOL_VERSION, &["v5.channel.k8s.io"]);
        let SpdyChoice::NoMatch { offered } = choose_spdy_version(&v5_only) else {
            panic!("v5 alone is not served over SPDY");
        };
        assert_eq!(
            spdy_no_match_message(&offered),
            "unable to upgrade: unable to negotiate protocol: client supports [v5.channel.k8s.io], \
             server accepts [v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]"
        );
    }

    #[test]
    fn websocket_uses_the_servers_preference() {
        let choice = |values: &[&'static str]| {
            choose_websocket_protocol(&headers("sec-websocket-protocol", values))
        };
        let served = |protocol| WebSocketChoice::Protocol {
            protocol,
            echo: true,
        };
        assert_eq!(choice(&["v5.channel.k8s.io"]), served(ChannelProtocol::V5));
        assert_eq!(
            choice(&["channel.k8s.io, v4.channel.k8s.io"]),
            served(ChannelProtocol::V4)
        );
        assert_eq!(
            choice(&["base64.channel.k8s.io", "v4.base64.channel.k8s.io"]),
            served(ChannelProtocol::V4Base64)
        );
        assert_eq!(
            choice(&["base64.channel.k8s.io"]),
            served(ChannelProtocol::Base64)
        );
        assert_eq!(
            choice(&["SPDY/3.1+portforward.k8s.io", "channel.k8s.io"]),
            served(ChannelProtocol::Channel)
        );
        assert_eq!(choice(&["v6.channel.k8s.io"]), WebSocketChoice::NoMatch);
        assert_eq!(
            choice(&[]),
            WebSocketChoice::Protocol {
                protocol: ChannelProtocol::Channel,
                echo: false
            }
        );
    }

    #[test]
    fn accept_key_matches_rfc_6455() {
        // RFC 6455 section 1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
