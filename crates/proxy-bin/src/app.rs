//! What every request handler shares.

use std::sync::Arc;

use impersonate::Mode;
use localapi::LocalApiClient;

use crate::identity::Identities;
use crate::metrics::Metrics;
use crate::upstream::Upstream;

/// The proxy's shared state, built once at start-up.
#[derive(Debug)]
pub struct App {
    /// auth (impersonate) or noauth (pass through).
    pub(crate) mode: Mode,
    /// The identity source, for status and certificates.
    pub(crate) localapi: LocalApiClient,
    /// Who callers are: the identity sources in `--identity` order (tailscaled's answers are
    /// reused briefly).
    pub(crate) identities: Identities,
    /// Sessions open per caller (`--max-sessions-per-caller`); `None` without a limit.
    pub(crate) sessions_per_caller: Option<crate::caller_limit::CallerLimit<String>>,
    /// Time the upstream has to answer an upgrade request.
    pub(crate) upstream_handshake_timeout: std::time::Duration,
    /// The upstream API server.
    pub(crate) upstream: Upstream,
    /// Whether each client connection forwards on an upstream connection of its own
    /// (`--upstream-connections per-client`; see [`crate::upstream::lane`]).
    pub(crate) upstream_lanes: bool,
    /// Counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Connects session recordings.
    pub(crate) recorder: recorder_client::Recorder,
    /// Sends API request events.
    pub(crate) events: Arc<crate::api_events::ApiEvents>,
    /// `--recording-notice`: shown to recorded tty sessions before their first output.
    pub(crate) recording_notice: Option<String>,
    /// Open exec/attach sessions: their limits, and ending them at shutdown.
    pub(crate) sessions: crate::sessions::Sessions,
}
