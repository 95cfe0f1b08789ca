//! Port-forward payload capture (the grant's `recordPortForwardData`): the bytes of each TCP
//! connection through an audited forward, uploaded to the caller's recorders as one
//! `kap-port-forward/1` capture per connection (recorder-client's [`CaptureRecording`]).
//!
//! A connection's capture starts when the tap reports it opened, takes the bytes of each `Data`
//! event in the order they are forwarded, and is finished (in the background) when the
//! connection closes. The bytes wait in one bounded budget per session
//! ([`RecorderConfig::buffer_bytes`](recorder_client::RecorderConfig::buffer_bytes)).
//!
//! Fail closed: no byte of a connection is forwarded before its capture has reached a recorder
//! (the chunk that opens it waits), a full budget holds the forward back, and a capture that
//! cannot start, fails or cannot be confirmed ends the forward. Fail open: captures connect in
//! the background, one that falls behind by more than the budget or fails is dropped (the
//! recorder keeps what arrived, marked incomplete) and the forward goes on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use castfmt::{Caller, CaptureConnection, CaptureDirection, CapturedPod, PortForwardCaptureHeader};
use recorder_client::{CaptureBudget, CaptureRecording, FeedError, Recorder};
use sessiontap::portforward::ConnectionId;
use sessiontap::Direction;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::api_events::event_timestamp;

/// What a session's captures need to know.
pub(super) struct CaptureStart {
    pub(super) recorder: Recorder,
    pub(super) recorders: Vec<SocketAddr>,
    /// The id of the session's audit events.
    pub(super) session_id: String,
    pub(super) caller: Caller,
    pub(super) pod: CapturedPod,
    pub(super) transport: &'static str,
    pub(super) fail_open: bool,
}

/// One open connection's capture, and the handle that stops watching it for failure.
struct OpenCapture {
    capture: CaptureRecording,
    _watching: oneshot::Sender<()>,
}

/// The captures of one port-forward session.
pub(super) struct Captures {
    start: CaptureStart,
    budget: CaptureBudget,
    open: HashMap<ConnectionId, OpenCapture>,
    finishing: JoinSet<()>,
    /// Set (fail closed) when a capture failed: why.
    failed: watch::Sender<Option<String>>,
    /// Captures dropped or left incomplete (fail open).
    dropped: Arc<AtomicU64>,
}

impl Captures {
    pub(super) fn new(start: CaptureStart) -> Self {
        let budget = CaptureBudget::new(start.recorder.config().buffer_bytes);
        Captures {
            start,
            budget,
            open: HashMap::new(),
            finishing: JoinSet::new(),
            failed: watch::channel(None).0,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Changes to `Some(reason)` when a capture of a fail-closed session fails.
    pub(super) fn failed(&self) -> watch::Receiver<Option<String>> {
        self.failed.subscribe()
    }

    /// A connection opened: its capture starts. `Err`: a fail-closed session must end, the
    /// capture could not start.
    pub(super) async fn opened(
        &mut self,
        connection: ConnectionId,
        request_id: String,
        port: u16,
    ) -> Result<(), String> {
        let header = PortForwardCaptureHeader::new(
            self.start.session_id.clone(),
            event_timestamp(),
            self.start.caller.clone(),
            self.start.pod.clone(),
            CaptureConnection { request_id, port },
            self.start.transport,
        );
        let capture =
            match self
                .start
                .recorder
                .start_capture(&self.start.recorders, &header, &self.budget)
            {
                Ok(capture) => capture,
                Err(error) => return self.lost(connection, error.to_string()),
            };
        if !self.start.fail_open {
            if let Err(reason) = capture.connected().await {
                return self.lost(connection, format!("no recorder took it: {reason}"));
            }
        }
        let (watching, stop_watching) = oneshot::channel();
        let failed = capture.failed();
        let report = self.failed.clone();
        let fail_open = self.start.fail_open;
        tokio::spawn(async move {
            tokio::select! {
                biased;
                // Stopped watching: finished, or dropped on purpose (counted there).
                _ = stop_watching => {}
                outcome = failed => {
                    if fail_open {
                        tracing::warn!(%connection, %outcome, "port-forward capture dropped (the grant allows the forward to go on)");
                    } else {
                        report_failure(&report, must_end(connection, &outcome.to_string()));
                    }
                }
            }
        });
        self.open.insert(
            connection,
            OpenCapture {
                capture,
                _watching: watching,
            },
        );
        Ok(())
    }

    /// Bytes forwarded on a connection. `Err`: a fail-closed session must end (the bytes are
    /// not forwarded).
    pub(super) async fn data(
        &mut self,
        connection: ConnectionId,
        direction: Direction,
        bytes: Vec<u8>,
    ) -> Result<(), String> {
        let Some(open) = self.open.get(&connection) else {
            return Ok(());
        };
        let direction = match direction {
            Direction::ClientToServer => CaptureDirection::ClientToPod,
            _ => CaptureDirection::PodToClient,
        };
        if self.start.fail_open {
            if let Err(error) = open.capture.try_feed(direction, bytes) {
                self.drop_capture(connection, &error);
            }
            return Ok(());
        }
        match open.capture.feed(direction, bytes).await {
            Ok(()) => Ok(()),
            Err(error) => self.lost(connection, error.to_string()),
        }
    }

    /// The server wrote an error on a connection: a note in its capture.
    pub(super) fn error(&mut self, connection: ConnectionId, message: &str) {
        if let Some(open) = self.open.get(&connection) {
            open.capture.note(format!("error: {message}"));
        }
    }

    /// A connection ended: its capture is finished in the background.
    pub(super) fn closed(&mut self, connection: ConnectionId) {
        let Some(open) = self.open.remove(&connection) else {
            return;
        };
        let report = self.failed.clone();
        let fail_open = self.start.fail_open;
        let dropped = Arc::clone(&self.dropped);
        self.finishing.spawn(async move {
            let OpenCapture {
                capture,
                _watching: watching,
            } = open;
            drop(watching);
            let outcome = capture.finish().await;
            if outcome.is_uploaded() {
                tracing::debug!(%connection, %outcome, "port-forward capture stored");
            } else if fail_open {
                dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%connection, %outcome, "port-forward capture incomplete (the grant allows it)");
            } else {
                report_failure(&report, must_end(connection, &outcome.to_string()));
            }
        });
    }

    /// Stops every open capture, cut short (the recorder keeps them incomplete): the session
    /// could not be read any more.
    pub(super) fn abandon_all(&mut self, reason: &str) {
        for (connection, open) in self.open.drain() {
            tracing::warn!(%connection, %reason, "port-forward capture abandoned");
            // Not a failure to report: the session is ending or no longer read.
            let OpenCapture {
                capture,
                _watching: watching,
            } = open;
            drop(watching);
            capture.abandon(reason);
            if self.start.fail_open {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The session ended: open captures are cut short, and every capture being finished is
    /// waited for. Returns how many captures were lost (fail open: dropped), for the audit.
    pub(super) async fn end(mut self) -> u64 {
        self.abandon_all("the port-forward session ended before the connection closed");
        while self.finishing.join_next().await.is_some() {}
        self.dropped.load(Ordering::Relaxed)
    }

    fn drop_capture(&mut self, connection: ConnectionId, error: &FeedError) {
        if let Some(open) = self.open.remove(&connection) {
            drop(open);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%connection, %error, "port-forward capture dropped (the grant allows the forward to go on)");
        }
    }

    /// A capture could not go on: fail open drops it, fail closed ends the session.
    fn lost(&mut self, connection: ConnectionId, reason: String) -> Result<(), String> {
        if self.start.fail_open {
            self.open.remove(&connection);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%connection, %reason, "port-forward capture dropped (the grant allows the forward to go on)");
            return Ok(());
        }
        if let Some(open) = self.open.remove(&connection) {
            open.capture.abandon(reason.clone());
        }
        let reason = must_end(connection, &reason);
        report_failure(&self.failed, reason.clone());
        Err(reason)
    }
}

/// Why a fail-closed forward ends.
fn must_end(connection: ConnectionId, why: &str) -> String {
    format!(
        "the port-forward could not be captured ({connection}: {why}), and the caller's grant requires it"
    )
}

fn report_failure(failed: &watch::Sender<Option<String>>, reason: String) {
    failed.send_if_modified(|current| {
        let first = current.is_none();
        current.get_or_insert(reason);
        first
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use recorder_client::RecorderConfig;
    use recorder_server::{RecorderServer, RecordingKind, ServerOptions};

    use super::*;

    fn start(recorders: Vec<SocketAddr>, fail_open: bool) -> CaptureStart {
        CaptureStart {
            recorder: Recorder::new(RecorderConfig {
                connect_timeout: Duration::from_secs(5),
                ack_window: Duration::from_secs(5),
                ..RecorderConfig::default()
            }),
            recorders,
            session_id: "audit-1".into(),
            caller: Caller::Tagged {
                node: "ci.ts.net".into(),
                node_id: "nCI".into(),
                tags: vec!["tag:ci".into()],
            },
            pod: CapturedPod {
                pod_name: "demo".into(),
                namespace: "default".into(),
            },
            transport: "spdy",
            fail_open,
        }
    }

    fn dead_address() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    }

    async fn recorder(dir: &std::path::Path) -> RecorderServer {
        let mut options = ServerOptions::new("127.0.0.1:0".parse().expect("addr"), dir);
        // Shutting down cuts uploads at once (the recorder is lost).
        options.shutdown_grace = Duration::from_millis(50);
        RecorderServer::start(options).await.expect("recorder")
    }

    #[tokio::test]
    async fn each_connection_is_stored_as_a_capture() {
        let dir = tempfile::tempdir().expect("dir");
        let server = recorder(dir.path()).await;
        let mut captures = Captures::new(start(vec![server.addr()], false));
        for n in 0..2 {
            let connection = ConnectionId(n);
            captures
                .opened(connection, n.to_string(), 8080)
                .await
                .expect("opened");
            captures
                .data(connection, Direction::ClientToServer, vec![1, 2, 3])
                .await
                .expect("fed");
            captures
                .data(connection, Direction::ServerToClient, vec![0; 100_000])
                .await
                .expect("fed");
            captures.closed(connection);
        }
        assert_eq!(captures.end().await, 0);
        let list = server.store().list().await.expect("list");
        assert_eq!(list.len(), 2);
        for meta in &list {
            assert_eq!(meta.kind, RecordingKind::PortForwardCapture);
            assert_eq!(meta.outcome, castfmt::Outcome::Complete);
            let pf = meta.port_forward.as_ref().expect("port-forward");
            assert_eq!(pf.session_id.as_deref(), Some("audit-1"));
            assert_eq!((pf.bytes_from_client, pf.bytes_to_client), (3, 100_000));
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn fail_closed_a_capture_no_recorder_takes_ends_the_session() {
        let mut captures = Captures::new(start(vec![dead_address()], false));
        let failed = captures.failed();
        let reason = captures
            .opened(ConnectionId(0), "0".into(), 8080)
            .await
            .expect_err("no recorder");
        assert!(reason.contains("could not be captured"), "{reason}");
        assert!(failed.borrow().is_some());
        captures.end().await;
    }

    #[tokio::test]
    async fn fail_closed_a_recorder_lost_mid_connection_ends_the_session() {
        let dir = tempfile::tempdir().expect("dir");
        let server = recorder(dir.path()).await;
        let mut captures = Captures::new(start(vec![server.addr()], false));
        let mut failed = captures.failed();
        captures
            .opened(ConnectionId(0), "0".into(), 8080)
            .await
            .expect("opened");
        server.shutdown().await;
        let reason =
            tokio::time::timeout(Duration::from_secs(20), failed.wait_for(Option::is_some))
                .await
                .expect("reported in time")
                .expect("reported")
                .clone()
                .unwrap_or_default();
        assert!(reason.contains("could not be captured"), "{reason}");
        captures.end().await;
    }

    #[tokio::test]
    async fn fail_open_a_capture_without_recorder_is_dropped_and_counted() {
        let mut captures = Captures::new(start(vec![dead_address()], true));
        let failed = captures.failed();
        captures
            .opened(ConnectionId(0), "0".into(), 8080)
            .await
            .expect("fail open goes on");
        captures
            .data(ConnectionId(0), Direction::ClientToServer, vec![1])
            .await
            .expect("fail open goes on");
        captures.closed(ConnectionId(0));
        assert_eq!(captures.end().await, 1);
        assert!(failed.borrow().is_none());
    }
}
