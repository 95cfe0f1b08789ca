//! The default route: every request that is not exec/attach is forwarded upstream as it arrives,
//! bodies streamed both ways (watches, `logs -f` and large lists never sit in memory whole).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Extension;

use crate::api_events;
use crate::app::App;
use crate::identity::{Caller, ConnectionContext};
use crate::metrics::Refusal;
use crate::node_commands::{may_name_nodes, node_command_endpoint};
use crate::status::KubeStatus;
use crate::sync_body::SyncBody;
use crate::upstream::lane::UpstreamLane;
use crate::upstream::UpstreamHeaders;

/// Forwards one request for the connection's caller, on `lane` (the client connection's own
/// upstream connection, `server.rs`) when there is one and it may take it, else on the pooled
/// client.
pub(crate) async fn forward(
    State(app): State<Arc<App>>,
    Extension(connection): Extension<Arc<ConnectionContext>>,
    lane: Option<Arc<UpstreamLane>>,
    request: Request,
) -> Response {
    let caller = match authorize(&app, &connection).await {
        Ok(caller) => caller,
        Err(refusal) => return refusal.response_for(request.uri().path()),
    };
    let (mut parts, body) = request.into_parts();
    let target = match app.upstream.target_for(&parts.uri) {
        Ok(target) => target,
        Err(error) => {
            return KubeStatus::bad_request(error.to_string()).response_for(parts.uri.path())
        }
    };
    if let Err(refusal) = refuse_unrecordable_node_command(&app, &caller, &parts) {
        return refusal.response_for(parts.uri.path());
    }
    // The event describes the request as the caller sent it, and is recorded before anything
    // reaches upstream.
    let (body, event_link) = match app
        .events
        .before_upstream(&app.metrics, &caller, &parts, body)
        .await
    {
        Ok(forwarded) => forwarded,
        Err(refusal) => return refusal.response_for(parts.uri.path()),
    };
    let headers = match UpstreamHeaders::from_caller(
        std::mem::take(&mut parts.headers),
        app.mode,
        &caller.policy.impersonation,
    ) {
        Ok(headers) => headers,
        Err(error) => {
            app.metrics.request_refused(Refusal::Policy);
            return KubeStatus::forbidden(format!("cannot impersonate the caller: {error}"))
                .response_for(parts.uri.path());
        }
    };
    tracing::debug!(
        caller = caller.display_name(),
        peer = %connection.peer,
        method = %parts.method,
        path = parts.uri.path(),
        "forwarding"
    );
    // Beyond --max-upstream-connections lanes, the shared pool.
    let lane = lane.filter(|lane| app.upstream.reserve_lane(lane));
    let sent = match &lane {
        Some(lane) => app
            .upstream
            .send_in_lane(lane, parts.method.clone(), target, headers, body)
            .await
            .map(|response| response.map(Body::new)),
        None => {
            let upstream_body = reqwest::Body::wrap(SyncBody::new(body));
            app.upstream
                .send(
                    parts.method.clone(),
                    app.upstream.url_of(&target),
                    headers,
                    upstream_body,
                )
                .await
                .map(|response| response.map(Body::new))
        }
    };
    match sent {
        Ok(response) => {
            app.metrics.request_proxied();
            let (mut parts, body) = response.into_parts();
            impersonate::remove_hop_by_hop(&mut parts.headers);
            match event_link {
                Some(link) => {
                    let body = api_events::observe_response(
                        app.events.clone(),
                        app.metrics.clone(),
                        caller,
                        link,
                        parts.status,
                        body,
                    );
                    Response::from_parts(parts, Body::new(body))
                }
                None => Response::from_parts(parts, Body::new(body)),
            }
        }
        Err(error) => {
            app.metrics.request_refused(Refusal::UpstreamUnreachable);
            tracing::warn!(caller = caller.display_name(), %error, "upstream request failed");
            let status = KubeStatus::bad_gateway(error.to_string());
            if let Some(link) = event_link {
                api_events::send_response_event(
                    app.events.clone(),
                    app.metrics.clone(),
                    caller.clone(),
                    link,
                    status.code,
                    0,
                    Some(status.message.clone()),
                );
            }
            status.response_for(parts.uri.path())
        }
    }
}

/// The caller of this connection, asked of the identity sources per request (tailscaled's
/// answers briefly cached), or the error to answer with: the proxy never acts without an
/// identity, nor on a grant it cannot read.
pub(crate) async fn authorize(
    app: &App,
    connection: &ConnectionContext,
) -> Result<Arc<Caller>, KubeStatus> {
    app.identities
        .identify(&app.metrics, connection)
        .await
        .inspect_err(|status| {
            app.metrics.request_refused(match status.code {
                http::StatusCode::UNAUTHORIZED => Refusal::UnknownCaller,
                http::StatusCode::FORBIDDEN => Refusal::Policy,
                _ => Refusal::IdentityUnavailable,
            });
        })
}

/// Refuses a request that would have the kubelet run a command or open a session through the
/// node proxy, which session recording cannot see, when the caller's grant requires recording.
fn refuse_unrecordable_node_command(
    app: &App,
    caller: &Caller,
    parts: &http::request::Parts,
) -> Result<(), KubeStatus> {
    if caller.policy.recording.fail_open || !may_name_nodes(parts.uri.path()) {
        return Ok(());
    }
    let info = requestinfo::parse(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
    );
    match node_command_endpoint(&info) {
        None => Ok(()),
        Some(endpoint) => {
            app.metrics.request_refused(Refusal::Policy);
            tracing::info!(
                caller = caller.display_name(),
                node = info.name,
                endpoint,
                "refused a kubelet command through the node proxy: recording is enforced"
            );
            Err(KubeStatus::forbidden(format!(
                "the caller's grant requires session recording (enforceRecorder), and the kubelet's \
                 {endpoint:?} endpoint through nodes/proxy runs commands that cannot be recorded; \
                 use kubectl exec or attach on the pod instead"
            )))
        }
    }
}
