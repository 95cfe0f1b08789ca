//! Event ids: random version-4 UUIDs, so the ids of events from several proxies never collide and
//! a response event can name its request event.

use ring::rand::{SecureRandom as _, SystemRandom};

/// A new random UUID in its canonical text form.
pub(crate) fn new_event_id(random: &SystemRandom) -> String {
    let mut bytes = [0u8; 16];
    if random.fill(&mut bytes).is_err() {
        // The system's random source failing is not a reason to refuse a request; the time and a
        // counter still make the id unique within this process.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&nanos.to_le_bytes()[..8]);
        bytes[8..].copy_from_slice(&count.to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
                                         // Every API request of an events-enabled caller makes one: written straight into one
                                         // string rather than formatted piece by piece.
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
    fn ids_are_version_4_uuids_and_differ() {
        let random = SystemRandom::new();
        let a = new_event_id(&random);
        let b = new_event_id(&random);
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert_eq!(&a[14..15], "4", "{a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
