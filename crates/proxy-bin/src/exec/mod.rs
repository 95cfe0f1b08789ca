//! The exec/attach route: `kubectl exec` and `kubectl attach` upgrade their connection (SPDY/3.1 over
//! `POST`, WebSocket over `GET`), which the proxy upgrades upstream too and then splices.
//!
//! Order of work (each step before any upstream I/O of the next): identity -> policy (a caller whose
//! grant demands recording but names no recorder is refused here) -> upgrade upstream with
//! impersonation -> answer the client's upgrade with the upstream's 101 and its negotiated protocol
//! headers -> splice both directions.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use crate::app::App;
use crate::forward::{authorize, forward};
use crate::hop_by_hop::remove_hop_by_hop;
use crate::identity::ConnectionContext;
use crate::metrics::Refusal;
use crate::status::KubeStatus;

/// The two streaming protocols kubectl speaks for exec and attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamProtocol {
    /// SPDY/3.1 (`POST` with `Upgrade: SPDY/3.1`).
    Spdy,
    /// WebSocket (`GET` with `Upgrade: websocket`), kubectl's default since 1.30.
    WebSocket,
}

/// Which upgrade a request asks for, if any, checking that it matches the method: SPDY upgrades are
/// `POST`s and WebSocket upgrades `GET`s (client-go `remotecommand`). A mismatch is refused rather than
/// guessed at, since the session could not be read.
pub(crate) fn requested_upgrade(
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<StreamProtocol>, String> {
    let Some(upgrade) = headers.get(header::UPGRADE) else {
        return Ok(None);
    };
    let upgrade = upgrade.to_str().unwrap_or_default().trim();
    let protocol = if upgrade.eq_ignore_ascii_case("websocket") {
        StreamProtocol::WebSocket
    } else if upgrade
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("spdy/"))
    {
        StreamProtocol::Spdy
    } else {
        return Err(format!("unsupported upgrade protocol {upgrade:?}"));
    };
    match (protocol, method) {
        (StreamProtocol::Spdy, &Method::POST) | (StreamProtocol::WebSocket, &Method::GET) => {
            Ok(Some(protocol))
        }
        _ => Err(format!(
            "a {upgrade} upgrade must not be a {method} request (SPDY uses POST, WebSocket GET)"
        )),
    }
}

/// Handles `/api/v1/namespaces/{ns}/pods/{pod}/exec` and `/attach`.
pub(crate) async fn exec_or_attach(
    State(app): State<Arc<App>>,
    Extension(connection): Extension<Arc<ConnectionContext>>,
    mut request: Request,
) -> Response {
    let protocol = match requested_upgrade(request.method(), request.headers()) {
        // Not an upgrade: upstream answers it like any other request (usually 400).
        Ok(None) => {
            return forward(State(app), Extension(connection), request).await;
        }
        Ok(Some(protocol)) => protocol,
        Err(reason) => {
            return KubeStatus::bad_request(reason).response_for(request.uri().path());
        }
    };
    let caller = match authorize(&app, &connection) {
        Ok(caller) => caller,
        Err(refusal) => return refusal.response_for(request.uri().path()),
    };
    let recording = &caller.policy.recording;
    if recording.refuses_unrecorded() {
        app.metrics.request_refused(Refusal::Policy);
        return KubeStatus::forbidden(
            "the caller's grant requires session recording (enforceRecorder) but names no recorder",
        )
        .into_response();
    }
    if recording.is_recorded() {
        // Session recording is not wired in yet: a grant that asks for it fails closed, or goes on
        // unrecorded when it allows that, exactly as with every recorder unreachable.
        if !recording.fail_open {
            app.metrics.request_refused(Refusal::Policy);
            return KubeStatus::forbidden(
                "the caller's grant requires session recording, which this proxy cannot do yet",
            )
            .into_response();
        }
        tracing::warn!(
            caller = caller.display_name(),
            "session not recorded: recording not available (grant allows unrecorded sessions)"
        );
    }

    let mut headers = request.headers().clone();
    if let Err(error) =
        impersonate::prepare_upstream_headers(&mut headers, app.mode, &caller.policy.impersonation)
    {
        app.metrics.request_refused(Refusal::Policy);
        return KubeStatus::forbidden(format!("cannot impersonate the caller: {error}"))
            .into_response();
    }
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("websocket"));
    let upstream = match app
        .upstream
        .send_upgrade(request.method().clone(), request.uri(), headers, upgrade)
        .await
    {
        Ok(response) => response,
        Err(error) => {
            app.metrics.request_refused(Refusal::UpstreamUnreachable);
            return KubeStatus::bad_gateway(error.to_string()).into_response();
        }
    };
    if upstream.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Refused upstream (e.g. 403, or a WebSocket answer kubectl will retry over SPDY): relay as is.
        app.metrics.request_proxied();
        let response: http::Response<reqwest::Body> = upstream.into();
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        return Response::from_parts(parts, Body::new(body));
    }
    app.metrics.request_proxied();
    let mut reply = Response::new(Body::empty());
    *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    // The 101 carries what upstream negotiated: Upgrade/Connection, Sec-WebSocket-Accept and
    // -Protocol, X-Stream-Protocol-Version. Forward all of it.
    *reply.headers_mut() = upstream.headers().clone();
    let client_upgrade = hyper::upgrade::on(&mut request);
    let name = caller.display_name().to_string();
    tokio::spawn(async move {
        let upstream_io = match upstream.upgrade().await {
            Ok(io) => io,
            Err(error) => {
                tracing::warn!(caller = name, %error, "upstream upgrade failed");
                return;
            }
        };
        let client_io = match client_upgrade.await {
            Ok(io) => io,
            Err(error) => {
                tracing::warn!(caller = name, %error, "client upgrade failed");
                return;
            }
        };
        let mut client_io = hyper_util::rt::TokioIo::new(client_io);
        let mut upstream_io = upstream_io;
        match tokio::io::copy_bidirectional(&mut client_io, &mut upstream_io).await {
            Ok((up, down)) => {
                tracing::debug!(caller = name, ?protocol, up, down, "session ended")
            }
            Err(error) => tracing::debug!(caller = name, %error, "session ended with an error"),
        }
    });
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(upgrade: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::UPGRADE, upgrade.parse().expect("value"));
        map
    }

    #[test]
    fn upgrade_must_match_the_method() {
        assert_eq!(
            requested_upgrade(&Method::POST, &headers("SPDY/3.1")),
            Ok(Some(StreamProtocol::Spdy))
        );
        assert_eq!(
            requested_upgrade(&Method::GET, &headers("websocket")),
            Ok(Some(StreamProtocol::WebSocket))
        );
        assert!(requested_upgrade(&Method::GET, &headers("SPDY/3.1")).is_err());
        assert!(requested_upgrade(&Method::POST, &headers("websocket")).is_err());
        assert!(requested_upgrade(&Method::GET, &headers("h2c")).is_err());
        assert_eq!(
            requested_upgrade(&Method::POST, &HeaderMap::new()),
            Ok(None)
        );
    }
}
