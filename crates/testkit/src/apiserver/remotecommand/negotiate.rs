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
//! - `Sec-WebSocket-Accept` and the rest of the HTTP side are shared with port-forward
//!   ([`crate::apiserver::streaming::handshake`]).

use http::HeaderMap;
use sessiontap::{ChannelProtocol, RemoteCommandVersion};

use crate::apiserver::streaming::handshake::{offers, spdy_no_match_message as no_match};
pub(crate) use crate::apiserver::streaming::handshake::{
    websocket_accept, ACCEPTED_STREAM_PROTOCOL_VERSIONS, STREAM_PROTOCOL_VERSION,
};

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
    no_match(offered, &server)
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
}
