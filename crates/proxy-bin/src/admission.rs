//! Admitting a long-lived session (exec, attach, port-forward): an upgrade request of the right
//! method, the caller asked for afresh, no body framing, a path that can be forwarded exactly; then
//! the caller's share of `--max-sessions-per-caller`, the proxy's count of open sessions (no new
//! ones while it shuts down), and the grant's demand for a recorder.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use url::Url;

use crate::app::App;
use crate::caller_limit::CallerSlot;
use crate::exec::{refuse_body_framing, requested_upgrade, StreamProtocol};
use crate::forward::{authorize, forward};
use crate::identity::{Caller, ConnectionContext};
use crate::metrics::Refusal;
use crate::sessions::OpenSession;
use crate::status::KubeStatus;

/// An upgrade request admitted as a session.
pub(crate) struct AdmittedUpgrade {
    /// The request (its upgrade still to be answered).
    pub(crate) request: Request,
    /// SPDY or WebSocket, as the method and `Upgrade` say.
    pub(crate) protocol: StreamProtocol,
    /// Who asks, as the identity sources say now.
    pub(crate) caller: Arc<Caller>,
    /// Where upstream the request goes, byte for byte the path that was checked.
    pub(crate) url: Url,
    /// Held by the session until it ends.
    pub(crate) admission: Admission,
}

/// Admits `request` as a session, or answers it: a request that is no upgrade is forwarded as
/// any other (upstream answers it, usually 400); every refusal is a Status kubectl prints.
pub(crate) async fn admit_upgrade(
    app: Arc<App>,
    connection: Arc<ConnectionContext>,
    request: Request,
) -> Result<AdmittedUpgrade, Response> {
    let protocol = match requested_upgrade(request.method(), request.headers()) {
        // Rare (a session path without an upgrade): the pooled client, not the connection's lane.
        Ok(None) => {
            return Err(forward(State(app), Extension(connection), None, request).await);
        }
        Ok(Some(protocol)) => protocol,
        Err(reason) => {
            return Err(KubeStatus::bad_request(reason).response_for(request.uri().path()));
        }
    };
    // Asked for afresh (or at most --identity-ttl old) before every upgrade: a session never
    // starts on a grant that has since changed.
    let caller = authorize(&app, &connection)
        .await
        .map_err(|refusal| refusal.response_for(request.uri().path()))?;
    refuse_body_framing(request.headers())
        .map_err(|reason| KubeStatus::bad_request(reason).into_response())?;
    let url = app
        .upstream
        .url_for(request.uri())
        .map_err(|error| KubeStatus::bad_request(error.to_string()).into_response())?;
    let admission = admit_session(&app, &caller).map_err(IntoResponse::into_response)?;
    Ok(AdmittedUpgrade {
        request,
        protocol,
        caller,
        url,
        admission,
    })
}

/// What a session holds until it ends.
#[derive(Debug)]
pub(crate) struct Admission {
    /// The caller's slot under `--max-sessions-per-caller`, when there is a limit.
    pub(crate) _caller_slot: Option<CallerSlot<String>>,
    /// The session counted as open; what ends it from the proxy's side.
    pub(crate) open: OpenSession,
}

/// Admits a session of `caller`, or says why not (a Status kubectl prints).
pub(crate) fn admit_session(app: &App, caller: &Caller) -> Result<Admission, KubeStatus> {
    let caller_slot = match &app.sessions_per_caller {
        None => None,
        Some(limit) => match limit.try_acquire_key(caller.display_name().to_owned()) {
            Some(slot) => Some(slot),
            None => {
                app.metrics.request_refused(Refusal::Policy);
                return Err(KubeStatus::too_many_requests(format!(
                    "{} already has {} sessions open (exec, attach, port-forward), the most --max-sessions-per-caller allows",
                    caller.display_name(),
                    limit.max()
                )));
            }
        },
    };
    let Some(open) = app.sessions.open() else {
        return Err(KubeStatus::service_unavailable(
            "the proxy is shutting down and takes no new sessions",
        ));
    };
    if caller.policy.recording.refuses_unrecorded() {
        app.metrics.request_refused(Refusal::Policy);
        return Err(KubeStatus::forbidden(
            "the caller's grant requires session recording (enforceRecorder) but names no recorder",
        ));
    }
    Ok(Admission {
        _caller_slot: caller_slot,
        open,
    })
}
