//! Upgrading a session upstream (exec, attach, port-forward) as the caller: the caller's request
//! headers cleaned, the caller's impersonation added, the upgrade sent within
//! `--upstream-handshake-timeout`; anything but a 101 is relayed to the client as upstream
//! answered it (kubectl reads a refused WebSocket upgrade and retries over SPDY).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use url::Url;

use crate::app::App;
use crate::identity::Caller;
use crate::metrics::Refusal;
use crate::status::KubeStatus;
use crate::upstream::UpstreamHeaders;

/// Why a session never started upstream, with the answer for the client.
pub(crate) struct NotUpgraded {
    /// What the client gets.
    pub(crate) response: Response,
    /// Why, for the session's recording or audit.
    pub(crate) why: &'static str,
}

/// Sends the upgrade request (`method`, the caller's `headers`) to `url` as `caller`; the
/// upstream's 101, or why there is none.
pub(crate) async fn upgrade_upstream(
    app: &App,
    caller: &Caller,
    method: Method,
    headers: &HeaderMap,
    url: Url,
) -> Result<reqwest::Response, NotUpgraded> {
    let upgrade = headers
        .get(header::UPGRADE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("websocket"));
    let headers =
        UpstreamHeaders::from_caller(headers.clone(), app.mode, &caller.policy.impersonation)
            .map_err(|error| {
                app.metrics.request_refused(Refusal::Policy);
                NotUpgraded {
                    response: KubeStatus::forbidden(format!(
                        "cannot impersonate the caller: {error}"
                    ))
                    .into_response(),
                    why: "the caller could not be impersonated",
                }
            })?;
    let upstream = app
        .upstream
        .send_upgrade(
            method,
            url,
            headers,
            upgrade,
            app.upstream_handshake_timeout,
        )
        .await
        .map_err(|error| {
            app.metrics.request_refused(Refusal::UpstreamUnreachable);
            NotUpgraded {
                response: KubeStatus::bad_gateway(error.to_string()).into_response(),
                why: "the upstream API server was unreachable",
            }
        })?;
    app.metrics.request_proxied();
    if upstream.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Refused upstream (e.g. 403, or a WebSocket answer kubectl retries over SPDY): relay it.
        let response: http::Response<reqwest::Body> = upstream.into();
        let (mut parts, body) = response.into_parts();
        impersonate::remove_hop_by_hop(&mut parts.headers);
        return Err(NotUpgraded {
            response: Response::from_parts(parts, Body::new(body)),
            why: "the upstream API server refused the session",
        });
    }
    Ok(upstream)
}
