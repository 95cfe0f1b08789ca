//! SETTINGS entries (draft section 2.6.4): a 32-bit count, then `flags(8) id(24) value(32)` each.

/// One SETTINGS entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingsEntry {
    /// Entry flags (PERSIST_VALUE = 1, PERSISTED = 2).
    pub flags: u8,
    /// Setting id (24 bits), for example 7 = INITIAL_WINDOW_SIZE.
    pub id: u32,
    /// Setting value.
    pub value: u32,
}

impl SettingsEntry {
    /// Encoded size of one entry.
    pub const LEN: usize = 8;

    /// Appends the entry's 8 bytes to `out`; ids above 24 bits are masked.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            &(u32::from(self.flags) << 24 | (self.id & 0x00ff_ffff)).to_be_bytes(),
        );
        out.extend_from_slice(&self.value.to_be_bytes());
    }

    /// A complete SETTINGS payload (count, then entries) holding `entries`.
    pub fn encode_payload(entries: &[SettingsEntry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + entries.len() * Self::LEN);
        // A payload is at most MAX_PAYLOAD bytes anyway; saturate rather than wrap.
        out.extend_from_slice(
            &u32::try_from(entries.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for entry in entries {
            entry.encode(&mut out);
        }
        out
    }
}

/// Iterator over the entries of a SETTINGS payload, from [`crate::ControlFrame::settings_entries`].
#[derive(Clone, Debug, Default)]
pub struct SettingsEntries<'a> {
    rest: &'a [u8],
}

impl<'a> SettingsEntries<'a> {
    /// The entries of `payload`, or `None` unless it holds exactly as many as it counts.
    pub(crate) fn new(payload: &'a [u8]) -> Option<Self> {
        let (count, rest) = payload.split_first_chunk::<4>()?;
        let count = usize::try_from(u32::from_be_bytes(*count)).ok()?;
        (count.checked_mul(SettingsEntry::LEN)? == rest.len()).then_some(SettingsEntries { rest })
    }
}

impl Iterator for SettingsEntries<'_> {
    type Item = SettingsEntry;

    fn next(&mut self) -> Option<SettingsEntry> {
        let (entry, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        let word = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
        Some(SettingsEntry {
            flags: entry[0],
            id: word & 0x00ff_ffff,
            value: u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len() / SettingsEntry::LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for SettingsEntries<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let entries = [
            SettingsEntry {
                flags: 1,
                id: 7,
                value: 65536,
            },
            SettingsEntry {
                flags: 0,
                id: 0x00ff_ffff,
                value: u32::MAX,
            },
        ];
        let payload = SettingsEntry::encode_payload(&entries);
        assert_eq!(payload.len(), 4 + 16);
        let parsed: Vec<_> = SettingsEntries::new(&payload)
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(parsed, entries);
    }

    #[test]
    fn count_must_match() {
        assert!(SettingsEntries::new(&[]).is_none());
        assert!(SettingsEntries::new(&[0, 0, 0, 1]).is_none());
        assert!(SettingsEntries::new(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert_eq!(
            SettingsEntries::new(&[0, 0, 0, 0]).map(Iterator::count),
            Some(0)
        );
    }
}
