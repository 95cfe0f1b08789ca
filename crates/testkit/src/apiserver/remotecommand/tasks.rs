//! Ownership of the tasks behind exec and attach: sessions and pods' main processes outlive the
//! HTTP request that started them (the connection is upgraded), so the server keeps them here
//! and ends them all when it shuts down. Ending a task drops its processes, which kills them.

use std::future::Future;
use std::sync::Mutex;

use tokio::task::{JoinHandle, JoinSet};

/// The server's session and main-process tasks.
#[derive(Debug, Default)]
pub(crate) struct SessionTasks {
    set: Mutex<JoinSet<()>>,
}

impl SessionTasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        // A JoinSet cannot be left inconsistent by a panic in our code while locked.
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `task` until it ends or the server shuts down.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.lock();
        // Forget the tasks that have ended, so the set only holds live ones.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// Ends every task now (without waiting).
    pub(crate) fn abort_all(&self) {
        self.lock().abort_all();
    }

    /// Ends every task and waits until they are gone.
    pub(crate) async fn shutdown(&self) {
        let mut set = std::mem::take(&mut *self.lock());
        set.shutdown().await;
    }
}

/// A task that is aborted when its handle is dropped (a connection reader must not outlive its
/// session).
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task to end.
    pub(crate) async fn join(&mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
