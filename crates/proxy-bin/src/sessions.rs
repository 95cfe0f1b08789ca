//! The proxy's open exec/attach sessions: the limits the proxy itself puts on them
//! (`--session-idle-timeout`, `--session-max-duration`) and how they end when the proxy shuts down.
//!
//! An upgraded session outlives the HTTP connection it came on (hyper hands the connection over
//! and forgets it), so the server's own connection draining cannot see it. [`Sessions`] counts
//! them instead: at shutdown new sessions are refused, running ones get the grace period to end
//! on their own, and then each is ended by the proxy with a `Status` kubectl prints, its
//! recording finished and uploaded, before the process exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How long sessions ended at shutdown get to write their ending and finish their recordings.
/// A recording's upload is confirmed within its ack window (10 s by default); this leaves room.
const ENDING_DEADLINE: Duration = Duration::from_secs(30);

/// The limits the proxy puts on every session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SessionLimits {
    /// End a session after this long without input, output or a resize.
    pub(crate) idle: Option<Duration>,
    /// End a session this long after it started.
    pub(crate) max_duration: Option<Duration>,
}

/// Why the proxy ends a session itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyEnding {
    /// No input, output or resize for this long.
    Idle(Duration),
    /// The session has run this long.
    MaxDuration(Duration),
    /// The proxy is shutting down and the grace period is over.
    Shutdown,
}

impl ProxyEnding {
    /// What kubectl prints and the recording keeps.
    pub(crate) fn message(self) -> String {
        match self {
            ProxyEnding::Idle(after) => format!(
                "session idle for {}, ended by the proxy (--session-idle-timeout)",
                human(after)
            ),
            ProxyEnding::MaxDuration(after) => format!(
                "session open for {}, ended by the proxy (--session-max-duration)",
                human(after)
            ),
            ProxyEnding::Shutdown => {
                "the proxy is shutting down; the session was ended by the proxy".to_string()
            }
        }
    }
}

/// `15m`, `1h30m`, `45s`, `1.5s`: the way the flags are written.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_millis() != 0 || secs == 0 {
        return format!("{}s", duration.as_secs_f64());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value != 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

/// The proxy's open sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    limits: SessionLimits,
    open: Arc<watch::Sender<usize>>,
    /// Set when the grace period is over: every session still open ends.
    ending: watch::Sender<bool>,
    closed: AtomicBool,
}

impl Sessions {
    pub(crate) fn new(limits: SessionLimits) -> Self {
        Sessions {
            limits,
            open: Arc::new(watch::Sender::new(0)),
            ending: watch::Sender::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// Registers a new session; `None` once the proxy is shutting down.
    pub(crate) fn open(&self) -> Option<OpenSession> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        self.open.send_modify(|n| *n += 1);
        Some(OpenSession {
            open: Arc::clone(&self.open),
            control: SessionControl {
                limits: self.limits,
                shutdown: self.ending.subscribe(),
            },
        })
    }

    /// How many sessions are open.
    #[cfg(test)]
    fn count(&self) -> usize {
        *self.open.borrow()
    }

    /// Refuses new sessions, gives the open ones `grace` to end, then ends the rest and waits
    /// (bounded) for their endings and recordings.
    pub(crate) async fn shut_down(&self, grace: Duration) {
        self.closed.store(true, Ordering::SeqCst);
        let mut open = self.open.subscribe();
        if tokio::time::timeout(grace, open.wait_for(|n| *n == 0))
            .await
            .is_ok()
        {
            return;
        }
        tracing::info!(
            sessions = *open.borrow(),
            "shutdown grace period over; ending the open sessions"
        );
        self.ending.send_replace(true);
        if tokio::time::timeout(ENDING_DEADLINE, open.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = *open.borrow(),
                "sessions did not end in time; exiting"
            );
        }
    }
}

/// A session counted as open until this is dropped.
#[derive(Debug)]
pub(crate) struct OpenSession {
    open: Arc<watch::Sender<usize>>,
    /// What ends the session.
    pub(crate) control: SessionControl,
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// What ends a session from the proxy's side: its limits and shutdown.
#[derive(Debug, Clone)]
pub(crate) struct SessionControl {
    limits: SessionLimits,
    shutdown: watch::Receiver<bool>,
}

impl SessionControl {
    /// Resolves when the proxy must end the session: `activity` is when the session last had
    /// input, output or a resize, `started` when it began.
    pub(crate) async fn ended(&mut self, activity: &Activity, started: Instant) -> ProxyEnding {
        let SessionLimits { idle, max_duration } = self.limits;
        let max_end = max_duration.map(|max| started + max);
        let shutdown = async {
            // `is_ok()` drops the borrow of the value at once (it is not `Send`).
            let shutting_down = self.shutdown.wait_for(|ending| *ending).await.is_ok();
            match shutting_down {
                true => ProxyEnding::Shutdown,
                // The proxy is gone without a shutdown: only the limits end the session now.
                false => std::future::pending().await,
            }
        };
        tokio::pin!(shutdown);
        loop {
            let idle_end = idle.map(|idle| activity.last() + idle);
            tokio::select! {
                () = sleep_until_some(idle_end) => {
                    // Activity since the deadline was computed moves it on.
                    if let Some(idle) = idle.filter(|idle| activity.last() + *idle <= Instant::now()) {
                        return ProxyEnding::Idle(idle);
                    }
                }
                () = sleep_until_some(max_end) => {
                    if let Some(max) = max_duration {
                        return ProxyEnding::MaxDuration(max);
                    }
                }
                ending = &mut shutdown => return ending,
            }
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// When a session last had input, output or a resize (keep-alives do not count).
#[derive(Debug)]
pub(crate) struct Activity(Mutex<Instant>);

impl Activity {
    pub(crate) fn new() -> Self {
        Activity(Mutex::new(Instant::now()))
    }

    /// The session did something now.
    pub(crate) fn touch(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(idle: Option<u64>, max: Option<u64>) -> SessionLimits {
        SessionLimits {
            idle: idle.map(Duration::from_secs),
            max_duration: max.map(Duration::from_secs),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_ends_after_the_timeout_and_activity_moves_it_on() {
        let sessions = Sessions::new(limits(Some(60), None));
        let mut session = sessions.open().expect("open");
        let activity = Activity::new();
        let started = Instant::now();
        let ended = session.control.ended(&activity, started);
        tokio::pin!(ended);
        // Active at 50 s: the session is not idle at 60 s.
        tokio::time::advance(Duration::from_secs(50)).await;
        activity.touch();
        assert!(
            tokio::time::timeout(Duration::from_secs(59), &mut ended)
                .await
                .is_err(),
            "activity at 50s keeps the session until 110s"
        );
        assert_eq!(ended.await, ProxyEnding::Idle(Duration::from_secs(60)));
        assert_eq!(started.elapsed(), Duration::from_secs(110));
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_ends_at_its_maximum_length_however_busy() {
        let sessions = Sessions::new(limits(Some(10), Some(30)));
        let mut session = sessions.open().expect("open");
        let activity = Arc::new(Activity::new());
        let busy = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    activity.touch();
                }
            })
        };
        let started = Instant::now();
        let ending = session.control.ended(&activity, started).await;
        busy.abort();
        assert_eq!(ending, ProxyEnding::MaxDuration(Duration::from_secs(30)));
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_refuses_new_sessions_and_ends_open_ones_after_the_grace() {
        let sessions = Arc::new(Sessions::new(SessionLimits::default()));
        let mut session = sessions.open().expect("open");
        assert_eq!(sessions.count(), 1);
        let activity = Activity::new();
        let shutting_down = {
            let sessions = Arc::clone(&sessions);
            tokio::spawn(async move { sessions.shut_down(Duration::from_secs(5)).await })
        };
        tokio::task::yield_now().await;
        assert!(
            sessions.open().is_none(),
            "no new session once shutting down"
        );
        let started = Instant::now();
        assert_eq!(
            session.control.ended(&activity, started).await,
            ProxyEnding::Shutdown
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5), "after the grace");
        drop(session);
        shutting_down.await.expect("shut down");
        assert_eq!(sessions.count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_returns_as_soon_as_the_last_session_ends() {
        let sessions = Arc::new(Sessions::new(SessionLimits::default()));
        let session = sessions.open().expect("open");
        let started = Instant::now();
        let shutting_down = {
            let sessions = Arc::clone(&sessions);
            tokio::spawn(async move { sessions.shut_down(Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(session);
        shutting_down.await.expect("shut down");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn messages_name_the_limit_as_the_flag_is_written() {
        assert_eq!(
            ProxyEnding::Idle(Duration::from_secs(900)).message(),
            "session idle for 15m, ended by the proxy (--session-idle-timeout)"
        );
        assert_eq!(
            ProxyEnding::MaxDuration(Duration::from_secs(5400)).message(),
            "session open for 1h30m, ended by the proxy (--session-max-duration)"
        );
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
    }
}
