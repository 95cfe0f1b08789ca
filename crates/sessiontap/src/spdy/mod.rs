//! Remote command over SPDY/3.1: streams and their roles.
//!
//! client-go (`tools/remotecommand`, `streamProtocolV2..V5.createStreams`) opens one stream per
//! role with a SYN_STREAM whose `streamtype` header names it (`error`, `stdin`, `stdout`,
//! `stderr`, `resize`); kubelet (`pkg/kubelet/cri/streaming/remotecommand/httpstream.go`) replies
//! and writes output on the same streams. Every header block of a direction shares one zlib
//! context, so each is inflated in order, even those whose headers are not needed. Once the
//! client has opened every stream the server waits for ([`wait`]), the tap drops the client's
//! context and refuses any later header block ([`SpdyStreamError::HeadersAfterStreamsOpen`]).
//!
//! The tap must attribute every byte the server sends as the server and client do, or stop:
//! roles are read and bound as [`streams`] explains, output is recorded on the stdout and stderr
//! streams whatever either side did to them, and server data the tap cannot attribute is an
//! error ([`SpdyStreamError::UnattributedData`]), never silently skipped.

mod streams;
mod wait;

use spdyframe::{ControlFrame, Event, FrameParser, HeaderInflater, Limits, StreamId, FLAG_FIN};

use self::streams::{Role, Streams};
pub(crate) use self::wait::StreamWait;
use crate::error::{SpdyStreamError, TapError};
use crate::event::{Direction, OutputStream, SessionEvent};
use crate::tap::{Shared, TapLimits};

/// One direction's framing.
#[derive(Debug)]
struct Half {
    parser: FrameParser,
    direction: Direction,
}

impl Half {
    fn new(limits: &TapLimits, direction: Direction) -> Self {
        Half {
            parser: FrameParser::new(Limits {
                max_control_payload: limits.max_control_frame,
            }),
            direction,
        }
    }
}

/// The SPDY observers of both directions.
///
/// Only the client's header blocks are inflated (their `streamtype` binds each stream to its
/// role). The server's are framed but never inflated: nothing in them decides anything, so the
/// tap keeps no zlib context for them, whose window would cost every session about 45 KiB. The
/// client's context is kept only until the server has all its streams, when the session's
/// parameters are known (`wait`): an idle session then holds no zlib state at all.
#[derive(Debug)]
pub(crate) struct SpdyTap {
    client: Half,
    /// The client's header compression context; `None` once the server takes no more streams.
    client_headers: Option<HeaderInflater>,
    /// The streams the server still waits for; `None` when the session's parameters are not
    /// known, and the context is then kept to the end.
    wait: Option<StreamWait>,
    server: Half,
    streams: Streams,
}

impl SpdyTap {
    /// The id of the client's `error` stream, once it has been opened.
    pub(crate) fn error_stream(&self) -> Option<StreamId> {
        self.streams.id_of(Role::Error)
    }

    /// The id of the client's `stdout` stream, once it has been opened.
    pub(crate) fn stdout_stream(&self) -> Option<StreamId> {
        self.streams.id_of(Role::Stdout)
    }

    pub(crate) fn new(limits: &TapLimits, wait: Option<StreamWait>) -> Self {
        SpdyTap {
            client: Half::new(limits, Direction::ClientToServer),
            client_headers: Some(HeaderInflater::new(limits.max_header_block)),
            wait,
            server: Half::new(limits, Direction::ServerToClient),
            streams: Streams::default(),
        }
    }

    pub(crate) fn client_bytes(
        &mut self,
        mut input: &[u8],
        shared: &mut Shared,
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) -> Result<(), TapError> {
        let Half { parser, direction } = &mut self.client;
        let frame_error = |source| TapError::SpdyFrame {
            direction: *direction,
            source,
        };
        while let Some(event) = parser.next_event(&mut input).map_err(frame_error)? {
            match event {
                Event::Control(frame) => {
                    let Some(block) = frame.header_block() else {
                        // A reset stream is no longer read by the server. It is still written
                        // to, and the error stream still carries the status: the server side
                        // is untouched.
                        if let ControlFrame::RstStream { stream_id, .. } = frame {
                            if let Some((_, slot)) = self.streams.find(stream_id) {
                                slot.client_closed = true;
                            }
                        }
                        continue;
                    };
                    let Some(inflater) = &mut self.client_headers else {
                        // The context is gone (see `wait`): the block cannot be read, so what
                        // the frame means cannot be known.
                        return Err(SpdyStreamError::HeadersAfterStreamsOpen {
                            frame: frame.name(),
                            stream_id: frame.stream_id().unwrap_or(StreamId::ZERO),
                        }
                        .into());
                    };
                    let headers =
                        inflater
                            .inflate(block)
                            .map_err(|source| TapError::SpdyHeaders {
                                direction: *direction,
                                source,
                            })?;
                    if let ControlFrame::SynStream { stream_id, .. } = frame {
                        let role = Role::of_syn_stream(&headers);
                        self.streams.open(stream_id, role)?;
                        if self.wait.as_mut().is_some_and(|wait| wait.opened(role)) {
                            // The server takes no more streams: no later header block can
                            // mean anything to it, and the zlib window is freed.
                            self.client_headers = None;
                        }
                    }
                    if let (Some(stream_id), true) =
                        (frame.stream_id(), frame.flags() & FLAG_FIN != 0)
                    {
                        if let Some((_, slot)) = self.streams.find(stream_id) {
                            slot.client_closed = true;
                        }
                    }
                }
                Event::Data {
                    stream_id,
                    bytes,
                    frame_start,
                    ..
                } => {
                    let ends = event.ends_stream();
                    let role = match self.streams.find(stream_id) {
                        Some((role, slot)) if !slot.client_closed => {
                            slot.client_closed = ends;
                            Some(role)
                        }
                        _ => None,
                    };
                    match role {
                        Some(Role::Stdin) => shared.input(bytes, sink),
                        Some(Role::Resize) => shared.resize(bytes, sink)?,
                        _ => ignore(shared, bytes, frame_start),
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn server_bytes(
        &mut self,
        mut input: &[u8],
        shared: &mut Shared,
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) -> Result<(), TapError> {
        let Half { parser, direction } = &mut self.server;
        let frame_error = |source| TapError::SpdyFrame {
            direction: *direction,
            source,
        };
        while let Some(event) = parser.next_event(&mut input).map_err(frame_error)? {
            match event {
                Event::Control(frame) => {
                    // The server's header blocks are not inflated (see `SpdyTap`).
                    match frame {
                        // spdystream's Connection.Close sends GOAWAY after kubelet has written
                        // the status: nothing more comes on the error stream. (A RST_STREAM does
                        // not end it: kubelet's v1 handler resets the error stream before it
                        // writes the status there, and spdystream writes on reset streams.)
                        ControlFrame::GoAway { .. } => {
                            if let Some(id) = self.streams.id_of(Role::Error) {
                                server_closed(&mut self.streams, id, shared, sink);
                            }
                        }
                        ControlFrame::SynReply {
                            stream_id, flags, ..
                        }
                        | ControlFrame::Headers {
                            stream_id, flags, ..
                        } if flags & FLAG_FIN != 0 => {
                            server_closed(&mut self.streams, stream_id, shared, sink);
                        }
                        _ => {}
                    }
                }
                Event::Data {
                    stream_id,
                    bytes,
                    frame_start,
                    ..
                } => {
                    match self.streams.find(stream_id) {
                        // Output is recorded on the stdout and stderr streams whatever state
                        // they are in: the client reads what spdystream delivers.
                        Some((Role::Stdout, _)) => shared.output(OutputStream::Stdout, bytes, sink),
                        Some((Role::Stderr, _)) => shared.output(OutputStream::Stderr, bytes, sink),
                        Some((Role::Error, slot)) if !slot.server_closed => {
                            shared.error_bytes(bytes, sink)?
                        }
                        // The error stream after the server's FIN: kubelet writes one status.
                        Some((Role::Error, _)) => ignore(shared, bytes, frame_start),
                        // An empty frame (a FIN) carries nothing anyone could read.
                        _ if bytes.is_empty() => {}
                        _ => {
                            return Err(SpdyStreamError::UnattributedData {
                                stream_id,
                                len: bytes.len(),
                            }
                            .into())
                        }
                    }
                    if event.ends_stream() {
                        server_closed(&mut self.streams, stream_id, shared, sink);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Counts data the session does not use (empty frames, such as a FIN, are not counted).
fn ignore(shared: &mut Shared, bytes: &[u8], frame_start: bool) {
    if bytes.is_empty() {
        return;
    }
    if frame_start {
        shared.ignore_frame(bytes.len());
    } else {
        shared.ignore(bytes.len());
    }
}

/// The server half-closed `stream_id`.
fn server_closed(
    streams: &mut Streams,
    stream_id: StreamId,
    shared: &mut Shared,
    sink: &mut dyn FnMut(SessionEvent<'_>),
) {
    if let Some((role, slot)) = streams.find(stream_id) {
        slot.server_closed = true;
        if role == Role::Error {
            shared.error_end(sink);
        }
    }
}
