//! Admitting a long-lived session (exec, attach, port-forward): the caller's share of
//! `--max-sessions-per-caller`, the proxy's count of open sessions (no new ones while it shuts
//! down), and the grant's demand for a recorder.

use crate::app::App;
use crate::caller_limit::CallerSlot;
use crate::identity::Caller;
use crate::metrics::Refusal;
use crate::sessions::OpenSession;
use crate::status::KubeStatus;

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
