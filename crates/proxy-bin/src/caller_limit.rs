//! At most so many connections per client address, so that one caller cannot hold every slot of
//! the global connection limit (a few hung requests would otherwise lock everyone else out).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Open connections per client address.
#[derive(Debug)]
pub(crate) struct CallerLimit {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place under the limit; given back when dropped.
#[derive(Debug)]
pub(crate) struct CallerSlot {
    address: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl CallerLimit {
    /// At most `max` connections per address (at least one).
    pub(crate) fn new(max: usize) -> CallerLimit {
        CallerLimit {
            max: max.max(1),
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `address`, or `None` when it has `max` open.
    pub(crate) fn try_acquire(&self, address: IpAddr) -> Option<CallerSlot> {
        // IPv4 peers of a dual-stack listener arrive as ::ffff:a.b.c.d; count them as IPv4.
        let address = address.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(CallerSlot {
            address,
            open: self.open.clone(),
        })
    }
}

impl Drop for CallerSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
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
}
