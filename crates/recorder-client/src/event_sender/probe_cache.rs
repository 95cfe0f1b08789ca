//! The recorders' answers to `HEAD /v2/event`, kept for a while so that events do not pay a probe
//! each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Whether each recorder supports events, as it last answered, for `ttl`.
pub(super) struct ProbeCache {
    ttl: Duration,
    answers: Mutex<HashMap<SocketAddr, (bool, Instant)>>,
}

impl ProbeCache {
    pub(super) fn new(ttl: Duration) -> Self {
        ProbeCache {
            ttl,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(supported)` while the recorder's last answer is fresh.
    pub(super) fn get(&self, addr: SocketAddr) -> Option<bool> {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers
            .get(&addr)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|&(supported, _)| supported)
    }

    pub(super) fn set(&self, addr: SocketAddr, supported: bool) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.insert(addr, (supported, Instant::now()));
    }

    pub(super) fn forget(&self, addr: SocketAddr) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.remove(&addr);
    }
}
