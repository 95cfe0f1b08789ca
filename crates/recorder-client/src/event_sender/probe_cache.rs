//! The recorders' answers to `HEAD /v2/event` and `HEAD /v2/events`, kept for a while so that
//! events do not pay a probe each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// What each recorder last answered to a probe (whether it supports events; whether and how it
/// takes batches), for `ttl`.
pub(super) struct ProbeCache<T> {
    ttl: Duration,
    answers: Mutex<HashMap<SocketAddr, (T, Instant)>>,
}

impl<T: Copy> ProbeCache<T> {
    pub(super) fn new(ttl: Duration) -> Self {
        ProbeCache {
            ttl,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(answer)` while the recorder's last answer is fresh.
    pub(super) fn get(&self, addr: SocketAddr) -> Option<T> {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        self.prune(&mut answers, Instant::now());
        answers.get(&addr).map(|&(answer, _)| answer)
    }

    pub(super) fn set(&self, addr: SocketAddr, answer: T) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        self.prune(&mut answers, now);
        answers.insert(addr, (answer, now));
    }

    pub(super) fn forget(&self, addr: SocketAddr) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.remove(&addr);
    }

    /// Drops expired answers, so that the map does not grow with a rotating set of recorder
    /// addresses. A sweep of every entry: the proxy has a handful of recorder addresses.
    fn prune(&self, answers: &mut HashMap<SocketAddr, (T, Instant)>, now: Instant) {
        answers.retain(|_, &mut (_, at)| now.duration_since(at) < self.ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([100, 64, 0, 1], port))
    }

    fn len(cache: &ProbeCache<bool>) -> usize {
        cache.answers.lock().expect("answers").len()
    }

    #[tokio::test(start_paused = true)]
    async fn expired_answers_are_dropped_when_setting_or_looking_up() {
        let cache = ProbeCache::new(Duration::from_secs(30));
        for port in 0..10 {
            cache.set(addr(port), port % 2 == 0);
        }
        assert_eq!(cache.get(addr(2)), Some(true));
        assert_eq!(len(&cache), 10);

        tokio::time::advance(Duration::from_secs(30)).await;
        cache.set(addr(100), false);
        assert_eq!(len(&cache), 1);
        assert_eq!(cache.get(addr(100)), Some(false));

        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(cache.get(addr(0)), None);
        assert_eq!(len(&cache), 0);
    }
}
