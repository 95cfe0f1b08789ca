//! Splicing an upgraded exec/attach session: both directions are forwarded as they arrive, each
//! chunk is shown to the session tap, and the tap's events go to the recording.
//!
//! Ordering and backpressure:
//! - Each chunk is shown to the tap *before* it is forwarded. Over SPDY the tap learns stream roles
//!   from the client's SYN_STREAMs, so it must see them before the server can answer on those
//!   streams (sessiontap's documented requirement).
//! - Fail closed: events are handed to the recording with `feed`, which waits while the recording's
//!   buffer is full, before the chunk is forwarded; a chunk the recording cannot take is never
//!   forwarded. The session never runs ahead of its recording.
//! - Fail open: `try_feed` never waits; a recorder that falls too far behind is abandoned (by the
//!   recording itself) and the session goes on unrecorded.
//!
//! Ending a fail-closed session because recording failed: the server-to-client direction stops at the
//! next frame (and WebSocket message) boundary, writes a `metav1.Status` saying why on the error
//! stream or channel, and both connections are closed. A server chunk that was held back is where
//! the stream continues, so the boundary is looked for in it first; but when the tap could not read
//! that chunk none of it is forwarded (its bytes may be output the tap could not attribute), and
//! the explanation is only written if the stream is at a boundary already.
//!
//! The proxy's own limits end a session the same way, recorded or not (`sessions.rs`: idle time,
//! maximum length, shutdown): every session whose protocol is known has a tap, which tells input,
//! output and resizes (activity) from keep-alives and knows where the error stream is. The
//! recording of a session the proxy ended keeps a marker saying why and stays complete.
//!
//! A tap that cannot read the session (sessiontap's `TapError`, for instance a crafted SPDY client
//! opening a second stdout stream) is a recording failure like the others: fail closed ends the
//! session as above, fail open goes on unrecorded, with the reason logged and the recording
//! abandoned with it (the recorder keeps what it got, marked incomplete).

use std::sync::{Arc, Mutex};

use recorder_client::{FeedError, Feeder, Recording};
use sessiontap::{OwnedSessionEvent, Protocol, SessionEvent, SessionParams, SessionTap, TapLimits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use sessiontap::FrameBoundary;

use super::failure::{explain_and_close, Pending};
use crate::sessions::{Activity, SessionControl};

/// Size of each direction's read buffer (client-go writes at most 32 KiB per frame).
pub(super) const BUFFER: usize = 32 * 1024;

/// Size each direction's read buffer starts at; it grows to [`BUFFER`] the first time a read fills
/// it. A busy session then reads 32 KiB at a time as before, while an idle one (a shell at its
/// prompt, most of an interactive session's life) holds two small buffers instead of two of
/// 32 KiB: at 1,000 idle recorded sessions the full-size buffers were the largest part of the
/// proxy's memory (issue 13; `cargo xtask bench --scale-only`).
const FIRST_BUFFER: usize = 1024;

/// Grows `buffer` to [`BUFFER`] once a read of `read` bytes has filled it: the peer sends more than
/// fits. It never shrinks again; a session that was busy once may well be again.
fn grow_when_filled(buffer: &mut Vec<u8>, read: usize) {
    if read == buffer.len() && buffer.len() < BUFFER {
        buffer.resize(BUFFER, 0);
    }
}

/// A recording attached to a session.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// The recording.
    pub(crate) recording: Recording,
    /// Whether the session may go on when recording fails.
    pub(crate) fail_open: bool,
    /// `--recording-notice` for a tty session: shown on the client's stdout before the server's
    /// first output, and recorded there.
    pub(crate) notice: Option<Vec<u8>>,
}

/// Why a session is being ended, and how its recording is to say so.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ending {
    /// What kubectl prints.
    message: String,
    /// The recording failed (it is abandoned with `message`); otherwise the proxy ended a
    /// recorded session on purpose (it gets a marker and stays complete).
    recording_failed: bool,
}

/// How a spliced session ended.
#[derive(Debug, Default)]
pub(crate) struct Spliced {
    /// Bytes forwarded client to upstream.
    pub(crate) up: u64,
    /// Bytes forwarded upstream to client.
    pub(crate) down: u64,
    /// The recording's outcome, if there was one.
    pub(crate) recording: Option<recorder_client::Outcome>,
    /// Why a fail-closed session was ended early.
    pub(crate) ended_because: Option<String>,
    /// The tap could not read the session (the recording stopped for that, not for the upload).
    pub(crate) unreadable: bool,
}

/// What both directions share about the session: its tap, and the recording if there is one.
struct Link {
    tap: Mutex<SessionTap>,
    /// `None`: the session is not recorded; the tap only tells activity and the error stream.
    feeder: Option<Feeder>,
    fail_open: bool,
    /// Set once events are no longer fed (fail open after a failure, or a tap error).
    stopped: std::sync::atomic::AtomicBool,
    /// Why the session must end (a fail-closed recording failed, or a limit of the proxy's).
    stop: watch::Sender<Option<Ending>>,
    /// Fail open: why recording stopped, to abandon the recording with at the end.
    stopped_because: Mutex<Option<String>>,
    /// The tap failed on the session's bytes.
    unreadable: std::sync::atomic::AtomicBool,
    /// When the session last had input, output or a resize.
    activity: Activity,
    /// The notice still to be recorded before the first output.
    notice: Mutex<Option<Vec<u8>>>,
}

/// What to do with a chunk the tap has seen.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Forward it.
    Forward,
    /// A fail-closed session must end; the chunk is not forwarded. `unread`: the tap failed on
    /// this very chunk, so none of it may reach the client.
    Hold { unread: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

impl Link {
    /// Shows a chunk to the tap and hands its events to the recording, and says whether the
    /// chunk may be forwarded.
    async fn observe(&self, side: Side, chunk: &[u8]) -> Verdict {
        let hold = |unread| {
            if self.fail_open {
                Verdict::Forward
            } else {
                Verdict::Hold { unread }
            }
        };
        if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            // The tap no longer reads the session: every chunk counts as activity.
            self.activity.touch();
            return hold(false);
        }
        let mut events = Vec::new();
        let mut any_event = false;
        let tapped = {
            let mut tap = self.tap.lock().unwrap_or_else(|p| p.into_inner());
            let recorded = self.feeder.is_some();
            // The events borrow the chunk (or the tap's buffers): each is copied once here, and
            // moved into the recording's buffer as it is. A session that is not recorded only
            // needs to know that there were events (activity), so nothing is copied for it.
            let mut sink = |event: SessionEvent<'_>| {
                any_event = true;
                if recorded {
                    events.push(event.to_owned_event());
                }
            };
            match side {
                Side::Client => tap.client_bytes(chunk, &mut sink),
                Side::Server => tap.server_bytes(chunk, &mut sink),
            }
        };
        if any_event {
            self.activity.touch();
        }
        if side == Side::Server {
            self.record_notice_before_output(&mut events);
        }
        if let Err(error) = tapped {
            self.unreadable
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if self.fail_open {
                // The chunk is forwarded: what the tap reported before the error stands.
                self.feed_all(events).await;
            }
            self.fail(format!(
                "session recording failed: the session could not be read: {error}"
            ));
            return hold(true);
        }
        if self.feed_all(events).await {
            Verdict::Forward
        } else {
            hold(false)
        }
    }

    /// Puts the notice (once) before the first output event, where the client sees it too.
    fn record_notice_before_output(&self, events: &mut Vec<OwnedSessionEvent>) {
        let Some(first_output) = events
            .iter()
            .position(|event| matches!(event, OwnedSessionEvent::Output { .. }))
        else {
            return;
        };
        let notice = self.notice.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(bytes) = notice {
            events.insert(
                first_output,
                OwnedSessionEvent::Output {
                    stream: sessiontap::OutputStream::Stdout,
                    bytes,
                },
            );
        }
    }

    /// Ends the tap (reporting an exit status if none came) and feeds what it says.
    async fn finish_tap(&self) {
        if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut events = Vec::new();
        {
            let mut tap = self.tap.lock().unwrap_or_else(|p| p.into_inner());
            tap.finish(&mut |event| events.push(event.to_owned_event()));
        }
        self.feed_all(events).await;
    }

    async fn feed_all(&self, events: Vec<OwnedSessionEvent>) -> bool {
        let Some(feeder) = &self.feeder else {
            return true;
        };
        for event in events {
            let fed = if self.fail_open {
                feeder.try_feed(event)
            } else {
                feeder.feed(event).await
            };
            match fed {
                Ok(()) => {}
                Err(FeedError::Lagging { limit_bytes }) => {
                    return self.fail(format!(
                        "session recording failed: the recorder fell behind by more than {limit_bytes} bytes"
                    ))
                }
                Err(FeedError::Stopped) => {
                    return self.fail(
                        "session recording failed: the recording stopped (recorder connection lost)"
                            .to_string(),
                    );
                }
            }
        }
        true
    }

    /// Stops recording: fail open (or a session that is not recorded) goes on unrecorded, fail
    /// closed ends the session.
    fn fail(&self, reason: String) -> bool {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if self.feeder.is_none() {
            tracing::debug!(%reason, "the session tap stopped; the session is not recorded");
            true
        } else if self.fail_open {
            tracing::warn!(%reason, "session recording stopped; the grant allows the session to go on");
            self.stopped_because
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(reason);
            true
        } else {
            self.end(Ending {
                message: format!(
                    "{reason}; the session was ended because the caller's grant requires it to be recorded"
                ),
                recording_failed: true,
            });
            false
        }
    }

    /// Ends the session (the first reason given stands).
    fn end(&self, ending: Ending) {
        self.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(ending);
                true
            } else {
                false
            }
        });
    }

    /// Fail open: why recording stopped, if it did.
    fn stopped_because(&self) -> Option<String> {
        self.stopped_because
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The bytes that show `text` on the client's stdout, from the tap (it knows the stream).
    fn stdout_bytes(&self, text: &[u8]) -> Option<Vec<u8>> {
        self.tap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stdout_bytes(text)
    }

    /// The bytes that end the session with `message`, from the tap (it knows the error stream).
    fn ending_bytes(&self, message: &str) -> Option<Vec<u8>> {
        self.tap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ending_bytes(message)
    }
}

/// Forwards both directions until both end (or the session is ended: a fail-closed recording
/// failed, or one of the proxy's limits), recording what the tap sees. `protocol`: the negotiated
/// protocol when the tap can read it; without one the session is neither recorded nor explained
/// when ended (its connections are just closed). `params`: the request's parameters, when they
/// could be read; over SPDY the tap then frees the client's header compression context once
/// the server has its streams, and a later header block from the client is a tap error.
pub(crate) async fn splice<C, U>(
    client: C,
    upstream: U,
    protocol: Option<Protocol>,
    params: Option<SessionParams>,
    recorded: Option<Recorded>,
    mut control: SessionControl,
) -> Spliced
where
    C: AsyncRead + AsyncWrite + Send + Unpin,
    U: AsyncRead + AsyncWrite + Send + Unpin,
{
    let started = Instant::now();
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let (stop_tx, stop_rx) = watch::channel(None::<Ending>);
    let (recording, fail_open, notice) = match recorded {
        Some(recorded) => (
            Some(recorded.recording),
            recorded.fail_open,
            recorded.notice,
        ),
        None => (None, true, None),
    };
    let link = protocol.map(|protocol| {
        Arc::new(Link {
            tap: Mutex::new(match &params {
                Some(params) => SessionTap::with_params(protocol, params, TapLimits::default()),
                None => SessionTap::new(protocol, TapLimits::default()),
            }),
            feeder: recording.as_ref().map(Recording::feeder),
            fail_open,
            stopped: std::sync::atomic::AtomicBool::new(false),
            stop: stop_tx.clone(),
            stopped_because: Mutex::new(None),
            unreadable: std::sync::atomic::AtomicBool::new(false),
            activity: Activity::new(),
            notice: Mutex::new(notice.clone()),
        })
    });

    // What ends the session from outside: a failed recording (fail closed), or the proxy.
    let watcher = {
        let failed = recording.as_ref().map(|r| r.failed());
        let link = link.clone();
        async move {
            let recording_failed = async {
                match (failed, &link) {
                    (Some(failed), Some(link)) => {
                        let outcome = failed.await;
                        link.fail(format!("session recording failed: {outcome}"));
                    }
                    _ => std::future::pending::<()>().await,
                }
                // Fail open goes on; fail closed is stopped through the link.
                std::future::pending::<()>().await
            };
            let quiet = Activity::new();
            let activity = link.as_ref().map_or(&quiet, |link| &link.activity);
            let proxy_ending = control.ended(activity, started);
            tokio::select! {
                () = recording_failed => {}
                ending = proxy_ending => {
                    stop_tx.send_if_modified(|current| {
                        if current.is_none() {
                            *current = Some(Ending {
                                message: ending.message(),
                                recording_failed: false,
                            });
                            true
                        } else {
                            false
                        }
                    });
                }
            }
            // Either way this future's work is done.
            std::future::pending::<std::convert::Infallible>().await
        }
    };

    let client_to_upstream = {
        let link = link.clone();
        let mut stop = stop_rx.clone();
        async move {
            let mut buffer = vec![0u8; FIRST_BUFFER];
            let mut forwarded = 0u64;
            loop {
                let read = tokio::select! {
                    read = client_read.read(&mut buffer) => read,
                    _ = stop.wait_for(Option::is_some) => break,
                };
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if let Some(link) = &link {
                    if link.observe(Side::Client, &buffer[..n]).await != Verdict::Forward {
                        break;
                    }
                }
                if upstream_write.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
                forwarded += n as u64;
                grow_when_filled(&mut buffer, n);
            }
            let _ = upstream_write.shutdown().await;
            forwarded
        }
    };

    let upstream_to_client = {
        let link = link.clone();
        let mut stop = stop_rx.clone();
        async move {
            let mut buffer = vec![0u8; FIRST_BUFFER];
            let mut forwarded = 0u64;
            let mut boundary = protocol.map(FrameBoundary::new);
            // The notice still to be shown, before the server's first output.
            let mut notice_bytes = notice;
            // A chunk read but not forwarded: where the stream continues.
            let mut held = Held::default();
            let ending = loop {
                let read = tokio::select! {
                    // An ending wins over bytes that are ready: its explanation must not be lost
                    // to the upstream closing because the other direction already stopped.
                    biased;
                    ending = stop.wait_for(Option::is_some) => {
                        break ending.ok().and_then(|e| e.clone());
                    }
                    read = upstream_read.read(&mut buffer) => read,
                };
                let n = match read {
                    // Upstream closed: because the session is being ended (the other direction
                    // stopped first and shut upstream down), or on its own.
                    Ok(0) | Err(_) => break stop.borrow().clone(),
                    Ok(n) => n,
                };
                if let Some(link) = &link {
                    if let Verdict::Hold { unread } = link.observe(Side::Server, &buffer[..n]).await
                    {
                        held = Held { len: n, unread };
                        break stop.borrow().clone();
                    }
                }
                let chunk = &buffer[..n];
                let notice_here = match (&notice_bytes, &mut boundary, &link) {
                    (Some(text), Some(boundary), Some(link)) => {
                        notice_split(link, boundary, chunk).map(|at| (at, text))
                    }
                    _ => None,
                };
                let written = match notice_here {
                    Some((at, text)) => {
                        let notice = link.as_ref().and_then(|link| link.stdout_bytes(text));
                        notice_bytes = None;
                        let written =
                            write_with_notice(&mut client_write, chunk, at, notice.as_deref())
                                .await;
                        if let Some(boundary) = &mut boundary {
                            boundary.track(&chunk[at..]);
                        }
                        written
                    }
                    None => {
                        let written = client_write.write_all(chunk).await;
                        if let Some(boundary) = &mut boundary {
                            boundary.track(chunk);
                        }
                        written
                    }
                };
                if written.is_err() {
                    break None;
                }
                forwarded += n as u64;
                grow_when_filled(&mut buffer, n);
            };
            if let (Some(ending), Some(boundary), Some(link)) = (&ending, &mut boundary, &link) {
                let pending = &buffer[..held.len];
                forwarded += explain_and_close(
                    &mut upstream_read,
                    &mut client_write,
                    boundary,
                    Pending {
                        bytes: pending,
                        unread: held.unread,
                    },
                    |message: &str| link.ending_bytes(message),
                    &ending.message,
                )
                .await;
            }
            let _ = client_write.shutdown().await;
            (forwarded, ending)
        }
    };

    let both = async { tokio::join!(client_to_upstream, upstream_to_client) };
    let ((up, (down, ending)), ()) = tokio::select! {
        done = both => (done, ()),
        never = watcher => match never {},
    };
    let recording = match recording {
        Some(recording) => {
            // A session the proxy ended has no exit status of its own: the tap's end (which
            // reads an error stream that never got its status as a success) is not asked.
            if let (Some(link), None) = (&link, &ending) {
                link.finish_tap().await;
            }
            let abandoned = match &ending {
                Some(ending) if ending.recording_failed => Some(ending.message.clone()),
                Some(ending) => {
                    recording.mark(ending.message.clone());
                    None
                }
                None => None,
            };
            let stopped = link.as_ref().and_then(|link| link.stopped_because());
            if let Some(reason) = abandoned.or(stopped) {
                recording.abandon(reason);
            }
            Some(recording.finish().await)
        }
        None => None,
    };
    Spliced {
        up,
        down,
        recording,
        ended_because: ending.map(|ending| ending.message),
        unreadable: link
            .as_ref()
            .is_some_and(|link| link.unreadable.load(std::sync::atomic::Ordering::Relaxed)),
    }
}

/// Where in `chunk` the notice goes (the boundary has then followed the chunk up to there), or
/// `None` (it has followed the whole chunk): over WebSocket before the server's first frame, over
/// SPDY before its first DATA frame on the stdout stream.
fn notice_split(link: &Link, boundary: &mut FrameBoundary, chunk: &[u8]) -> Option<usize> {
    let stdout = {
        let tap = link.tap.lock().unwrap_or_else(|p| p.into_inner());
        match tap.protocol() {
            Protocol::WebSocket(_) => None,
            Protocol::Spdy { .. } => Some(tap.spdy_stdout_stream()),
        }
    };
    match stdout {
        // The server's first bytes: the notice goes before them (a boundary).
        None if boundary.at_boundary() => Some(0),
        None => {
            boundary.track(chunk);
            None
        }
        Some(Some(stream)) => boundary.until_data_on(chunk, stream),
        Some(None) => {
            boundary.track(chunk);
            None
        }
    }
}

/// Writes `chunk` with `notice` (when there is one) at `at`.
async fn write_with_notice<W: AsyncWrite + Unpin>(
    client: &mut W,
    chunk: &[u8],
    at: usize,
    notice: Option<&[u8]>,
) -> std::io::Result<()> {
    client.write_all(&chunk[..at]).await?;
    if let Some(notice) = notice {
        client.write_all(notice).await?;
    }
    client.write_all(&chunk[at..]).await
}

/// The length of the server chunk that was read but not forwarded, and whether the tap failed on it.
#[derive(Clone, Copy, Default)]
struct Held {
    len: usize,
    unread: bool,
}
