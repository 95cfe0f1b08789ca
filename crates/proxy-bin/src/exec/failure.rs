//! Telling kubectl why a session is being ended: a `metav1.Status` written where kubectl reads the
//! command's outcome (the SPDY `error` stream, or WebSocket channel 3), at a frame boundary of the
//! server-to-client stream so the bytes already forwarded stay well-formed.
//!
//! client-go decodes a Failure status on that stream into an error carrying its message (v4+:
//! `errorDecoderV4`), and kubectl prints it; earlier protocol versions carry plain text.

use sessiontap::{Protocol, RemoteCommandVersion};
use spdyframe::{encode_data, FrameParser, StreamId, FLAG_FIN};
use wsframe::{encode_channel_message, encode_close, ChannelProtocol, ERROR};

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
