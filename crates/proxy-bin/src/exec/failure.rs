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

use sessiontap::{Protocol, RemoteCommandVersion};
use spdyframe::{encode_data, FrameParser, StreamId, FLAG_FIN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use wsframe::{encode_channel_message, encode_close, ChannelProtocol, ERROR};

use super::splice::BUFFER;

/// How long a fail-closed session may take to reach a frame boundary before it is cut without
/// the explanation.
const BOUNDARY_DEADLINE: Duration = Duration::from_millis(1500);

/// Where the server-to-client stream is relative to frame (and WebSocket message) boundaries.
#[derive(Debug)]
pub(crate) enum FrameBoundary {
    /// SPDY/3.1 frames.
    Spdy(Box<FrameParser>),
    /// WebSocket frames: a new message may only start between messages, not between fragments.
    WebSocket(Box<wsframe::FrameParser>),
    /// The stream could not be followed (parse error): no safe place to add bytes.
    Lost,
}

impl FrameBoundary {
    /// A tracker for a stream of `protocol`, at its start.
    pub(crate) fn new(protocol: Protocol) -> FrameBoundary {
        match protocol {
            Protocol::Spdy { .. } => FrameBoundary::Spdy(Box::default()),
            Protocol::WebSocket(_) => FrameBoundary::WebSocket(Box::new(
                wsframe::FrameParser::new(wsframe::Limits::default()),
            )),
        }
    }

    /// Follows bytes that were forwarded whole.
    pub(crate) fn track(&mut self, chunk: &[u8]) {
        let _ = self.until_boundary(chunk, false);
    }

    /// Whether bytes may be added now.
    pub(crate) fn at_boundary(&self) -> bool {
        match self {
            FrameBoundary::Spdy(parser) => parser.is_idle(),
            FrameBoundary::WebSocket(parser) => {
                parser.is_at_frame_boundary() && !parser.in_fragmented_message()
            }
            FrameBoundary::Lost => false,
        }
    }

    /// Whether the stream could not be followed: no boundary will come.
    pub(crate) fn is_lost(&self) -> bool {
        matches!(self, FrameBoundary::Lost)
    }

    /// Follows `chunk` and, when `stop_at_boundary`, returns how many of its bytes complete the
    /// frame in progress (the point where bytes may be added), or `None` if the chunk ends first.
    pub(crate) fn until_boundary(&mut self, chunk: &[u8], stop_at_boundary: bool) -> Option<usize> {
        let mut rest = chunk;
        loop {
            let position = chunk.len() - rest.len();
            if stop_at_boundary && self.at_boundary() {
                return Some(position);
            }
            let progressed = match self {
                FrameBoundary::Spdy(parser) => match parser.next_event(&mut rest) {
                    Ok(event) => event.is_some(),
                    Err(_) => false,
                },
                FrameBoundary::WebSocket(parser) => match parser.next_event(&mut rest) {
                    Ok(event) => event.is_some(),
                    Err(_) => false,
                },
                FrameBoundary::Lost => return None,
            };
            if !progressed {
                if rest.is_empty() {
                    return None;
                }
                // The parser refused the bytes: the stream can no longer be followed.
                *self = FrameBoundary::Lost;
                return None;
            }
        }
    }
}

/// The bytes that end a session with `message`: a Failure status on the error stream (SPDY, needs
/// the error stream's id) or channel (WebSocket), then (WebSocket) a normal close frame. `None` when
/// the error stream is not known yet.
pub(crate) fn failure_bytes(
    protocol: Protocol,
    spdy_error_stream: Option<StreamId>,
    message: &str,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match protocol {
        Protocol::Spdy { version } => {
            let body = if version >= RemoteCommandVersion::V4 {
                status_json(message)
            } else {
                message.as_bytes().to_vec()
            };
            encode_data(spdy_error_stream?, FLAG_FIN, &body, &mut out).ok()?;
        }
        Protocol::WebSocket(channels) => {
            let body = match channels {
                ChannelProtocol::V4 | ChannelProtocol::V5 | ChannelProtocol::V4Base64 => {
                    status_json(message)
                }
                ChannelProtocol::Channel | ChannelProtocol::Base64 => message.as_bytes().to_vec(),
            };
            // Server frames are not masked.
            encode_channel_message(channels, ERROR, &body, None, None, &mut out);
            encode_close(Some(1000), "", None, &mut out);
        }
    }
    Some(out)
}

/// A `metav1.Status` Failure as kubelet writes it on the error stream.
fn status_json(message: &str) -> Vec<u8> {
    let status = serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    });
    serde_json::to_vec(&status).unwrap_or_default()
}

/// Upstream bytes read but not forwarded when the session had to end.
pub(super) struct Pending<'a> {
    /// The bytes.
    pub(super) bytes: &'a [u8],
    /// The tap failed on these bytes: none of them may be forwarded.
    pub(super) unread: bool,
}

/// Forwards upstream bytes up to the next frame boundary (within a deadline), starting with
/// `pending`, then writes the failure there. Returns the bytes forwarded.
pub(super) async fn explain_and_close<R, W>(
    upstream: &mut R,
    client: &mut W,
    boundary: &mut FrameBoundary,
    pending: Pending<'_>,
    protocol: Protocol,
    spdy_error_stream: Option<spdyframe::StreamId>,
    reason: &str,
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
    let message = format!(
        "{reason}; the session was ended because the caller's grant requires it to be recorded"
    );
    if at_boundary {
        if let Some(bytes) = failure_bytes(protocol, spdy_error_stream, &message) {
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
    use sessiontap::{ExitStatus, OwnedSessionEvent, SessionParams, SessionTap, TapLimits};

    fn session(protocol: Protocol) -> ScriptedSession {
        ScriptedSession {
            protocol,
            params: SessionParams::from_query("command=sh&stdout=true&stderr=true").expect("query"),
            steps: vec![Step::Stdout(vec![b'x'; 100_000]), Step::Exit(0)],
        }
    }

    /// Cuts the server stream at the first boundary after `at`, adds the failure there, and checks
    /// that a client (the tap, reading like kubectl) sees the output so far and then the failure.
    fn cut_and_inject(protocol: Protocol) {
        let wire = session(protocol).encode(&EncodeOptions::default());
        let mut tap = SessionTap::new(protocol, TapLimits::default());
        tap.client_bytes(&wire.client_to_server, &mut |_| {})
            .expect("client stream");
        let server = &wire.server_to_client;
        let mut boundary = FrameBoundary::new(protocol);
        let at = server.len() / 2;
        boundary.track(&server[..at]);
        assert!(
            !boundary.at_boundary(),
            "the middle of a 100 kB frame is not a boundary"
        );
        let cut = at
            + boundary
                .until_boundary(&server[at..], true)
                .expect("a boundary follows");
        assert!(boundary.at_boundary());
        let mut stream = server[..cut].to_vec();
        stream.extend(
            failure_bytes(protocol, tap.spdy_error_stream(), "recorder gone")
                .expect("failure bytes"),
        );
        let mut events = Vec::new();
        tap.server_bytes(&stream, &mut |event| events.push(event.to_owned_event()))
            .expect("well-formed server stream");
        let exit = events.iter().find_map(|event| match event {
            OwnedSessionEvent::Exit { status } => Some(status.clone()),
            _ => None,
        });
        assert_eq!(
            exit,
            Some(ExitStatus::Failure {
                message: "recorder gone".into()
            }),
            "{protocol:?}"
        );
    }

    #[test]
    fn failure_lands_on_a_boundary_and_reads_as_a_failure_status() {
        cut_and_inject(Protocol::Spdy {
            version: RemoteCommandVersion::V4,
        });
        for channels in [
            ChannelProtocol::V5,
            ChannelProtocol::V4,
            ChannelProtocol::V4Base64,
        ] {
            cut_and_inject(Protocol::WebSocket(channels));
        }
    }

    #[test]
    fn spdy_needs_the_error_stream() {
        let protocol = Protocol::Spdy {
            version: RemoteCommandVersion::V4,
        };
        assert!(failure_bytes(protocol, None, "x").is_none());
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
            protocol,
            StreamId::new(1),
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

    #[test]
    fn garbage_loses_the_boundary_for_good() {
        let mut boundary = FrameBoundary::new(Protocol::Spdy {
            version: RemoteCommandVersion::V4,
        });
        // A control frame with version 9.
        boundary.track(&[0x80, 0x09, 0x00, 0x01, 0, 0, 0, 0]);
        assert!(!boundary.at_boundary());
        assert_eq!(boundary.until_boundary(b"anything", true), None);
    }
}
