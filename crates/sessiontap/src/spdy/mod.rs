//! Remote command over SPDY/3.1: streams and their roles.
//!
//! client-go (`tools/remotecommand`, `streamProtocolV2..V5.createStreams`) opens one stream per
//! role with a SYN_STREAM whose `streamtype` header names it (`error`, `stdin`, `stdout`,
//! `stderr`, `resize`); kubelet (`pkg/kubelet/cri/streaming/remotecommand/httpstream.go`) replies
//! and writes output on the same streams. Every header block of a direction shares one zlib
//! context, so each is inflated in order, even those whose headers are not needed.

use spdyframe::{ControlFrame, Event, FrameParser, HeaderInflater, Limits, StreamId, FLAG_FIN};

use crate::error::TapError;
use crate::event::{Direction, OutputStream, SessionEvent};
use crate::tap::{Shared, TapLimits};

/// What a stream is for, from its `streamtype` header. The discriminant indexes [`Streams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
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
        match value {
            "error" => Some(Role::Error),
            "stdin" => Some(Role::Stdin),
            "stdout" => Some(Role::Stdout),
            "stderr" => Some(Role::Stderr),
            "resize" => Some(Role::Resize),
            _ => None,
        }
    }
}

/// The stream holding one role. A later SYN_STREAM for the same role replaces an earlier one, as
/// kubelet's `waitForStreams` keeps the last stream of each type; memory stays fixed however
/// many streams a client opens.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    id: Option<StreamId>,
    client_closed: bool,
    server_closed: bool,
}

/// The streams of the session, one slot per role (indexed like [`Role::ALL`]).
#[derive(Debug, Default)]
struct Streams([Slot; 5]);

impl Streams {
    fn find(&mut self, id: StreamId) -> Option<(Role, &mut Slot)> {
        Role::ALL
            .into_iter()
            .zip(self.0.iter_mut())
            .find(|(_, slot)| slot.id == Some(id))
    }

    fn id_of(&self, role: Role) -> Option<StreamId> {
        self.0[role as usize].id
    }

    fn open(&mut self, role: Role, id: StreamId) {
        // Another role's claim on the same id is dropped: one stream has one type.
        for slot in &mut self.0 {
            if slot.id == Some(id) {
                *slot = Slot::default();
            }
        }
        self.0[role as usize] = Slot {
            id: Some(id),
            client_closed: false,
            server_closed: false,
        };
    }
}

/// One direction's framing and header compression context.
#[derive(Debug)]
struct Half {
    parser: FrameParser,
    inflater: HeaderInflater,
    direction: Direction,
}

impl Half {
    fn new(limits: &TapLimits, direction: Direction) -> Self {
        Half {
            parser: FrameParser::new(Limits {
                max_control_payload: limits.max_control_frame,
            }),
            inflater: HeaderInflater::new(limits.max_header_block),
            direction,
        }
    }
}

/// The SPDY observers of both directions.
#[derive(Debug)]
pub(crate) struct SpdyTap {
    client: Half,
    server: Half,
    streams: Streams,
}

impl SpdyTap {
    /// The id of the client's `error` stream, once it has been opened.
    pub(crate) fn error_stream(&self) -> Option<StreamId> {
        self.streams.id_of(Role::Error)
    }

    pub(crate) fn new(limits: &TapLimits) -> Self {
        SpdyTap {
            client: Half::new(limits, Direction::ClientToServer),
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
        let Half {
            parser,
            inflater,
            direction,
        } = &mut self.client;
        let frame_error = |source| TapError::SpdyFrame {
            direction: *direction,
            source,
        };
        while let Some(event) = parser.next_event(&mut input).map_err(frame_error)? {
            match event {
                Event::Control(frame) => {
                    let Some(block) = frame.header_block() else {
                        if let ControlFrame::RstStream { stream_id, .. } = frame {
                            reset(&mut self.streams, stream_id, shared, sink);
                        }
                        continue;
                    };
                    let headers =
                        inflater
                            .inflate(block)
                            .map_err(|source| TapError::SpdyHeaders {
                                direction: *direction,
                                source,
                            })?;
                    if let ControlFrame::SynStream { stream_id, .. } = frame {
                        if let Some(role) =
                            headers.get("streamtype").and_then(Role::from_stream_type)
                        {
                            self.streams.open(role, stream_id);
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
        let Half {
            parser,
            inflater,
            direction,
        } = &mut self.server;
        let frame_error = |source| TapError::SpdyFrame {
            direction: *direction,
            source,
        };
        while let Some(event) = parser.next_event(&mut input).map_err(frame_error)? {
            match event {
                Event::Control(frame) => {
                    if let Some(block) = frame.header_block() {
                        // Only to keep the zlib context in step: the server's headers say nothing
                        // the tap needs.
                        inflater
                            .inflate(block)
                            .map_err(|source| TapError::SpdyHeaders {
                                direction: *direction,
                                source,
                            })?;
                    }
                    match frame {
                        ControlFrame::RstStream { stream_id, .. } => {
                            reset(&mut self.streams, stream_id, shared, sink);
                        }
                        // spdystream's Connection.Close sends GOAWAY after kubelet has written
                        // the status: nothing more comes on the error stream.
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
                    let role = match self.streams.find(stream_id) {
                        Some((role, slot)) if !slot.server_closed => Some(role),
                        _ => None,
                    };
                    match role {
                        Some(Role::Stdout) => shared.output(OutputStream::Stdout, bytes, sink),
                        Some(Role::Stderr) => shared.output(OutputStream::Stderr, bytes, sink),
                        Some(Role::Error) => shared.error_bytes(bytes, sink)?,
                        _ => ignore(shared, bytes, frame_start),
                    }
                    if role.is_some() && event.ends_stream() {
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

/// RST_STREAM from either side ends the stream in both directions.
fn reset(
    streams: &mut Streams,
    stream_id: StreamId,
    shared: &mut Shared,
    sink: &mut dyn FnMut(SessionEvent<'_>),
) {
    if let Some((_, slot)) = streams.find(stream_id) {
        slot.client_closed = true;
    }
    server_closed(streams, stream_id, shared, sink);
}
