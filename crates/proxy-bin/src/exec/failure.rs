//! Telling kubectl why a session is being ended: a `metav1.Status` written where kubectl reads the
//! command's outcome (the SPDY `error` stream, or WebSocket channel 3), at a frame boundary of the
//! server-to-client stream so the bytes already forwarded stay well-formed.
//!
//! client-go decodes a Failure status on that stream into an error carrying its message (v4+:
//! `errorDecoderV4`), and kubectl prints it; earlier protocol versions carry plain text.
//!
//! [`explain_and_close`] completes the frame in progress first, without the server's output: the
//! rest of a data frame's payload is filler ([`FrameBoundary::output_free_completion`]), since
//! nothing records the server's bytes once the session is being ended. Only frame headers and
//! control frames, which carry no output, are completed from the server's stream, starting with
//! a chunk the splice read but held back (the stream continues there, not at the next read); when
//! the tap failed on that chunk none of it is forwarded, and a stream that cannot be followed gets
//! nothing more.

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

/// Completes the frame in progress without the server's output (within a deadline), then writes
/// the session's ending at the boundary: the bytes `ending` gives for the message (the session
/// tap's [`sessiontap::SessionTap::ending_bytes`]). Returns the bytes of the server's stream that
/// were forwarded (headers and control frames only).
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
        // The chunk held back is where the stream continues, unless the tap could not read it.
        let mut next: Vec<u8> = if pending.unread {
            Vec::new()
        } else {
            pending.bytes.to_vec()
        };
        let mut may_read_more = !pending.unread;
        let mut buffer = vec![0u8; BUFFER];
        loop {
            if boundary.at_boundary() {
                return true;
            }
            if let Some(filler) = boundary.output_free_completion() {
                if client.write_all(&filler).await.is_err() {
                    return false;
                }
                boundary.track(&filler);
                continue;
            }
            if boundary.is_lost() || !may_read_more {
                return false;
            }
            // Inside a frame header or a control frame: complete it from the stream.
            if next.is_empty() {
                match upstream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => next = buffer[..n].to_vec(),
                }
            }
            let taken = boundary.until_boundary_or_data(&next);
            let len = taken.unwrap_or(next.len());
            if boundary.is_lost() || client.write_all(&next[..len]).await.is_err() {
                return false;
            }
            forwarded += len as u64;
            if taken.is_some() {
                // The rest of this chunk is the server's output (or after the boundary): never
                // forwarded.
                may_read_more = false;
            }
            next.clear();
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
    async fn the_frame_in_progress_is_completed_with_filler_not_the_servers_output() {
        let (mut boundary, held, rest, protocol) = mid_frame();
        let (forwarded, client) = explain(&mut boundary, &held, false, protocol).await;
        assert_eq!(forwarded, 0, "none of the server's output is forwarded");
        assert!(client[..rest].iter().all(|&b| b == b' '), "filler");
        assert!(
            !client.contains(&b'x'),
            "the held output never reaches the client"
        );
        let explanation = &client[rest..];
        assert!(
            String::from_utf8_lossy(explanation).contains("recording failed"),
            "{explanation:?}"
        );
    }

    #[tokio::test]
    async fn a_chunk_the_tap_could_not_read_is_never_forwarded() {
        // Mid-frame: the frame is filled, and the explanation follows.
        let (mut boundary, held, rest, protocol) = mid_frame();
        let (forwarded, client) = explain(&mut boundary, &held, true, protocol).await;
        assert_eq!(forwarded, 0);
        assert!(client[..rest].iter().all(|&b| b == b' '));
        assert!(String::from_utf8_lossy(&client).contains("recording failed"));
        // At a boundary: the explanation, and nothing of the chunk.
        let mut boundary = FrameBoundary::new(protocol);
        let (forwarded, client) = explain(&mut boundary, &held, true, protocol).await;
        assert_eq!(forwarded, 0);
        assert!(String::from_utf8_lossy(&client).contains("recording failed"));
        let start = &held[..64];
        assert!(!client.windows(start.len()).any(|w| w == start));
    }

    #[tokio::test]
    async fn headers_are_completed_from_the_stream_and_payloads_with_filler() {
        let protocol = Protocol::Spdy {
            version: RemoteCommandVersion::V4,
        };
        // Forwarded so far: 3 bytes of a DATA frame header. The held chunk has the header's rest
        // and its 2-byte payload: the header is completed from the stream, the payload filled.
        let mut boundary = FrameBoundary::new(protocol);
        boundary.track(&[0x00, 0x00, 0x00]);
        let held = [0x01, 0x00, 0x00, 0x00, 0x02, b'a', b'b', 0x80, 0x09];
        let (forwarded, client) = explain(&mut boundary, &held, false, protocol).await;
        assert_eq!(forwarded, 5);
        assert_eq!(client[..7], [0x01, 0x00, 0x00, 0x00, 0x02, b' ', b' ']);
        assert!(String::from_utf8_lossy(&client[7..]).contains("recording failed"));
        // A stream already lost: nothing is forwarded and nothing is added.
        let mut lost = FrameBoundary::new(protocol);
        lost.track(&[0x80, 0x09, 0x00, 0x01, 0, 0, 0, 0]);
        let (forwarded, client) = explain(&mut lost, b"more", false, protocol).await;
        assert_eq!((forwarded, client.len()), (0, 0));
    }

    #[tokio::test]
    async fn a_fragmented_websocket_message_is_filled_and_ended() {
        let protocol = Protocol::WebSocket(sessiontap::ChannelProtocol::V5);
        // A binary stdout message in two fragments; the first is forwarded whole, the second
        // (final) frame's header and 1 of its 4 payload bytes too.
        let mut wire = vec![0x02, 0x03, 0x01, b'o', b'u'];
        wire.extend_from_slice(&[0x80, 0x04, b't', b'1', b'2', b'3']);
        let mut boundary = FrameBoundary::new(protocol);
        boundary.track(&wire[..8]);
        let (forwarded, client) = explain(&mut boundary, &wire[8..], false, protocol).await;
        assert_eq!(forwarded, 0);
        assert_eq!(client[..3], *b"   ");
        let mut check = FrameBoundary::new(protocol);
        check.track(&wire[..8]);
        check.track(&client);
        assert!(
            check.at_boundary(),
            "the message was completed and the Status framed"
        );
        // A fragment whose FIN is not set gets an empty final continuation after its filler.
        let mut boundary = FrameBoundary::new(protocol);
        boundary.track(&wire[..4]);
        let (_, client) = explain(&mut boundary, &wire[4..], false, protocol).await;
        assert_eq!(client[..3], [b' ', 0x80, 0x00]);
    }
}
