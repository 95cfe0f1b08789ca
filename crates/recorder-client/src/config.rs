//! Limits and timeouts of the recorder client, set once when the proxy starts.

use std::time::Duration;

use crate::encoder::TtyOptions;

/// How the client connects to recorders and buffers a session's recording.
///
/// The defaults are Tailscale's (`sessionrecording/connect.go`: `perDialAttemptTimeout`,
/// `http2ProbeTimeout`, `allDialAttemptsTimeout`, `uploadAckWindow`) where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecorderConfig {
    /// Limit on one dial (one TCP connect). Default 5 s.
    pub dial_timeout: Duration,
    /// Limit on the `HEAD /v2/record` probe that decides between the v2 and v1 protocols. Default
    /// 10 s.
    pub probe_timeout: Duration,
    /// Limit on trying all addresses: dials, probes and starting the upload. Default 30 s.
    pub connect_timeout: Duration,
    /// A v2 upload fails when no ack arrives for this long (the recorder acks at least once a
    /// second, also while idle). The same limit bounds [`Recording::finish`](crate::Recording::finish)
    /// waiting for the recorder's final answer, in v1 too. Default 30 s.
    pub ack_window: Duration,
    /// Bytes of session data (output, input) that may wait between the proxy and the upload. A
    /// fail-closed session's [`feed`](crate::Feeder::feed) waits while it is full; a fail-open
    /// session's [`try_feed`](crate::Feeder::try_feed) abandons the recording when it would
    /// overflow, so this is also the most a fail-open recording may lag. Default 4 MiB.
    pub buffer_bytes: usize,
    /// Whether stdin is recorded as `i` events, for sessions that do not say
    /// ([`Session::record_input`](crate::Session::record_input) `None`). Default off.
    pub record_input: bool,
    /// How a tty session's header gets its size.
    pub tty: TtyOptions,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            dial_timeout: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
            ack_window: Duration::from_secs(30),
            buffer_bytes: 4 << 20,
            record_input: false,
            tty: TtyOptions::default(),
        }
    }
}
