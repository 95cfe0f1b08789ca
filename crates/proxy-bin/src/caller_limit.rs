//! At most so many of something per caller: connections per client address, so that one caller
//! cannot hold every slot of the global connection limit (a few hung requests would otherwise lock
//! everyone else out), and exec/attach sessions per caller identity.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// What each key has open.
type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

/// Open things per key (a client address, a caller's name).
#[derive(Debug)]
pub(crate) struct CallerLimit<K = IpAddr> {
    max: usize,
    open: Counts<K>,
}

/// One thing's place under the limit; given back when dropped.
#[derive(Debug)]
pub(crate) struct CallerSlot<K: Hash + Eq = IpAddr> {
    key: K,
    open: Counts<K>,
}

impl<K: Hash + Eq + Clone> CallerLimit<K> {
    /// At most `max` per key (at least one).
    pub(crate) fn new(max: usize) -> CallerLimit<K> {
        CallerLimit {
            max: max.max(1),
            open: Arc::default(),
        }
    }

    /// The most each key may have open.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// A slot for one more for `key`, or `None` when it has `max` open.
    pub(crate) fn try_acquire_key(&self, key: K) -> Option<CallerSlot<K>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(CallerSlot {
            key,
            open: self.open.clone(),
        })
    }
}

impl CallerLimit<IpAddr> {
    /// A slot for one more connection from `address`, or `None` when it has `max` open.
    pub(crate) fn try_acquire(&self, address: IpAddr) -> Option<CallerSlot> {
        // IPv4 peers of a dual-stack listener arrive as ::ffff:a.b.c.d; count them as IPv4.
        self.try_acquire_key(address.to_canonical())
    }
}

impl<K: Hash + Eq> Drop for CallerSlot<K> {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_own_allowance_back_when_done() {
        let limit = CallerLimit::new(2);
        let a: IpAddr = "100.64.0.1".parse().expect("ip");
        let b: IpAddr = "100.64.0.2".parse().expect("ip");
        let first = limit.try_acquire(a).expect("first");
        let _second = limit.try_acquire(a).expect("second");
        assert!(
            limit.try_acquire(a).is_none(),
            "a third from the same address"
        );
        let mapped: IpAddr = "::ffff:100.64.0.1".parse().expect("ip");
        assert!(
            limit.try_acquire(mapped).is_none(),
            "the same address, IPv4-mapped"
        );
        assert!(limit.try_acquire(b).is_some(), "another address");
        drop(first);
        assert!(limit.try_acquire(a).is_some(), "a slot given back");
    }

    #[test]
    fn any_key_works_the_same() {
        let limit = CallerLimit::<String>::new(1);
        let alice = limit.try_acquire_key("alice".to_string()).expect("first");
        assert!(limit.try_acquire_key("alice".to_string()).is_none());
        assert!(limit.try_acquire_key("bob".to_string()).is_some());
        drop(alice);
        assert!(limit.try_acquire_key("alice".to_string()).is_some());
    }
}
