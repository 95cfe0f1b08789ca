//! A port-forward session's audit events, sent to the caller's recorders in order: `start` (before
//! anything goes upstream; a fail-closed grant refuses the forward when no recorder takes it),
//! one `connection` event as each TCP connection through the forward ends, and `end`.
//!
//! Events after the start are sent by one task per session, in order, from a bounded queue: a
//! fail-closed session waits for room (the forward never runs ahead of its audit by more than the
//! queue), and a recorder that stops taking events ends it; a fail-open session drops what does
//! not fit and goes on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use castfmt::{
    PortForwardConnection, PortForwardEvent, PortForwardPhase, PortForwardRecord, PortForwardTotals,
};
use recorder_client::EventDelivery;
use requestinfo::RequestInfo;
use sessiontap::portforward::ConnectionId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::api_events::{event_timestamp, AuditContext};

/// Events waiting to be sent, at most.
const QUEUE: usize = 256;

/// What a session's audit needs to know before it starts.
pub(super) struct AuditStart {
    pub(super) context: AuditContext,
    pub(super) recorders: Vec<SocketAddr>,
    pub(super) kubernetes: RequestInfo,
    pub(super) transport: &'static str,
    pub(super) fail_open: bool,
}

/// The audit of one port-forward session.
pub(super) struct Audit {
    base: PortForwardEvent,
    fail_open: bool,
    started: Instant,
    queue: mpsc::Sender<PortForwardEvent>,
    sender_task: JoinHandle<()>,
    /// Set when a recorder stopped taking events: why.
    failed: watch::Receiver<Option<String>>,
    /// Open connections: when each opened, its request id and port, the error written on it.
    open: HashMap<ConnectionId, OpenConnection>,
    dropped: u64,
}

struct OpenConnection {
    request_id: String,
    port: u16,
    opened: Instant,
    error: Option<String>,
}

impl Audit {
    /// Sends the `start` event. `Err`: no recorder took it (the reason, naming every recorder).
    pub(super) async fn start(start: AuditStart) -> Result<Audit, String> {
        let base = PortForwardEvent {
            id: start.context.id.clone(),
            timestamp: event_timestamp(),
            kubernetes: start.kubernetes,
            source: start.context.source.clone(),
            destination: start.context.destination.clone(),
            port_forward: PortForwardRecord {
                phase: PortForwardPhase::Start,
                transport: start.transport.to_owned(),
                ..PortForwardRecord::default()
            },
        };
        let sender = start.context.sender.clone();
        deliver(&sender, &start.recorders, &base).await?;
        let (queue, mut queued) = mpsc::channel::<PortForwardEvent>(QUEUE);
        let (failed_tx, failed) = watch::channel(None);
        let recorders = start.recorders;
        let sender_task = tokio::spawn(async move {
            while let Some(event) = queued.recv().await {
                if let Err(reason) = deliver(&sender, &recorders, &event).await {
                    tracing::warn!(%reason, id = event.id, "port-forward audit event not recorded");
                    failed_tx.send_if_modified(|current| {
                        let first = current.is_none();
                        current.get_or_insert(reason);
                        first
                    });
                }
            }
        });
        Ok(Audit {
            base,
            fail_open: start.fail_open,
            started: Instant::now(),
            queue,
            sender_task,
            failed,
            open: HashMap::new(),
            dropped: 0,
        })
    }

    /// The id of the session's events.
    pub(super) fn id(&self) -> &str {
        &self.base.id
    }

    /// Resolves with the reason once a recorder stopped taking this session's events.
    pub(super) fn failed(&self) -> watch::Receiver<Option<String>> {
        self.failed.clone()
    }

    /// A connection opened.
    pub(super) fn opened(&mut self, connection: ConnectionId, request_id: String, port: u16) {
        self.open.insert(
            connection,
            OpenConnection {
                request_id,
                port,
                opened: Instant::now(),
                error: None,
            },
        );
    }

    /// The server wrote `message` on a connection's error stream.
    pub(super) fn error(&mut self, connection: ConnectionId, message: String) {
        if let Some(open) = self.open.get_mut(&connection) {
            open.error = Some(message);
        }
    }

    /// A connection ended: its event is queued.
    pub(super) async fn closed(
        &mut self,
        connection: ConnectionId,
        from_client: u64,
        to_client: u64,
    ) {
        let Some(open) = self.open.remove(&connection) else {
            return;
        };
        let record = PortForwardRecord {
            phase: PortForwardPhase::Connection,
            transport: self.base.port_forward.transport.clone(),
            connection: Some(PortForwardConnection {
                request_id: open.request_id,
                port: open.port,
                bytes_from_client: from_client,
                bytes_to_client: to_client,
                duration_ms: open.opened.elapsed().as_secs_f64() * 1000.0,
                error: open.error,
            }),
            ..PortForwardRecord::default()
        };
        self.queue(record).await;
    }

    /// The session ended: the `end` event is queued and every queued event sent (each send is
    /// bounded by the sender's own timeouts).
    pub(super) async fn end(mut self, totals: (u64, u64, u64), error: Option<String>) {
        let (connections, from_client, to_client) = totals;
        let error = match (error, self.dropped) {
            (error, 0) => error,
            (Some(error), dropped) => Some(format!(
                "{error}; {dropped} audit events were dropped (fail open)"
            )),
            (None, dropped) => Some(format!("{dropped} audit events were dropped (fail open)")),
        };
        let record = PortForwardRecord {
            phase: PortForwardPhase::End,
            transport: self.base.port_forward.transport.clone(),
            totals: Some(PortForwardTotals {
                connections,
                bytes_from_client: from_client,
                bytes_to_client: to_client,
                duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            }),
            error,
            ..PortForwardRecord::default()
        };
        self.queue(record).await;
        drop(self.queue);
        let _ = self.sender_task.await;
    }

    async fn queue(&mut self, record: PortForwardRecord) {
        let event = PortForwardEvent {
            timestamp: event_timestamp(),
            port_forward: record,
            ..self.base.clone()
        };
        if self.fail_open {
            if self.queue.try_send(event).is_err() {
                self.dropped += 1;
            }
        } else {
            // Backpressure: the forward waits for room. The task only stops when the queue
            // closes, so this cannot wait forever.
            let _ = self.queue.send(event).await;
        }
    }
}

/// Sends one event; `Err` unless a recorder stored it.
async fn deliver(
    sender: &recorder_client::EventSender,
    recorders: &[SocketAddr],
    event: &PortForwardEvent,
) -> Result<(), String> {
    match sender.send(recorders, event).await {
        Ok(EventDelivery::Stored { .. }) => Ok(()),
        Ok(EventDelivery::Unsupported { recorder }) => Err(format!(
            "the recorder {recorder} does not take events (404 to HEAD /v2/event)"
        )),
        Err(error) => Err(error.to_string()),
    }
}
