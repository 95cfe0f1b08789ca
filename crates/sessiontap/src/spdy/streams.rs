//! Which SPDY stream holds which role, read the way the server reads it.
//!
//! The role of a stream is the `streamtype` header of the client's SYN_STREAM, and what counts is
//! what the kubelet makes of it:
//! - moby/spdystream (`spdy/read.go`, `parseHeaderValueBlock`) lowercases each header name, splits
//!   each value on NUL and `Add`s every piece to a Go `http.Header`, whose keys are canonical, so
//!   names match in any letter case; the kubelet (`httpstream.go`, `waitForStreams`) reads
//!   `stream.Headers().Get("streamType")`: the first piece of the first `streamtype` value. So
//!   `"stdout\0anything"` is stdout. (spdystream also reports a name that was not lowercase, or
//!   that came twice, as an error that stops it reading the connection; the tap reads such a
//!   block like any other, which at worst binds a role to a stream the server never made, and
//!   binding each role once makes that harmless: see below.)
//! - While waiting for the session's streams the kubelet assigns each stream to its role as it
//!   arrives, a later one replacing an earlier one (in an order spdystream's frame workers
//!   decide), and once the session runs it takes no more streams and writes to the ones it has.
//!   The tap cannot know which of two streams of a role won, so it binds each role to the first
//!   stream that claims it and treats a second claim as unreadable ([`SpdyStreamError`]). Since
//!   the tap sees every SYN_STREAM the server sees, in order, any stream the server writes
//!   output to is then the tap's stdout or stderr stream, or the tap has stopped.
//! - spdystream writes data on a stream whether or not the client reset it (`Stream.Write`
//!   does not look; `Connection.handleResetFrame` only stops reading it), so a stream keeps its
//!   role to the end of the session.

use spdyframe::{HeaderBlock, StreamId};

use crate::error::SpdyStreamError;

/// What a stream is for, from its `streamtype` header. The discriminant indexes [`Streams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Error = 0,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl Role {
    const ALL: [Role; 5] = [
        Role::Error,
        Role::Stdin,
        Role::Stdout,
        Role::Stderr,
        Role::Resize,
    ];

    /// apimachinery `pkg/apis/core/v1` `StreamType*` values (compared exactly, as kubelet does).
    fn from_stream_type(value: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.stream_type() == value)
    }

    /// The `streamtype` value of the role.
    pub(crate) fn stream_type(self) -> &'static str {
        match self {
            Role::Error => "error",
            Role::Stdin => "stdin",
            Role::Stdout => "stdout",
            Role::Stderr => "stderr",
            Role::Resize => "resize",
        }
    }

    /// The role a SYN_STREAM's headers give its stream, as the kubelet reads them (see the
    /// module docs): the first NUL-separated piece of the first `streamtype` value, the name
    /// matched in any letter case.
    pub(crate) fn of_syn_stream(headers: &HeaderBlock) -> Option<Role> {
        let (_, value) = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("streamtype"))?;
        let first = value.split_once('\0').map_or(value, |(first, _)| first);
        Role::from_stream_type(first)
    }
}

/// The stream holding one role, and which sides have closed it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    id: Option<StreamId>,
    /// The client half-closed or reset it: its later data is not read by the server.
    pub(crate) client_closed: bool,
    /// The server half-closed it (FIN): ends the error stream.
    pub(crate) server_closed: bool,
}

/// The streams of the session, one slot per role (indexed like [`Role::ALL`]). Memory stays
/// fixed however many streams a client opens.
#[derive(Debug, Default)]
pub(crate) struct Streams([Slot; 5]);

impl Streams {
    /// The role of `id` and its slot, if it has one.
    pub(crate) fn find(&mut self, id: StreamId) -> Option<(Role, &mut Slot)> {
        Role::ALL
            .into_iter()
            .zip(self.0.iter_mut())
            .find(|(_, slot)| slot.id == Some(id))
    }

    /// The stream holding `role`, once it is open.
    pub(crate) fn id_of(&self, role: Role) -> Option<StreamId> {
        self.0[role as usize].id
    }

    /// A SYN_STREAM opens `id` with `role` (`None`: no role the session uses). Each role is bound
    /// once, and a stream id that holds a role cannot be opened again.
    pub(crate) fn open(&mut self, id: StreamId, role: Option<Role>) -> Result<(), SpdyStreamError> {
        if let Some((held, _)) = self.find(id) {
            return Err(SpdyStreamError::StreamReopened {
                stream_id: id,
                stream_type: held.stream_type(),
            });
        }
        let Some(role) = role else {
            return Ok(());
        };
        let slot = &mut self.0[role as usize];
        if let Some(first) = slot.id {
            return Err(SpdyStreamError::RoleReopened {
                stream_type: role.stream_type(),
                first,
                second: id,
            });
        }
        *slot = Slot {
            id: Some(id),
            ..Slot::default()
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(pairs: &[(&str, &str)]) -> Option<Role> {
        Role::of_syn_stream(&pairs.iter().copied().collect())
    }

    fn id(n: u32) -> StreamId {
        StreamId::new(n).expect("31-bit id")
    }

    #[test]
    fn stream_type_as_the_kubelet_reads_it() {
        assert_eq!(role(&[("streamtype", "stdout")]), Some(Role::Stdout));
        assert_eq!(role(&[("streamtype", "stdout\0")]), Some(Role::Stdout));
        assert_eq!(
            role(&[("streamtype", "stderr\0stdout")]),
            Some(Role::Stderr)
        );
        assert_eq!(role(&[("StreamType", "stdout")]), Some(Role::Stdout));
        assert_eq!(
            role(&[
                ("x", "stdout"),
                ("streamtype", "stdin"),
                ("streamtype", "stdout")
            ]),
            Some(Role::Stdin),
            "the first value of the first occurrence"
        );
        assert_eq!(role(&[("streamtype", "\0stdout")]), None);
        assert_eq!(role(&[("streamtype", "Stdout")]), None, "values are exact");
        assert_eq!(role(&[("streamtype", "stdout ")]), None);
        assert_eq!(role(&[("stream-type", "stdout")]), None);
    }

    #[test]
    fn each_role_is_bound_once() {
        let mut streams = Streams::default();
        streams.open(id(1), Some(Role::Error)).expect("error");
        streams.open(id(3), None).expect("a stream without a role");
        streams.open(id(5), Some(Role::Stdout)).expect("stdout");
        assert_eq!(
            streams.open(id(7), Some(Role::Stdout)),
            Err(SpdyStreamError::RoleReopened {
                stream_type: "stdout",
                first: id(5),
                second: id(7)
            })
        );
        assert_eq!(
            streams.open(id(5), None),
            Err(SpdyStreamError::StreamReopened {
                stream_id: id(5),
                stream_type: "stdout"
            })
        );
        assert_eq!(streams.id_of(Role::Stdout), Some(id(5)));
        assert_eq!(streams.id_of(Role::Stderr), None);
    }
}
