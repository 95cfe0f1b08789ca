//! Prometheus metrics, kept as plain atomics and rendered in the text exposition format.
//!
//! Names follow Tailscale's proxy where one exists (`k8s_auth_proxy_requests_proxied`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the proxy answered a request itself instead of forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The identity source does not know the caller (401).
    UnknownCaller,
    /// The identity source could not be asked (503).
    IdentityUnavailable,
    /// The caller's grant forbids or cannot be understood (403).
    Policy,
    /// The upstream could not be reached (502).
    UpstreamUnreachable,
    /// The request's API event could not be recorded and the grant fails closed (502).
    EventRecording,
}

impl Refusal {
    const ALL: [Refusal; 5] = [
        Refusal::UnknownCaller,
        Refusal::IdentityUnavailable,
        Refusal::Policy,
        Refusal::UpstreamUnreachable,
        Refusal::EventRecording,
    ];

    fn label(self) -> &'static str {
        match self {
            Refusal::UnknownCaller => "unknown_caller",
            Refusal::IdentityUnavailable => "identity_unavailable",
            Refusal::Policy => "policy",
            Refusal::UpstreamUnreachable => "upstream_unreachable",
            Refusal::EventRecording => "event_recording",
        }
    }
}

/// Why a session recording did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordingFailure {
    /// No recorder could be connected before the session.
    Connect,
    /// The upload failed or was cut during the session.
    Upload,
    /// The session could not be read (tap error, unreadable protocol).
    Unreadable,
}

impl RecordingFailure {
    const ALL: [RecordingFailure; 3] = [
        RecordingFailure::Connect,
        RecordingFailure::Upload,
        RecordingFailure::Unreadable,
    ];

    fn label(self) -> &'static str {
        match self {
            RecordingFailure::Connect => "connect",
            RecordingFailure::Upload => "upload",
            RecordingFailure::Unreadable => "unreadable",
        }
    }
}

/// Why a connection was closed before TLS under `--proxy-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyHeaderRefusal {
    /// The connection did not come from `--proxy-protocol-from`.
    UntrustedSource,
    /// No valid header: none, malformed, or the connection ended inside it.
    Invalid,
    /// No whole header within `--header-timeout`.
    Timeout,
    /// A header that names no TCP client (v1 `UNKNOWN`, v2 `PROXY` over UDP, Unix or unspecified).
    UnknownClient,
}

impl ProxyHeaderRefusal {
    const ALL: [ProxyHeaderRefusal; 4] = [
        ProxyHeaderRefusal::UntrustedSource,
        ProxyHeaderRefusal::Invalid,
        ProxyHeaderRefusal::Timeout,
        ProxyHeaderRefusal::UnknownClient,
    ];

    fn label(self) -> &'static str {
        match self {
            ProxyHeaderRefusal::UntrustedSource => "untrusted_source",
            ProxyHeaderRefusal::Invalid => "invalid_header",
            ProxyHeaderRefusal::Timeout => "timeout",
            ProxyHeaderRefusal::UnknownClient => "unknown_client",
        }
    }
}

/// The proxy's counters and gauges.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    sessions_active: AtomicU64,
    sessions_unrecorded: AtomicU64,
    recordings_attempted: AtomicU64,
    recordings_uploaded: AtomicU64,
    recordings_failed: [AtomicU64; 3],
    recorded_bytes: AtomicU64,
    requests_proxied: AtomicU64,
    refused: [AtomicU64; 5],
    api_events_attempted: AtomicU64,
    api_events_failed: AtomicU64,
    api_events_unsupported: AtomicU64,
    api_response_events_sent: AtomicU64,
    api_response_events_failed: AtomicU64,
    connections_accepted: AtomicU64,
    connections_active: AtomicU64,
    tls_handshake_failures: AtomicU64,
    identity_lookups: AtomicU64,
    connections_over_caller_limit: AtomicU64,
    proxy_header_refused: [AtomicU64; 4],
    policy_reload_failures: AtomicU64,
    client_ca_reload_failures: AtomicU64,
}

impl Metrics {
    /// A request was forwarded upstream.
    pub(crate) fn request_proxied(&self) {
        self.requests_proxied.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered by the proxy with an error.
    pub(crate) fn request_refused(&self, why: Refusal) {
        let index = Refusal::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.refused[index].fetch_add(1, Ordering::Relaxed);
    }

    /// A client connection was accepted; the guard counts it active until dropped.
    pub(crate) fn connection_opened(&self) -> ActiveConnection<'_> {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        self.connections_active.fetch_add(1, Ordering::Relaxed);
        ActiveConnection(self)
    }

    /// A TLS handshake failed or timed out.
    pub(crate) fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed at once: its address already had the most connections allowed.
    pub(crate) fn connection_over_caller_limit(&self) {
        self.connections_over_caller_limit
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed before TLS for want of a PROXY protocol header it may send.
    pub(crate) fn proxy_header_refused(&self, why: ProxyHeaderRefusal) {
        let index = ProxyHeaderRefusal::ALL
            .iter()
            .position(|r| *r == why)
            .unwrap_or(0);
        self.proxy_header_refused[index].fetch_add(1, Ordering::Relaxed);
    }

    /// A changed `--policy` file could not be used; the last good one stays in force.
    pub(crate) fn policy_reload_failed(&self) {
        self.policy_reload_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A changed `--client-ca` file could not be used; the current CA stays in force.
    pub(crate) fn client_ca_reload_failed(&self) {
        self.client_ca_reload_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The identity source was asked about a caller (cache misses only).
    pub(crate) fn identity_lookup(&self) {
        self.identity_lookups.fetch_add(1, Ordering::Relaxed);
    }

    /// An exec/attach session started; the guard counts it active until dropped.
    pub(crate) fn session_started(&self) -> ActiveSession<'_> {
        self.sessions_active.fetch_add(1, Ordering::Relaxed);
        ActiveSession(self)
    }

    /// A session runs without a recording although its grant names recorders (fail open).
    pub(crate) fn session_unrecorded(&self) {
        self.sessions_unrecorded.fetch_add(1, Ordering::Relaxed);
    }

    /// A recording is being connected for a session.
    pub(crate) fn recording_attempted(&self) {
        self.recordings_attempted.fetch_add(1, Ordering::Relaxed);
    }

    /// A recording was uploaded whole.
    pub(crate) fn recording_uploaded(&self, bytes: u64) {
        self.recordings_uploaded.fetch_add(1, Ordering::Relaxed);
        self.recorded_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A recording failed.
    pub(crate) fn recording_failed(&self, why: RecordingFailure) {
        let index = RecordingFailure::ALL
            .iter()
            .position(|r| *r == why)
            .unwrap_or(0);
        self.recordings_failed[index].fetch_add(1, Ordering::Relaxed);
    }

    /// An API request event is owed for a request (its caller's grant enables events).
    pub(crate) fn api_event_attempted(&self) {
        self.api_events_attempted.fetch_add(1, Ordering::Relaxed);
    }

    /// An API request event could not be recorded.
    pub(crate) fn api_event_failed(&self) {
        self.api_events_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The recorder does not support API events (404 to the probe); the request went on.
    pub(crate) fn api_event_unsupported(&self) {
        self.api_events_unsupported.fetch_add(1, Ordering::Relaxed);
    }

    /// A response event was recorded.
    pub(crate) fn api_response_event_sent(&self) {
        self.api_response_events_sent
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A response event could not be recorded.
    pub(crate) fn api_response_event_failed(&self) {
        self.api_response_events_failed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the exposition text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        counter(
            &mut out,
            "k8s_auth_proxy_requests_proxied",
            "Requests forwarded to the upstream API server.",
            self.requests_proxied.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP k8s_auth_proxy_requests_refused Requests the proxy answered with an error itself, by reason.\n# TYPE k8s_auth_proxy_requests_refused counter"
        );
        for (why, value) in Refusal::ALL.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "k8s_auth_proxy_requests_refused{{reason=\"{}\"}} {}",
                why.label(),
                value.load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "k8s_auth_proxy_connections_accepted",
            "Client connections accepted.",
            self.connections_accepted.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP k8s_auth_proxy_connections_active Client connections open now.\n# TYPE k8s_auth_proxy_connections_active gauge\nk8s_auth_proxy_connections_active {}",
            self.connections_active.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "k8s_auth_proxy_tls_handshake_failures",
            "Client TLS handshakes that failed or timed out.",
            self.tls_handshake_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_identity_lookups",
            "Identity source lookups (answers are reused per address for --identity-ttl).",
            self.identity_lookups.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_connections_over_caller_limit",
            "Client connections closed at once because their address had --max-connections-per-caller open.",
            self.connections_over_caller_limit.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_policy_reload_failures",
            "Changes of the --policy file that could not be used (the last good file stays in force).",
            self.policy_reload_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_client_ca_reload_failures",
            "Changes of the --client-ca file that could not be used (the current CA stays in force).",
            self.client_ca_reload_failures.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP k8s_auth_proxy_proxy_protocol_refused Connections closed before TLS under --proxy-protocol, by reason.\n# TYPE k8s_auth_proxy_proxy_protocol_refused counter"
        );
        for (why, value) in ProxyHeaderRefusal::ALL
            .iter()
            .zip(&self.proxy_header_refused)
        {
            let _ = writeln!(
                out,
                "k8s_auth_proxy_proxy_protocol_refused{{reason=\"{}\"}} {}",
                why.label(),
                value.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP k8s_auth_proxy_sessions_active exec/attach sessions open now.\n# TYPE k8s_auth_proxy_sessions_active gauge\nk8s_auth_proxy_sessions_active {}",
            self.sessions_active.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "k8s_auth_proxy_sessions_unrecorded",
            "Sessions whose grant names recorders but which ran unrecorded (fail open).",
            self.sessions_unrecorded.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_session_recordings_attempted",
            "Session recordings started.",
            self.recordings_attempted.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_session_recordings_uploaded",
            "Session recordings uploaded whole.",
            self.recordings_uploaded.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP k8s_auth_proxy_session_recordings_failed Session recordings that did not complete, by reason.\n# TYPE k8s_auth_proxy_session_recordings_failed counter"
        );
        for (why, value) in RecordingFailure::ALL.iter().zip(&self.recordings_failed) {
            let _ = writeln!(
                out,
                "k8s_auth_proxy_session_recordings_failed{{reason=\"{}\"}} {}",
                why.label(),
                value.load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "k8s_auth_proxy_session_recorded_bytes",
            "Bytes of asciicast uploaded to recorders.",
            self.recorded_bytes.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_api_request_event_recording_attempted",
            "API request events owed to recorders (callers whose grant enables events).",
            self.api_events_attempted.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_api_request_event_recording_failed",
            "API request events no recorder took (fail closed: the request was refused; fail open: it went on unrecorded).",
            self.api_events_failed.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_api_request_event_recording_unsupported",
            "API request events not recorded because the recorder does not support events (404 to HEAD /v2/event).",
            self.api_events_unsupported.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_api_response_events_sent",
            "API response events recorded (--api-response-events).",
            self.api_response_events_sent.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "k8s_auth_proxy_api_response_events_failed",
            "API response events no recorder took.",
            self.api_response_events_failed.load(Ordering::Relaxed),
        );
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

/// Counts a connection as active while alive.
#[derive(Debug)]
pub(crate) struct ActiveConnection<'a>(&'a Metrics);

impl Drop for ActiveConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a session as active while alive.
#[derive(Debug)]
pub(crate) struct ActiveSession<'a>(&'a Metrics);

impl Drop for ActiveSession<'_> {
    fn drop(&mut self) {
        self.0.sessions_active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let metrics = Metrics::default();
        metrics.request_proxied();
        metrics.request_proxied();
        metrics.request_refused(Refusal::Policy);
        metrics.policy_reload_failed();
        let guard = metrics.connection_opened();
        let text = metrics.render();
        assert!(
            text.contains("\nk8s_auth_proxy_requests_proxied 2\n"),
            "{text}"
        );
        assert!(
            text.contains("k8s_auth_proxy_requests_refused{reason=\"policy\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("k8s_auth_proxy_connections_active 1"),
            "{text}"
        );
        assert!(
            text.contains("\nk8s_auth_proxy_policy_reload_failures 1\n"),
            "{text}"
        );
        drop(guard);
        assert!(metrics
            .render()
            .contains("k8s_auth_proxy_connections_active 0"));
    }
}
