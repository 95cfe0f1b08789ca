//! Identifiers the apiserver makes up: UIDs and `generateName` suffixes.

use std::hash::{BuildHasher, RandomState};

/// Random-looking identifiers from a per-store random key and a counter.
#[derive(Debug, Default)]
pub(crate) struct IdGenerator {
    serial: u64,
    random: RandomState,
}

impl IdGenerator {
    fn next(&mut self) -> u64 {
        self.serial += 1;
        self.random.hash_one(self.serial)
    }

    /// A v4-shaped UUID.
    pub(crate) fn uid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// The five characters `generateName` appends, from the apiserver's alphabet
    /// (`k8s.io/apimachinery/pkg/util/rand`).
    pub(crate) fn name_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut h = self.next();
        (0..5)
            .map(|_| {
                let c = ALPHABET[(h % ALPHABET.len() as u64) as usize];
                h /= ALPHABET.len() as u64;
                char::from(c)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let mut ids = IdGenerator::default();
        let uid = ids.uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, ids.uid());
        assert_eq!(ids.name_suffix().len(), 5);
    }
}
