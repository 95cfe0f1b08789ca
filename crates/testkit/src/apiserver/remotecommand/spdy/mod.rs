//! The server side of a remote command session over SPDY/3.1, as the kubelet runs it through
//! spdystream (`pkg/kubelet/cri/streaming/remotecommand/httpstream.go`):
//!
//! - the client opens every stream with a SYN_STREAM whose `streamtype` header names its role
//!   (`error`, `stdin`, `stdout`, `stderr`, `resize`); each gets a SYN_REPLY at once, and the
//!   session starts once all the streams the request implies are open (`waitForStreams`, 30 s);
//! - header blocks are zlib-compressed with one context per direction for the connection: the
//!   client's all go through one [`HeaderInflater`] (HEADERS and empty blocks too), the
//!   server's SYN_REPLYs through one [`spdyframe::HeaderDeflater`];
//! - PINGs the client starts (odd ids) are echoed, as spdystream does;
//! - stdin data goes to the process, a FIN on stdin closes it; resize data is a JSON stream of
//!   sizes; output goes as data frames on the stdout/stderr streams, at most 32 KiB each;
//! - at the end: the status on the error stream, FIN on the server's streams, GOAWAY.
//!
//! Framing is [`spdyframe`]'s; a client that sends something it cannot frame, or a header block
//! it cannot inflate, has its connection closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sessiontap::{RemoteCommandVersion, SessionParams};
use spdyframe::{ControlFrame, Event, FrameParser, HeaderInflater, Limits, StreamId};
use tokio::io::AsyncReadExt as _;
use tokio::sync::{mpsc, oneshot, Mutex};

mod writer;

pub(crate) use self::writer::SpdyWriter;
use super::resize::ResizeDecoder;
use super::session::{
    BoxedRead, BoxedWrite, ClientEvent, Session, SessionWriter, EVENT_QUEUE, OUTPUT_CHUNK,
};
use super::tasks::AbortOnDrop;

/// How long the client has to open its streams (kubelet's `DefaultStreamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The most streams one connection may open; a session uses at most five.
const MAX_STREAMS: usize = 16;
/// The largest control frame accepted; header blocks of a session are a few dozen bytes.
const MAX_CONTROL_PAYLOAD: u32 = 64 * 1024;

/// What a client stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
    Other,
}

impl Role {
    fn from_streamtype(name: &str) -> Role {
        match name {
            "error" => Role::Error,
            "stdin" => Role::Stdin,
            "stdout" => Role::Stdout,
            "stderr" => Role::Stderr,
            "resize" => Role::Resize,
            _ => Role::Other,
        }
    }
}

/// The streams the request implies (kubelet's `expectedStreams`).
#[derive(Debug, Clone, Copy)]
struct Expected {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    resize: bool,
}

impl Expected {
    fn new(params: &SessionParams, version: RemoteCommandVersion) -> Self {
        Expected {
            stdin: params.stdin,
            stdout: params.stdout,
            stderr: params.stderr && !params.tty,
            resize: params.tty && version.has_resize(),
        }
    }

    fn met_by(&self, streams: &[(StreamId, Role)]) -> bool {
        let has = |role| streams.iter().any(|&(_, r)| r == role);
        has(Role::Error)
            && (!self.stdin || has(Role::Stdin))
            && (!self.stdout || has(Role::Stdout))
            && (!self.stderr || has(Role::Stderr))
            && (!self.resize || has(Role::Resize))
    }
}

/// Establishes the session over an upgraded connection: waits for the client's streams.
/// `None` if the client does not open them in time or breaks the protocol first.
pub(crate) async fn start(
    read: BoxedRead,
    write: BoxedWrite,
    params: SessionParams,
    version: RemoteCommandVersion,
) -> Option<Session> {
    let writer = Arc::new(Mutex::new(SpdyWriter::new(write)));
    let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
    let (ready, ready_rx) = oneshot::channel();
    let reader = AbortOnDrop(tokio::spawn(read_loop(
        read,
        writer.clone(),
        Expected::new(&params, version),
        events,
        ready,
    )));
    let established = matches!(
        tokio::time::timeout(STREAM_CREATION_TIMEOUT, ready_rx).await,
        Ok(Ok(()))
    );
    if !established {
        tracing::debug!("SPDY client did not open its streams");
        let _ = writer.lock().await.close().await;
        return None;
    }
    Some(Session {
        resizable: params.tty && version.has_resize(),
        params,
        format: sessiontap::Protocol::Spdy { version }.error_format(),
        events: events_rx,
        writer: SessionWriter::Spdy(writer),
        reader,
    })
}

/// What a read asked of the server, done once the read is parsed.
enum Action {
    Accept(StreamId, Role),
    EchoPing(u32),
    Event(ClientEvent),
    /// The client said GOAWAY: no more events.
    Gone,
}

/// The client's side of the connection, parsed.
struct ClientState {
    parser: FrameParser,
    inflater: HeaderInflater,
    streams: Vec<(StreamId, Role)>,
    resize: ResizeDecoder,
}

fn role_of(streams: &[(StreamId, Role)], stream_id: StreamId) -> Option<Role> {
    streams
        .iter()
        .find(|&&(id, _)| id == stream_id)
        .map(|&(_, role)| role)
}

impl ClientState {
    /// Parses one read into actions; an error means the connection cannot go on.
    fn parse(&mut self, mut chunk: &[u8], actions: &mut Vec<Action>) -> Result<(), String> {
        while let Some(event) = self
            .parser
            .next_event(&mut chunk)
            .map_err(|e| e.to_string())?
        {
            match event {
                Event::Control(frame) => {
                    let action = Self::control(&mut self.inflater, &mut self.streams, frame)?;
                    actions.extend(action);
                }
                Event::Data {
                    stream_id, bytes, ..
                } => {
                    let ends = event.ends_stream();
                    match role_of(&self.streams, stream_id) {
                        Some(Role::Stdin) => {
                            if !bytes.is_empty() {
                                actions.push(Action::Event(ClientEvent::Stdin(
                                    Bytes::copy_from_slice(bytes),
                                )));
                            }
                            if ends {
                                actions.push(Action::Event(ClientEvent::StdinClosed));
                            }
                        }
                        Some(Role::Resize) => {
                            for (cols, rows) in self.resize.feed(bytes) {
                                actions.push(Action::Event(ClientEvent::Resize { cols, rows }));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn control(
        inflater: &mut HeaderInflater,
        streams: &mut Vec<(StreamId, Role)>,
        frame: ControlFrame<'_>,
    ) -> Result<Option<Action>, String> {
        Ok(match frame {
            ControlFrame::SynStream {
                stream_id,
                header_block,
                ..
            } => {
                let headers = inflater.inflate(header_block).map_err(|e| e.to_string())?;
                if streams.len() >= MAX_STREAMS {
                    return Err(format!("more than {MAX_STREAMS} streams"));
                }
                let role = Role::from_streamtype(headers.get("streamtype").unwrap_or_default());
                streams.push((stream_id, role));
                Some(Action::Accept(stream_id, role))
            }
            ControlFrame::SynReply { header_block, .. }
            | ControlFrame::Headers { header_block, .. } => {
                // Unused, but the compression context must see every block.
                inflater.inflate(header_block).map_err(|e| e.to_string())?;
                None
            }
            ControlFrame::Ping { id } if id % 2 == 1 => Some(Action::EchoPing(id)),
            ControlFrame::RstStream { stream_id, .. }
                if streams.contains(&(stream_id, Role::Stdin)) =>
            {
                Some(Action::Event(ClientEvent::StdinClosed))
            }
            ControlFrame::GoAway { .. } => Some(Action::Gone),
            _ => None,
        })
    }
}

async fn read_loop(
    mut io: BoxedRead,
    writer: Arc<Mutex<SpdyWriter>>,
    expected: Expected,
    events: mpsc::Sender<ClientEvent>,
    ready: oneshot::Sender<()>,
) {
    let mut client = ClientState {
        parser: FrameParser::new(Limits {
            max_control_payload: MAX_CONTROL_PAYLOAD,
        }),
        inflater: HeaderInflater::default(),
        streams: Vec::new(),
        resize: ResizeDecoder::default(),
    };
    // Dropped when the client says GOAWAY: the driver then sees the client gone, while the
    // connection is still read to its end.
    let mut events = Some(events);
    let mut ready = Some(ready);
    let mut buf = vec![0u8; OUTPUT_CHUNK];
    let mut actions = Vec::new();
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "SPDY connection read failed");
                return;
            }
        };
        let parsed = client.parse(&buf[..n], &mut actions);
        for action in actions.drain(..) {
            match action {
                Action::Accept(id, role) => {
                    if writer.lock().await.accept(id, role).await.is_err() {
                        return;
                    }
                }
                Action::EchoPing(id) => {
                    let _ = writer.lock().await.echo_ping(id).await;
                }
                Action::Event(event) => {
                    if let Some(sender) = &events {
                        // A driver that has finished no longer listens; keep reading anyway.
                        let _ = sender.send(event).await;
                    }
                }
                Action::Gone => events = None,
            }
        }
        if let Err(e) = parsed {
            tracing::debug!(error = %e, "closing a SPDY connection that cannot be read");
            let _ = writer.lock().await.close().await;
            return;
        }
        if ready.is_some() && expected.met_by(&client.streams) {
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
        }
    }
}
