//! Splicing an upgraded port-forward session: both directions are forwarded as they arrive, each
//! chunk shown first to the port-forward tap, whose events become the session's audit.
//!
//! A chunk is shown to the tap *before* it is forwarded, so the tap learns each connection's
//! streams before the server can answer on them. When the tap cannot read the session, or the
//! recorders stop taking its events, a fail-closed session is ended (both connections closed; the
//! chunk that could not be read is not forwarded) and a fail-open one goes on unobserved. The
//! proxy's limits (idle time, maximum length, shutdown) end it the same way; data on a connection
//! is what counts as activity. With payload capture (the grant's `recordPortForwardData`) the
//! tap's data events carry the bytes, which go to each connection's capture before the chunk is
//! forwarded (see [`super::capture`]); a capture that fails ends a fail-closed session the same
//! way.

use std::sync::Arc;

use sessiontap::portforward::{PortForwardEvent, PortForwardTap};
use sessiontap::Direction;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use super::audit::Audit;
use super::capture::Captures;
use crate::sessions::{Activity, SessionControl};

/// Size of each direction's read buffer.
const BUFFER: usize = 32 * 1024;

/// How a spliced port-forward session ended.
#[derive(Debug, Default)]
pub(super) struct Spliced {
    /// Bytes forwarded client to upstream (the wire, framing included).
    pub(super) up: u64,
    /// Bytes forwarded upstream to client.
    pub(super) down: u64,
    /// Why the proxy ended the session, if it did.
    pub(super) ended_because: Option<String>,
    /// Connections seen by the tap.
    pub(super) connections: u64,
}

/// What both directions share.
struct Observer {
    /// `None` once the tap stopped reading (fail open).
    tap: Option<PortForwardTap>,
    audit: Option<Audit>,
    /// The connections' captures, when the grant records port-forward data.
    captures: Option<Captures>,
    fail_open: bool,
    totals: (u64, u64, u64),
    /// Why the audit is incomplete (fail open), for the end event.
    note: Option<String>,
}

struct Shared {
    observer: Mutex<Observer>,
    activity: Activity,
    stop: watch::Sender<Option<String>>,
}

impl Shared {
    /// Shows a chunk to the tap and audits what it says; `false`: the session must end and the
    /// chunk is not forwarded.
    async fn observe(&self, direction: Direction, chunk: &[u8]) -> bool {
        let mut observer = self.observer.lock().await;
        let Some(tap) = observer.tap.as_mut() else {
            self.activity.touch();
            return true;
        };
        let mut events = Vec::new();
        let fed = tap.feed(direction, chunk, &mut |event| events.push(event));
        if let Err(reason) = observer.apply(events, &self.activity).await {
            // A fail-closed capture failed: the chunk is not forwarded.
            self.end(reason);
            return false;
        }
        match fed {
            Ok(()) => true,
            Err(error) => {
                let reason = format!("the port-forward session could not be read: {error}");
                observer.tap = None;
                if let Some(captures) = &mut observer.captures {
                    captures.abandon_all(&reason);
                }
                if observer.fail_open {
                    tracing::warn!(%reason, "port-forward no longer audited; the grant allows the session to go on");
                    observer.note.get_or_insert(reason);
                    true
                } else {
                    self.end(reason);
                    false
                }
            }
        }
    }

    fn end(&self, reason: String) {
        self.stop.send_if_modified(|current| {
            let first = current.is_none();
            current.get_or_insert(reason);
            first
        });
    }
}

impl Observer {
    /// Audits (and captures) what the tap reported. `Err`: a fail-closed session's capture
    /// failed, and the session must end.
    async fn apply(
        &mut self,
        events: Vec<PortForwardEvent>,
        activity: &Activity,
    ) -> Result<(), String> {
        for event in events {
            match event {
                PortForwardEvent::Data {
                    connection,
                    direction,
                    bytes,
                    ..
                } => {
                    activity.touch();
                    if let (Some(captures), Some(bytes)) = (&mut self.captures, bytes) {
                        captures.data(connection, direction, bytes).await?;
                    }
                }
                PortForwardEvent::ConnectionOpened {
                    connection,
                    request_id,
                    port,
                    ..
                } => {
                    if let Some(captures) = &mut self.captures {
                        captures
                            .opened(connection, request_id.clone(), port)
                            .await?;
                    }
                    if let Some(audit) = &mut self.audit {
                        audit.opened(connection, request_id, port);
                    }
                }
                PortForwardEvent::Error {
                    connection,
                    message,
                    ..
                } => {
                    if let Some(captures) = &mut self.captures {
                        captures.error(connection, &message);
                    }
                    if let Some(audit) = &mut self.audit {
                        audit.error(connection, message);
                    }
                }
                PortForwardEvent::ConnectionClosed {
                    connection,
                    client_to_server,
                    server_to_client,
                    ..
                } => {
                    if let Some(captures) = &mut self.captures {
                        captures.closed(connection);
                    }
                    if let Some(audit) = &mut self.audit {
                        audit
                            .closed(connection, client_to_server, server_to_client)
                            .await;
                    }
                }
                PortForwardEvent::SessionEnded {
                    connections,
                    client_to_server,
                    server_to_client,
                } => self.totals = (connections, client_to_server, server_to_client),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Forwards both directions until both end or the session is ended, auditing what the tap sees.
pub(super) async fn splice<C, U>(
    client: C,
    upstream: U,
    tap: Option<PortForwardTap>,
    audit: Option<Audit>,
    captures: Option<Captures>,
    fail_open: bool,
    mut control: SessionControl,
) -> Spliced
where
    C: AsyncRead + AsyncWrite + Send + Unpin,
    U: AsyncRead + AsyncWrite + Send + Unpin,
{
    let started = Instant::now();
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    let (stop, stop_rx) = watch::channel(None::<String>);
    let audit_failed = audit.as_ref().map(Audit::failed);
    let capture_failed = captures.as_ref().map(Captures::failed);
    let shared = Arc::new(Shared {
        observer: Mutex::new(Observer {
            tap,
            audit,
            captures,
            fail_open,
            totals: (0, 0, 0),
            note: None,
        }),
        activity: Activity::new(),
        stop,
    });

    // What ends the session from outside: the recorders stop taking its events (fail closed),
    // or one of the proxy's limits.
    let watcher = {
        let shared = Arc::clone(&shared);
        async move {
            let recorder_lost = async {
                match audit_failed {
                    Some(mut failed) if !fail_open => {
                        let reason = failed
                            .wait_for(Option::is_some)
                            .await
                            .ok()
                            .and_then(|r| r.clone());
                        match reason {
                            Some(reason) => format!(
                                "the port-forward could not be audited ({reason}), and the caller's grant requires it"
                            ),
                            None => std::future::pending().await,
                        }
                    }
                    _ => std::future::pending().await,
                }
            };
            // A capture's failure comes with the reason the session ends with.
            let capture_lost = async {
                match capture_failed {
                    Some(mut failed) if !fail_open => {
                        let reason = failed
                            .wait_for(Option::is_some)
                            .await
                            .ok()
                            .and_then(|r| r.clone());
                        match reason {
                            Some(reason) => reason,
                            None => std::future::pending().await,
                        }
                    }
                    _ => std::future::pending().await,
                }
            };
            let reason = tokio::select! {
                reason = recorder_lost => reason,
                reason = capture_lost => reason,
                ending = control.ended(&shared.activity, started) => ending.message(),
            };
            shared.end(reason);
            std::future::pending::<std::convert::Infallible>().await
        }
    };

    let client_to_upstream = pump(
        Arc::clone(&shared),
        Direction::ClientToServer,
        client_read,
        upstream_write,
        stop_rx.clone(),
    );
    let upstream_to_client = pump(
        Arc::clone(&shared),
        Direction::ServerToClient,
        upstream_read,
        client_write,
        stop_rx.clone(),
    );

    let (up, down) = tokio::select! {
        (up, down) = async { tokio::join!(client_to_upstream, upstream_to_client) } => (up, down),
        never = watcher => match never {},
    };
    let ended_because = stop_rx.borrow().clone();
    let mut observer = shared.observer.lock().await;
    if let Some(mut tap) = observer.tap.take() {
        let mut events = Vec::new();
        tap.finish(&mut |event| events.push(event));
        // The session is over: a capture failing now only leaves it incomplete.
        let _ = observer.apply(events, &shared.activity).await;
    }
    let totals = observer.totals;
    let mut note = observer.note.take();
    if let Some(captures) = observer.captures.take() {
        let lost = captures.end().await;
        if lost > 0 {
            let lost = format!("{lost} connection captures are incomplete (fail open)");
            note = Some(match note {
                Some(note) => format!("{note}; {lost}"),
                None => lost,
            });
        }
    }
    if let Some(audit) = observer.audit.take() {
        audit.end(totals, ended_because.clone().or(note)).await;
    }
    Spliced {
        up,
        down,
        ended_because,
        connections: totals.0,
    }
}

/// Forwards one direction until it ends or the session is stopped, each chunk shown to the tap
/// first; shuts the other side's write half down at the end. Returns the bytes forwarded.
async fn pump<R, W>(
    shared: Arc<Shared>,
    direction: Direction,
    mut from: R,
    mut to: W,
    mut stop: watch::Receiver<Option<String>>,
) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; BUFFER];
    let mut forwarded = 0u64;
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = stop.wait_for(Option::is_some) => break,
        };
        if !shared.observe(direction, &buffer[..n]).await
            || to.write_all(&buffer[..n]).await.is_err()
        {
            break;
        }
        forwarded += n as u64;
    }
    let _ = to.shutdown().await;
    forwarded
}
