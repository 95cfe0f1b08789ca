//! Waiting out a LocalAPI socket whose accept backlog is full for a moment.

/// The first pause after a connection attempt failed for a passing reason; it doubles up to
/// [`LONGEST_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);
/// The longest pause between two connection attempts.
const LONGEST_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs `attempt` until it succeeds or fails for a reason that will not pass by itself, pausing
/// (with exponential backoff) after each passing failure. The caller bounds the whole with its
/// timeout.
///
/// The passing failure is `EAGAIN` from `connect(2)` on a Unix socket whose accept backlog is
/// full: a burst of callers (every new client connection asks who it is) can overflow tailscaled's
/// backlog for a moment, and one of those must not turn into a refused request. Any other error
/// (no socket, nobody listening, no permission) is returned at once.
pub(crate) async fn retry_transient<T, F, Fut>(mut attempt: F) -> std::io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let mut pause = FIRST_RETRY_PAUSE;
    loop {
        match attempt().await {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_RETRY_PAUSE);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::retry_transient;

    #[tokio::test(start_paused = true)]
    async fn a_full_backlog_is_waited_out() {
        let attempts = AtomicUsize::new(0);
        let result = retry_transient(|| async {
            match attempts.fetch_add(1, Ordering::SeqCst) {
                0..=4 => Err(Error::from(ErrorKind::WouldBlock)),
                _ => Ok("connected"),
            }
        })
        .await;
        assert_eq!(result.ok(), Some("connected"));
        assert_eq!(attempts.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_are_returned_at_once() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::ConnectionRefused,
            ErrorKind::PermissionDenied,
        ] {
            let attempts = AtomicUsize::new(0);
            let result: std::io::Result<()> = retry_transient(|| async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err(Error::from(kind))
            })
            .await;
            assert_eq!(result.map_err(|e| e.kind()), Err(kind));
            assert_eq!(attempts.load(Ordering::SeqCst), 1, "{kind:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_that_stays_full_meets_the_callers_timeout() {
        let retrying =
            retry_transient(|| async { Err::<(), _>(Error::from(ErrorKind::WouldBlock)) });
        assert!(tokio::time::timeout(Duration::from_secs(2), retrying)
            .await
            .is_err());
    }
}
