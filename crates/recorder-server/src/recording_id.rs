//! Recording IDs: `YYYYMMDDTHHMMSSZ-xxxxxxxx`.
//!
//! The time prefix makes IDs and file names sort by arrival; the suffix is 32 random bits (from
//! the standard library's randomly keyed SipHash, so no RNG crate is needed). Uniqueness is not
//! left to chance: the store creates the cast file with `create_new` and draws again on a clash.
//! IDs arrive in URLs, so [`is_valid_id`] admits only the characters IDs are made of, which rules
//! out path traversal.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::civil_time::compact_stamp;

/// A new ID for an upload received at `unix_seconds`.
pub(crate) fn new_id(unix_seconds: f64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u64(unix_seconds.to_bits());
    let random = hasher.finish() as u32;
    format!("{}-{random:08x}", compact_stamp(unix_seconds))
}

/// Whether `id` could be a recording ID (and so is safe as a file name).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_sortable_and_distinct() {
        let a = new_id(1_714_564_984.0);
        let b = new_id(1_714_564_984.0);
        assert!(a.starts_with("20240501T120304Z-"), "{a}");
        assert_eq!(a.len(), "20240501T120304Z-".len() + 8);
        assert!(is_valid_id(&a));
        assert_ne!(a, b);
        for bad in ["", "..", "a/b", "a\\b", "x.cast", &"a".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
