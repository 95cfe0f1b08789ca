//! Telling kubectl why a session is being ended: a `metav1.Status` written where kubectl reads the
//! command's outcome (the SPDY `error` stream, or WebSocket channel 3), at a frame boundary of the
//! server-to-client stream so the bytes already forwarded stay well-formed.
//!
//! client-go decodes a Failure status on that stream into an error carrying its message (v4+:
//! `errorDecoderV4`), and kubectl prints it; earlier protocol versions carry plain text.
//!
//! [`explain_and_close`] completes the frame in progress first, starting with a server chunk the
//! splice read but held back (the stream continues there, not at the next read); when the tap
//! failed on that chunk nothing of it is forwarded, so the explanation only goes where a boundary
//! was already reached, and a stream that cannot be followed gets nothing more.

use std::time::Duration;

use sessiontap::FrameBoundary;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::splice::BUFFER;

/// How long a fail-closed session may take to reach a frame boundary before it is cut without
/// the explanation.
const BOUNDARY_DEADLINE: Duration = Duration::from_millis(1500);

/// Upstream bytes read but not forwarded when the session had to end.
pub(super) struct Pending<'a> {
    /// The bytes.
    pub(super) bytes: &'a [u8],
    /// The tap failed on these bytes: none of them may be forwarded.
    pub(super) unread: bool,
}

/// Forwards upstream bytes up to the next frame boundary (within a deadline), starting with
/// `pending`, then writes the session's ending there: the bytes `ending` gives for the message
/// (the session tap's [`sessiontap::SessionTap::ending_bytes`]). Returns the bytes forwarded.
pub(super) async fn explain_and_close<R, W>(
    upstream: &mut R,
    client: &mut W,
    boundary: &mut FrameBoundary,
    pending: Pending<'_>,
    ending: impl FnOnce(&str) -> Option<Vec<u8>>,
    message: &str,
) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut forwarded = 0u64;
    let reach = async {
        if pending.unread {
            // The bytes after what was forwarded are ones the tap could not read: only a
            // boundary already reached can take the explanation.
            return boundary.at_boundary();
        }
        match forward_to_boundary(client, boundary, pending.bytes, &mut forwarded).await {
            Step::Reached => return true,
            Step::Stop => return false,
            Step::More => {}
        }
        let mut buffer = vec![0u8; BUFFER];
        loop {
            let n = match upstream.read(&mut buffer).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            match forward_to_boundary(client, boundary, &buffer[..n], &mut forwarded).await {
                Step::Reached => return true,
                Step::Stop => return false,
                Step::More => {}
            }
        }
    };
    let at_boundary = tokio::time::timeout(BOUNDARY_DEADLINE, reach)
        .await
        .unwrap_or(false);
    if at_boundary {
        if let Some(bytes) = ending(message) {
            let _ = client.write_all(&bytes).await;
            let _ = client.flush().await;
        }
    }
    forwarded
}

/// Where [`forward_to_boundary`] left the stream.
enum Step {
    /// At a boundary: the explanation can be written.
    Reached,
    /// The frame in progress goes on past these bytes.
    More,
    /// The client is gone, or the stream cannot be followed (nothing more is forwarded).
    Stop,
}

/// Forwards the part of `bytes` that completes the frame in progress.
async fn forward_to_boundary<W>(
    client: &mut W,
    boundary: &mut FrameBoundary,
    bytes: &[u8],
    forwarded: &mut u64,
) -> Step
where
    W: AsyncWrite + Unpin,
{
    if boundary.at_boundary() {
        return Step::Reached;
    }
    let cut = boundary.until_boundary(bytes, true);
    if boundary.is_lost() {
        return Step::Stop;
    }
    let len = cut.unwrap_or(bytes.len());
    if client.write_all(&bytes[..len]).await.is_err() {
        return Step::Stop;
    }
    *forwarded += len as u64;
    if boundary.at_boundary() {
        Step::Reached
    } else {
        Step::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
    use sessiontap::{ending_bytes, Protocol, RemoteCommandVersion, SessionParams, StreamId};

    fn session(protocol: Protocol) -> ScriptedSession {
        ScriptedSession {
            protocol,
            params: SessionParams::from_query("command=sh&stdout=true&stderr=true").expect("query"),
            steps: vec![Step::Stdout(vec![b'x'; 100_000]), Step::Exit(0)],
        }
    }

    /// A v4 session whose server stream is cut in the middle of a 100 kB stdout frame, the
    /// frame's rest, and what the server sends after it.
    fn mid_frame() -> (FrameBoundary, Vec<u8>, usize, Protocol) {
        let protocol = Protocol::Spdy {
            version: RemoteCommandVersion::V4,
        };
        let wire = session(protocol).encode(&EncodeOptions::default());
        let server = wire.server_to_client;
        let mut boundary = FrameBoundary::new(protocol);
        let at = server.len() / 2;
        boundary.track(&server[..at]);
        let mut probe = FrameBoundary::new(protocol);
        probe.track(&server[..at]);
        let rest = probe
            .until_boundary(&server[at..], true)
            .expect("a boundary follows");
        (boundary, server[at..].to_vec(), rest, protocol)
    }

    async fn explain(
        boundary: &mut FrameBoundary,
        pending: &[u8],
        unread: bool,
        protocol: Protocol,
    ) -> (u64, Vec<u8>) {
        let mut client = Vec::new();
        let forwarded = explain_and_close(
            &mut tokio::io::empty(),
            &mut client,
            boundary,
            Pending {
                bytes: pending,
                unread,
            },
            |message: &str| ending_bytes(protocol, StreamId::new(1), message),
            "recording failed",
        )
        .await;
        (forwarded, client)
    }

    #[tokio::test]
    async fn a_held_chunk_completes_the_frame_before_the_explanation() {
        let (mut boundary, held, rest, protocol) = mid_frame();
        let (forwarded, client) = explain(&mut boundary, &held, false, protocol).await;
        assert_eq!(forwarded, rest as u64, "only the frame's rest");
        assert_eq!(client[..rest], held[..rest]);
        let explanation = &client[rest..];
        assert!(
            String::from_utf8_lossy(explanation).contains("recording failed"),
            "{explanation:?}"
        );
    }

    #[tokio::test]
    async fn a_chunk_the_tap_could_not_read_is_never_forwarded() {
        // Mid-frame: nothing can be added, not even the explanation.
        let (mut boundary, held, _, protocol) = mid_frame();
        let (forwarded, client) = explain(&mut boundary, &held, true, protocol).await;
        assert_eq!((forwarded, client.len()), (0, 0));
        // At a boundary: the explanation, and nothing of the chunk.
        let mut boundary = FrameBoundary::new(protocol);
        let (forwarded, client) = explain(&mut boundary, &held, true, protocol).await;
        assert_eq!(forwarded, 0);
        assert!(String::from_utf8_lossy(&client).contains("recording failed"));
        let start = &held[..64];
        assert!(!client.windows(start.len()).any(|w| w == start));
    }

    #[tokio::test]
    async fn a_stream_that_cannot_be_followed_gets_nothing_more() {
        let protocol = Protocol::Spdy {
            version: RemoteCommandVersion::V4,
        };
        let mut boundary = FrameBoundary::new(protocol);
        // Forwarded so far: a 2-byte data frame's header and first byte. The held chunk has
        // its last byte, then garbage (a control frame of version 9): the frame is completed
        // and the explanation goes right after it, before the garbage.
        boundary.track(&[0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, b'a']);
        let held = [b'b', 0x80, 0x09, 0x00, 0x01, 0, 0, 0, 0, b'x'];
        let (forwarded, client) = explain(&mut boundary, &held, false, protocol).await;
        assert_eq!(forwarded, 1);
        assert_eq!(client[0], b'b');
        assert!(String::from_utf8_lossy(&client[1..]).contains("recording failed"));
        // A stream already lost: nothing is forwarded and nothing is added.
        let mut lost = FrameBoundary::new(protocol);
        lost.track(&[0x80, 0x09, 0x00, 0x01, 0, 0, 0, 0]);
        let (forwarded, client) = explain(&mut lost, b"more", false, protocol).await;
        assert_eq!((forwarded, client.len()), (0, 0));
    }
}
