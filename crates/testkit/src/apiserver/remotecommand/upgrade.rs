//! The HTTP side of the upgrade: which transport an exec/attach request asks for, the `101` that
//! accepts it, or the answer that refuses it (worded as the kubelet's `httpstream.Handshake` and
//! `golang.org/x/net/websocket` word them; the choices themselves are in [`super::negotiate`]).

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use sessiontap::{ChannelProtocol, RemoteCommandVersion};

use super::negotiate::{self, SpdyChoice, WebSocketChoice};
use crate::apiserver::status::Status;

/// The negotiated transport.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport {
    /// SPDY/3.1 with this remote command version.
    Spdy(RemoteCommandVersion),
    /// WebSocket with this channel protocol.
    WebSocket(ChannelProtocol),
}

/// Whether a comma-separated `Upgrade` header names `protocol`.
fn upgrades_to(headers: &HeaderMap, protocol: &str) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(protocol))
}

/// A plain-text error, as the kubelet's `http.Error` writes it.
fn text_error(code: StatusCode, message: &str) -> Response {
    let mut response = (code, format!("{message}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
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

    let switching = |pairs: &[(&'static str, String)]| {
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                response.headers_mut().append(*name, value);
            }
        }
        response
    };
    if upgrades_to(headers, "websocket") {
        if method != Method::GET {
            return Refused(Status::bad_request("WebSocket upgrades must use GET").into_response());
        }
        let key = headers
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.trim().is_empty());
        let version = headers
            .get("sec-websocket-version")
            .and_then(|v| v.to_str().ok());
        let (Some(key), Some("13")) = (key, version.map(str::trim)) else {
            let mut refused = text_error(
                StatusCode::BAD_REQUEST,
                "websocket: missing or unsupported Sec-WebSocket-Key / Sec-WebSocket-Version",
            );
            refused
                .headers_mut()
                .insert("sec-websocket-version", HeaderValue::from_static("13"));
            return Refused(refused);
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
