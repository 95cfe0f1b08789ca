//! Event ids: random version-4 UUIDs, so the ids of events from several proxies never collide and
//! a response event can name its request event.

use std::sync::Mutex;

use ring::rand::{SecureRandom as _, SystemRandom};

/// Random bytes drawn from the system at once: one `getrandom` call serves this many bytes'
/// worth of ids (256), instead of one system call per API request.
const POOL_BYTES: usize = 4096;

/// The source of event ids: the system's random generator, read a pool at a time.
#[derive(Debug)]
pub(crate) struct EventIds {
    random: SystemRandom,
    pool: Mutex<Pool>,
}

#[derive(Debug)]
struct Pool {
    bytes: Box<[u8; POOL_BYTES]>,
    /// Bytes of `bytes` already handed out; the pool is refilled when it reaches the end.
    used: usize,
}

impl EventIds {
    pub(crate) fn new() -> Self {
        EventIds {
            random: SystemRandom::new(),
            pool: Mutex::new(Pool {
                bytes: Box::new([0; POOL_BYTES]),
                used: POOL_BYTES,
            }),
        }
    }

    /// A new random UUID in its canonical text form.
    pub(crate) fn next(&self) -> String {
        let mut bytes = [0u8; 16];
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.used + bytes.len() > POOL_BYTES {
            if self.random.fill(&mut pool.bytes[..]).is_err() {
                drop(pool);
                fallback_bytes(&mut bytes);
                return format_uuid_v4(bytes);
            }
            pool.used = 0;
        }
        let at = pool.used;
        bytes.copy_from_slice(&pool.bytes[at..at + 16]);
        pool.used += 16;
        drop(pool);
        format_uuid_v4(bytes)
    }
}

/// The system's random source failing is not a reason to refuse a request; the time and a
/// counter still make the id unique within this process.
fn fallback_bytes(bytes: &mut [u8; 16]) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    bytes[..8].copy_from_slice(&nanos.to_le_bytes()[..8]);
    bytes[8..].copy_from_slice(&count.to_le_bytes());
}

/// `bytes` as a version-4 UUID (RFC 4122 variant), written straight into one string: every API
/// request of an events-enabled caller makes one.
fn format_uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_4_uuids_and_differ_across_refills_of_the_pool() {
        let ids = EventIds::new();
        // Past two refills of the pool (256 ids each).
        let all: Vec<String> = (0..600).map(|_| ids.next()).collect();
        let distinct: std::collections::HashSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        for id in &all {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    #[test]
    fn the_fallback_still_gives_distinct_ids() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        fallback_bytes(&mut a);
        fallback_bytes(&mut b);
        assert_ne!(format_uuid_v4(a), format_uuid_v4(b));
    }
}
