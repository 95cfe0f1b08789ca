//! The HTTP side of the upgrade: which transport an exec/attach request asks for, the `101` that
//! accepts it, or the answer that refuses it (worded as the kubelet's `httpstream.Handshake` and
//! `golang.org/x/net/websocket` word them; the choices themselves are in [`super::negotiate`]).

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use sessiontap::{ChannelProtocol, RemoteCommandVersion};

use super::negotiate::{self, SpdyChoice, WebSocketChoice};
use crate::apiserver::status::Status;
use crate::apiserver::streaming::handshake::{
    bad_websocket_handshake, switching, text_error, upgrades_to, websocket_key,
};

/// The negotiated transport.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport {
    /// SPDY/3.1 with this remote command version.
    Spdy(RemoteCommandVersion),
    /// WebSocket with this channel protocol.
    WebSocket(ChannelProtocol),
}

/// The answer to an upgrade request.
pub(crate) enum Handshake {
    /// The transport, and the `101` to send.
    Accepted(Transport, Response),
    /// The refusal to send.
    Refused(Response),
}

/// Negotiates the upgrade.
pub(crate) fn handshake(method: &Method, headers: &HeaderMap) -> Handshake {
    use Handshake::{Accepted, Refused};

    if upgrades_to(headers, "websocket") {
        if method != Method::GET {
            return Refused(Status::bad_request("WebSocket upgrades must use GET").into_response());
        }
        let Some(key) = websocket_key(headers) else {
            return Refused(bad_websocket_handshake());
        };
        return match negotiate::choose_websocket_protocol(headers) {
            WebSocketChoice::NoMatch => Refused(StatusCode::FORBIDDEN.into_response()),
            WebSocketChoice::Protocol { protocol, echo } => {
                let mut pairs = vec![
                    ("upgrade", "websocket".to_owned()),
                    ("connection", "Upgrade".to_owned()),
                    ("sec-websocket-accept", negotiate::websocket_accept(key)),
                ];
                if echo {
                    pairs.push(("sec-websocket-protocol", protocol.name().to_owned()));
                }
                Accepted(Transport::WebSocket(protocol), switching(&pairs))
            }
        };
    }
    if upgrades_to(headers, "SPDY/3.1") {
        return match negotiate::choose_spdy_version(headers) {
            SpdyChoice::Version(version) => Accepted(
                Transport::Spdy(version),
                switching(&[
                    ("connection", "Upgrade".to_owned()),
                    ("upgrade", "SPDY/3.1".to_owned()),
                    (
                        negotiate::STREAM_PROTOCOL_VERSION,
                        version.name().to_owned(),
                    ),
                ]),
            ),
            SpdyChoice::NoOffer => Refused(text_error(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: X-Stream-Protocol-Version is required",
            )),
            SpdyChoice::NoMatch { offered } => {
                let mut refused = text_error(
                    StatusCode::FORBIDDEN,
                    &negotiate::spdy_no_match_message(&offered),
                );
                for version in negotiate::SPDY_VERSIONS {
                    refused.headers_mut().append(
                        negotiate::ACCEPTED_STREAM_PROTOCOL_VERSIONS,
                        HeaderValue::from_static(version.name()),
                    );
                }
                Refused(refused)
            }
        };
    }
    Refused(Status::bad_request("Upgrade request required").into_response())
}
