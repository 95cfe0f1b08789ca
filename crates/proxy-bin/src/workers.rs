//! Threads that serve client connections, each running a single-threaded async runtime of its
//! own (`--worker-threads`), as an event-loop server's workers do.
//!
//! The accept loop hands each connection to one worker, round robin; from then on everything
//! of that connection (TLS, HTTP, its own upstream connection, an exec session's splice and its
//! recording upload) runs on that worker's thread. A multi-threaded runtime would instead wake
//! its other workers to steal tasks and move a connection's tasks between threads: wake-ups
//! across threads that cost more than the work on a small request (see docs/performance.md).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The connection workers. Dropping them stops their threads, ending every task still on them
/// (the proxy drops them once connections and sessions have ended).
#[derive(Debug)]
pub(crate) struct ConnectionWorkers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropped to stop the threads.
    _stop: Vec<oneshot::Sender<()>>,
}

impl ConnectionWorkers {
    /// Starts `count` worker threads (at least one).
    pub(crate) fn start(count: usize) -> std::io::Result<ConnectionWorkers> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for index in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            runtime.spawn(keep_a_timer_armed());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("kap-worker-{index}"))
                .spawn(move || {
                    // Runs the connections spawned onto it until the workers are dropped.
                    let _ = runtime.block_on(stopped);
                })?;
        }
        Ok(ConnectionWorkers {
            handles,
            next: AtomicUsize::new(0),
            _stop: stops,
        })
    }

    /// Runs `connection` on the next worker.
    pub(crate) fn spawn<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[index].spawn(connection);
    }

    /// How many workers there are.
    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }
}

/// How often the worker's standing timer fires: far shorter than any timeout its connections
/// arm (the 30 s header timeout, the idle timeouts), long enough to cost nothing.
const STANDING_TIMER_PERIOD: Duration = Duration::from_secs(1);

/// Keeps one timer armed on the worker's runtime at all times. Tokio's timer wakes the runtime's
/// driver (a `write(2)` to its eventfd, and one more turn of `epoll_wait`) whenever a timer is
/// armed that is due before every timer the driver went to sleep with, which is any timer when it
/// went to sleep with none. Connections arm a header timeout for every request head, so a worker
/// whose connections were all waiting on the upstream paid that wake-up on the next request
/// (measured under GET load: 0.29 `write(2)` per request, all from hyper's header timer). With a
/// timer due within a second always armed, the 30 s header timeouts are never the earliest.
async fn keep_a_timer_armed() {
    let mut ticks = tokio::time::interval(STANDING_TIMER_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn connections_go_round_robin_each_to_one_thread() {
        let workers = ConnectionWorkers::start(2).unwrap();
        assert_eq!(workers.len(), 2);
        let mut threads = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = oneshot::channel();
            workers.spawn(async move {
                let before = std::thread::current().id();
                tokio::task::yield_now().await;
                let _ = tx.send((before, std::thread::current().id()));
            });
            threads.push(rx.await.unwrap());
        }
        // A connection never moves between threads, and consecutive ones alternate.
        assert!(threads.iter().all(|(before, after)| before == after));
        assert_ne!(threads[0].0, threads[1].0);
        assert_eq!(threads[0].0, threads[2].0);
        assert_eq!(threads[1].0, threads[3].0);
    }
}
