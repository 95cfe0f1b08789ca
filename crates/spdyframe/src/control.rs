//! Control frames as borrowed views of their payload (draft section 2.6).

use crate::settings::SettingsEntries;
use crate::{FrameError, StreamId};

/// Control frame type numbers (draft section 2.6).
pub mod frame_type {
    /// SYN_STREAM: opens a stream.
    pub const SYN_STREAM: u16 = 1;
    /// SYN_REPLY: accepts a stream.
    pub const SYN_REPLY: u16 = 2;
    /// RST_STREAM: aborts a stream.
    pub const RST_STREAM: u16 = 3;
    /// SETTINGS: connection settings.
    pub const SETTINGS: u16 = 4;
    /// NOOP: SPDY/2 only, removed in SPDY/3; skipped as [`crate::ControlFrame::Unknown`].
    pub const NOOP: u16 = 5;
    /// PING: liveness check, echoed by the peer.
    pub const PING: u16 = 6;
    /// GOAWAY: the sender accepts no new streams.
    pub const GOAWAY: u16 = 7;
    /// HEADERS: more headers for an open stream.
    pub const HEADERS: u16 = 8;
    /// WINDOW_UPDATE: flow control credit.
    pub const WINDOW_UPDATE: u16 = 9;
}

/// A control frame, borrowing its variable-length parts from the bytes it was parsed from.
///
/// Stream ids are read through the 31-bit mask (the reserved top bit is ignored), as are
/// WINDOW_UPDATE deltas. Header blocks are still zlib-compressed: pass every one of a direction,
/// in order, to that direction's [`crate::HeaderInflater`].
///
/// Every variant keeps the flags byte as it was on the wire (SPDY/3 defines none for RST_STREAM,
/// PING, GOAWAY and WINDOW_UPDATE, but a peer may set bits, and a reader that re-encodes or
/// inspects frames must see them), and [`ControlFrame::payload_len`] gives the payload length the
/// frame header carried.
///
/// Non-exhaustive: a later version may give a type that is now [`ControlFrame::Unknown`] (such as
/// CREDENTIAL) its own variant, so a `match` needs a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlFrame<'a> {
    /// SYN_STREAM (type 1): opens `stream_id`.
    SynStream {
        /// The new stream.
        stream_id: StreamId,
        /// The stream this one is associated with (server push); 0 for none.
        associated_stream_id: StreamId,
        /// Priority, 0 (highest) to 7: the top 3 bits of the byte after the ids. Only those 3
        /// bits are encoded.
        priority: u8,
        /// Credential slot (0 when unused).
        slot: u8,
        /// [`crate::FLAG_FIN`], [`crate::FLAG_UNIDIRECTIONAL`].
        flags: u8,
        /// The compressed header block (payload from offset 10).
        header_block: &'a [u8],
    },
    /// SYN_REPLY (type 2): accepts `stream_id`.
    SynReply {
        /// The stream being accepted.
        stream_id: StreamId,
        /// [`crate::FLAG_FIN`].
        flags: u8,
        /// The compressed header block (payload from offset 4).
        header_block: &'a [u8],
    },
    /// RST_STREAM (type 3): aborts `stream_id` with `status` (for example 5, CANCEL).
    RstStream {
        /// The stream being reset.
        stream_id: StreamId,
        /// The status code.
        status: u32,
        /// Frame flags (none defined; kept as sent).
        flags: u8,
    },
    /// SETTINGS (type 4). `payload` is the whole frame payload (entry count and entries);
    /// [`ControlFrame::settings_entries`] iterates over the entries.
    Settings {
        /// Frame flags (CLEAR_SETTINGS = 1).
        flags: u8,
        /// The payload: a 32-bit entry count, then 8 bytes per entry. Parsed frames are checked
        /// to hold exactly that many entries.
        payload: &'a [u8],
    },
    /// PING (type 6): the receiver echoes it with the same id.
    Ping {
        /// The ping id.
        id: u32,
        /// Frame flags (none defined; kept as sent).
        flags: u8,
    },
    /// GOAWAY (type 7): no new streams after `last_good_stream_id`.
    GoAway {
        /// The last stream the sender acted on.
        last_good_stream_id: StreamId,
        /// The status code (0 OK, 1 PROTOCOL_ERROR, 2 INTERNAL_ERROR).
        status: u32,
        /// Frame flags (none defined; kept as sent).
        flags: u8,
    },
    /// HEADERS (type 8): more headers for `stream_id`.
    Headers {
        /// The stream.
        stream_id: StreamId,
        /// [`crate::FLAG_FIN`].
        flags: u8,
        /// The compressed header block (payload from offset 4).
        header_block: &'a [u8],
    },
    /// WINDOW_UPDATE (type 9): flow-control credit (which spdystream ignores).
    WindowUpdate {
        /// The stream.
        stream_id: StreamId,
        /// The credit in bytes (31 bits).
        delta: u32,
        /// Frame flags (none defined; kept as sent).
        flags: u8,
    },
    /// NOOP (type 5), CREDENTIAL (type 10) or any type this crate does not know: skipped over
    /// with its payload uninterpreted.
    Unknown {
        /// The frame type.
        frame_type: u16,
        /// Frame flags.
        flags: u8,
        /// The raw payload.
        payload: &'a [u8],
    },
}

impl<'a> ControlFrame<'a> {
    /// Parses the payload of a control frame of type `frame_type` (its header already read).
    ///
    /// Fixed-size frames must have exactly their size (RST_STREAM, GOAWAY and WINDOW_UPDATE 8
    /// bytes, PING 4); frames with a header block must be long enough for their fixed fields;
    /// SETTINGS must hold exactly the entries it counts. Unknown types always parse.
    pub fn parse(frame_type: u16, flags: u8, payload: &'a [u8]) -> Result<Self, FrameError> {
        let invalid = |reason| FrameError::InvalidControlFrame { frame_type, reason };
        let word = |at: usize| -> u32 {
            match payload.get(at..at + 4) {
                Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
                _ => 0,
            }
        };
        let exactly = |len: usize, reason| {
            if payload.len() == len {
                Ok(())
            } else {
                Err(invalid(reason))
            }
        };
        Ok(match frame_type {
            frame_type::SYN_STREAM => {
                let (fixed, header_block) = split(payload, SYN_STREAM_FIXED)
                    .ok_or(invalid("SYN_STREAM shorter than its 10 fixed bytes"))?;
                ControlFrame::SynStream {
                    stream_id: StreamId::from_masked(word(0)),
                    associated_stream_id: StreamId::from_masked(word(4)),
                    priority: fixed[8] >> 5,
                    slot: fixed[9],
                    flags,
                    header_block,
                }
            }
            frame_type::SYN_REPLY => {
                let (_, header_block) = split(payload, STREAM_ID_LEN)
                    .ok_or(invalid("SYN_REPLY shorter than its stream id"))?;
                ControlFrame::SynReply {
                    stream_id: StreamId::from_masked(word(0)),
                    flags,
                    header_block,
                }
            }
            frame_type::RST_STREAM => {
                exactly(TWO_WORDS, "RST_STREAM length is not 8")?;
                ControlFrame::RstStream {
                    stream_id: StreamId::from_masked(word(0)),
                    status: word(4),
                    flags,
                }
            }
            frame_type::SETTINGS => {
                SettingsEntries::new(payload)
                    .ok_or(invalid("SETTINGS length does not match its entry count"))?;
                ControlFrame::Settings { flags, payload }
            }
            frame_type::PING => {
                exactly(PING_LEN, "PING length is not 4")?;
                ControlFrame::Ping { id: word(0), flags }
            }
            frame_type::GOAWAY => {
                exactly(TWO_WORDS, "GOAWAY length is not 8")?;
                ControlFrame::GoAway {
                    last_good_stream_id: StreamId::from_masked(word(0)),
                    status: word(4),
                    flags,
                }
            }
            frame_type::HEADERS => {
                let (_, header_block) = split(payload, STREAM_ID_LEN)
                    .ok_or(invalid("HEADERS shorter than its stream id"))?;
                ControlFrame::Headers {
                    stream_id: StreamId::from_masked(word(0)),
                    flags,
                    header_block,
                }
            }
            frame_type::WINDOW_UPDATE => {
                exactly(TWO_WORDS, "WINDOW_UPDATE length is not 8")?;
                ControlFrame::WindowUpdate {
                    stream_id: StreamId::from_masked(word(0)),
                    delta: word(4) & 0x7fff_ffff,
                    flags,
                }
            }
            _ => ControlFrame::Unknown {
                frame_type,
                flags,
                payload,
            },
        })
    }

    /// The control frame type number ([`frame_type`]).
    pub fn frame_type(&self) -> u16 {
        match *self {
            ControlFrame::SynStream { .. } => frame_type::SYN_STREAM,
            ControlFrame::SynReply { .. } => frame_type::SYN_REPLY,
            ControlFrame::RstStream { .. } => frame_type::RST_STREAM,
            ControlFrame::Settings { .. } => frame_type::SETTINGS,
            ControlFrame::Ping { .. } => frame_type::PING,
            ControlFrame::GoAway { .. } => frame_type::GOAWAY,
            ControlFrame::Headers { .. } => frame_type::HEADERS,
            ControlFrame::WindowUpdate { .. } => frame_type::WINDOW_UPDATE,
            ControlFrame::Unknown { frame_type, .. } => frame_type,
        }
    }

    /// The frame type's name as the draft writes it (`SYN_STREAM`, `HEADERS`, ...; `unknown` for
    /// a type this crate does not know), for messages and logs.
    pub fn name(&self) -> &'static str {
        match *self {
            ControlFrame::SynStream { .. } => "SYN_STREAM",
            ControlFrame::SynReply { .. } => "SYN_REPLY",
            ControlFrame::RstStream { .. } => "RST_STREAM",
            ControlFrame::Settings { .. } => "SETTINGS",
            ControlFrame::Ping { .. } => "PING",
            ControlFrame::GoAway { .. } => "GOAWAY",
            ControlFrame::Headers { .. } => "HEADERS",
            ControlFrame::WindowUpdate { .. } => "WINDOW_UPDATE",
            ControlFrame::Unknown { .. } => "unknown",
        }
    }

    /// The frame flags byte, as on the wire, for every type.
    pub fn flags(&self) -> u8 {
        match *self {
            ControlFrame::SynStream { flags, .. }
            | ControlFrame::SynReply { flags, .. }
            | ControlFrame::RstStream { flags, .. }
            | ControlFrame::Settings { flags, .. }
            | ControlFrame::Ping { flags, .. }
            | ControlFrame::GoAway { flags, .. }
            | ControlFrame::Headers { flags, .. }
            | ControlFrame::WindowUpdate { flags, .. }
            | ControlFrame::Unknown { flags, .. } => flags,
        }
    }

    /// The payload length: for a parsed frame, the length its frame header carried (parsing
    /// checks that the fields account for exactly that many bytes); for a frame built by hand,
    /// the length [`crate::encode_control`] writes.
    pub fn payload_len(&self) -> usize {
        match *self {
            ControlFrame::SynStream { header_block, .. } => SYN_STREAM_FIXED + header_block.len(),
            ControlFrame::SynReply { header_block, .. }
            | ControlFrame::Headers { header_block, .. } => STREAM_ID_LEN + header_block.len(),
            ControlFrame::RstStream { .. }
            | ControlFrame::GoAway { .. }
            | ControlFrame::WindowUpdate { .. } => TWO_WORDS,
            ControlFrame::Ping { .. } => PING_LEN,
            ControlFrame::Settings { payload, .. } | ControlFrame::Unknown { payload, .. } => {
                payload.len()
            }
        }
    }

    /// The stream the frame is about, for the types that name one (GOAWAY names none: its id is
    /// the last good stream, not a subject).
    pub fn stream_id(&self) -> Option<StreamId> {
        match *self {
            ControlFrame::SynStream { stream_id, .. }
            | ControlFrame::SynReply { stream_id, .. }
            | ControlFrame::RstStream { stream_id, .. }
            | ControlFrame::Headers { stream_id, .. }
            | ControlFrame::WindowUpdate { stream_id, .. } => Some(stream_id),
            ControlFrame::Settings { .. }
            | ControlFrame::Ping { .. }
            | ControlFrame::GoAway { .. }
            | ControlFrame::Unknown { .. } => None,
        }
    }

    /// The compressed header block of SYN_STREAM, SYN_REPLY and HEADERS: exactly the frames whose
    /// blocks a direction's [`crate::HeaderInflater`] must see, in order.
    pub fn header_block(&self) -> Option<&'a [u8]> {
        match *self {
            ControlFrame::SynStream { header_block, .. }
            | ControlFrame::SynReply { header_block, .. }
            | ControlFrame::Headers { header_block, .. } => Some(header_block),
            _ => None,
        }
    }

    /// The entries of a SETTINGS frame; `None` for other types. A frame built by hand whose
    /// payload is inconsistent yields no entries.
    pub fn settings_entries(&self) -> Option<SettingsEntries<'a>> {
        match *self {
            ControlFrame::Settings { payload, .. } => {
                Some(SettingsEntries::new(payload).unwrap_or_default())
            }
            _ => None,
        }
    }
}

/// The fixed part of SYN_STREAM: stream id, associated stream id, priority and slot.
const SYN_STREAM_FIXED: usize = 10;
/// The stream id that starts SYN_REPLY and HEADERS.
const STREAM_ID_LEN: usize = 4;
/// The whole payload of RST_STREAM, GOAWAY and WINDOW_UPDATE.
const TWO_WORDS: usize = 8;
/// The whole payload of PING.
const PING_LEN: usize = 4;

/// `payload` split at `at`, or `None` if it is shorter.
fn split(payload: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    (payload.len() >= at).then(|| payload.split_at(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_stream_fields_and_masks() {
        let payload = [0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 3, 0xe0, 7, 0xaa];
        let frame = ControlFrame::parse(frame_type::SYN_STREAM, 3, &payload);
        assert_eq!(
            frame,
            Ok(ControlFrame::SynStream {
                stream_id: StreamId::MAX,
                associated_stream_id: StreamId::from_masked(3),
                priority: 7,
                slot: 7,
                flags: 3,
                header_block: &[0xaa],
            })
        );
    }

    #[test]
    fn fixed_sizes_are_enforced() {
        for (t, len) in [
            (frame_type::RST_STREAM, 8),
            (frame_type::PING, 4),
            (frame_type::GOAWAY, 8),
            (frame_type::WINDOW_UPDATE, 8),
        ] {
            let bytes = [0u8; 12];
            assert!(ControlFrame::parse(t, 0, &bytes[..len]).is_ok());
            for bad in [0, len - 1, len + 1] {
                assert!(matches!(
                    ControlFrame::parse(t, 0, &bytes[..bad]),
                    Err(FrameError::InvalidControlFrame { frame_type, .. }) if frame_type == t
                ));
            }
        }
        assert!(ControlFrame::parse(frame_type::SYN_STREAM, 0, &[0; 9]).is_err());
        assert!(ControlFrame::parse(frame_type::SYN_REPLY, 0, &[0; 3]).is_err());
        assert!(ControlFrame::parse(frame_type::HEADERS, 0, &[0; 3]).is_err());
    }

    #[test]
    fn every_type_keeps_its_flags_byte_and_payload_length() {
        let block = [0xaa, 0xbb, 0xcc];
        let with_block = |fixed: usize| {
            let mut payload = vec![0u8; fixed];
            payload.extend_from_slice(&block);
            payload
        };
        let settings = [0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9];
        let cases: [(u16, Vec<u8>); 9] = [
            (frame_type::SYN_STREAM, with_block(10)),
            (frame_type::SYN_REPLY, with_block(4)),
            (frame_type::RST_STREAM, vec![0; 8]),
            (frame_type::SETTINGS, settings.to_vec()),
            (frame_type::PING, vec![0; 4]),
            (frame_type::GOAWAY, vec![0; 8]),
            (frame_type::HEADERS, with_block(4)),
            (frame_type::WINDOW_UPDATE, vec![0; 8]),
            (frame_type::NOOP, b"xyz".to_vec()),
        ];
        for (t, payload) in &cases {
            for flags in [0x00, 0x01, 0x5a, 0xff] {
                let frame = ControlFrame::parse(*t, flags, payload).expect("valid payload");
                assert_eq!(frame.frame_type(), *t);
                assert_eq!(frame.flags(), flags, "type {t}");
                assert_eq!(frame.payload_len(), payload.len(), "type {t}");
            }
        }
    }

    #[test]
    fn unknown_and_noop_pass_through() {
        let frame = ControlFrame::parse(frame_type::NOOP, 9, b"xyz");
        assert_eq!(
            frame,
            Ok(ControlFrame::Unknown {
                frame_type: 5,
                flags: 9,
                payload: b"xyz"
            })
        );
    }
}
