//! Stream identifiers: 31 bits, the top bit of their 32-bit field is reserved.

use std::fmt;

/// A SPDY stream id: 31 bits (draft section 2.2.2). Client-initiated streams are odd,
/// server-initiated even; 0 appears only as "no stream" (for example an unset
/// associated-to-stream-id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StreamId(u32);

impl StreamId {
    /// The largest stream id, `2^31 - 1`.
    pub const MAX: StreamId = StreamId(0x7fff_ffff);

    /// Stream id 0: "no stream".
    pub const ZERO: StreamId = StreamId(0);

    /// The id `id`, or `None` if it does not fit in 31 bits.
    pub const fn new(id: u32) -> Option<StreamId> {
        if id > Self::MAX.0 {
            None
        } else {
            Some(StreamId(id))
        }
    }

    /// The id in the low 31 bits of a wire field, ignoring the reserved top bit as the draft
    /// requires of receivers.
    pub const fn from_masked(field: u32) -> StreamId {
        StreamId(field & Self::MAX.0)
    }

    /// The id as a number, at most `2^31 - 1`.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!(
            StreamId::new(0x7fff_ffff).map(StreamId::get),
            Some(0x7fff_ffff)
        );
        assert_eq!(StreamId::new(0x8000_0000), None);
        assert_eq!(StreamId::from_masked(0xffff_ffff), StreamId::MAX);
        assert_eq!(StreamId::from_masked(0x8000_0081).get(), 129);
    }
}
