//! When the client has opened every stream the server will take, so no header block from the
//! client can mean anything the server acts on any more.
//!
//! The kubelet (`pkg/kubelet/cri/streaming/remotecommand/httpstream.go`) reads the request's
//! `stdin`, `stdout`, `stderr` and `tty` flags (`NewOptions` drops `stderr` with a tty) and waits
//! for `expectedStreams` of them: the error stream, plus one per flag, plus `resize` with a tty
//! from v3 on (`supportsTerminalResizing`). `waitForStreams` counts every stream whose
//! `streamtype` its switch knows (`error`, `stdin`, `stdout`, `stderr`, and `resize` from v3 on),
//! whatever the flags said, and takes no stream after the count is reached: the session runs with
//! the streams it has. client-go (`tools/remotecommand`, `createStreams` in `v2.go` and `v3.go`)
//! opens exactly those streams, all before the first byte of the session.
//!
//! The tap counts the same streams in the client's SYN_STREAMs. Each role is bound once (see
//! [`super::streams`]), so once the count is reached the server has all its streams, and the tap
//! can drop the client's header compression context, whose zlib window is most of an idle SPDY
//! session's memory in the tap. A header block the client sends after that can no longer be read
//! and is refused: the tap fails closed instead of guessing. Counting differently from the
//! kubelet could only make the tap keep the context longer (harmless) or refuse a stream the
//! kubelet would still take (the session ends); it never lets a frame through unread.

use super::streams::Role;
use crate::params::SessionParams;
use crate::protocol::RemoteCommandVersion;

/// The streams the server still waits for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamWait {
    version: RemoteCommandVersion,
    /// Streams with a counted role still to come.
    remaining: usize,
}

impl StreamWait {
    /// The kubelet's `expectedStreams` for a request with `params`, speaking `version`.
    pub(crate) fn new(params: &SessionParams, version: RemoteCommandVersion) -> Self {
        let implied = [
            params.stdin,
            params.stdout,
            params.stderr && !params.tty,
            params.tty && version.has_resize(),
        ];
        StreamWait {
            version,
            remaining: 1 + implied.into_iter().filter(|&flag| flag).count(),
        }
    }

    /// The client opened a stream with `role` (bound for the first time: a second stream for a
    /// role is an error before it gets here). Returns whether the server now has every stream
    /// it waits for.
    pub(crate) fn opened(&mut self, role: Option<Role>) -> bool {
        let counted = match role {
            None => false,
            Some(Role::Resize) => self.version.has_resize(),
            Some(Role::Error | Role::Stdin | Role::Stdout | Role::Stderr) => true,
        };
        if counted {
            self.remaining = self.remaining.saturating_sub(1);
        }
        self.remaining == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> SessionParams {
        SessionParams::from_query(query).expect("query")
    }

    /// How many streams with these roles, opened in order, complete the wait (`None`: never).
    fn completes_after(wait: &mut StreamWait, roles: &[Option<Role>]) -> Option<usize> {
        roles
            .iter()
            .position(|role| wait.opened(*role))
            .map(|index| index + 1)
    }

    #[test]
    fn the_streams_client_go_opens_complete_the_wait_with_the_last_one() {
        use Role::*;
        let v4 = RemoteCommandVersion::V4;
        let v2 = RemoteCommandVersion::V2;
        for (query, version, roles) in [
            ("stdout=1", v4, vec![Error, Stdout]),
            ("stdin=1&stdout=1", v4, vec![Error, Stdin, Stdout]),
            (
                "stdin=1&stdout=1&stderr=1",
                v4,
                vec![Error, Stdin, Stdout, Stderr],
            ),
            // kubectl exec -it: no stderr with a tty, a resize stream from v3 on.
            (
                "stdin=1&stdout=1&stderr=1&tty=1",
                v4,
                vec![Error, Stdin, Stdout, Resize],
            ),
            ("stdin=1&stdout=1&tty=1", v2, vec![Error, Stdin, Stdout]),
            ("stdout=1&stderr=1", v2, vec![Error, Stdout, Stderr]),
        ] {
            let mut wait = StreamWait::new(&params(query), version);
            let roles: Vec<_> = roles.into_iter().map(Some).collect();
            assert_eq!(
                completes_after(&mut wait, &roles),
                Some(roles.len()),
                "{query} {version:?}"
            );
        }
    }

    #[test]
    fn streams_are_counted_as_the_kubelet_counts_them() {
        use Role::*;
        // Any stream type the kubelet knows counts, asked for or not.
        let mut wait = StreamWait::new(&params("stdout=1"), RemoteCommandVersion::V4);
        assert_eq!(
            completes_after(&mut wait, &[Some(Stdin), Some(Stderr)]),
            Some(2)
        );
        // Unknown types do not count, nor `resize` before v3.
        let mut wait = StreamWait::new(&params("stdout=1"), RemoteCommandVersion::V2);
        assert_eq!(
            completes_after(
                &mut wait,
                &[None, Some(Resize), Some(Error), None, Some(Stdout)]
            ),
            Some(5)
        );
        let mut wait = StreamWait::new(&params("stdout=1"), RemoteCommandVersion::V3);
        assert_eq!(
            completes_after(&mut wait, &[Some(Resize), Some(Error)]),
            Some(2)
        );
    }
}
