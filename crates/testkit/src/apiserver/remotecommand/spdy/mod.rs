//! The server side of a remote command session over SPDY/3.1, as the kubelet runs it through
//! spdystream (`pkg/kubelet/cri/streaming/remotecommand/httpstream.go`, moby/spdystream v0.5.0):
//!
//! - the client opens every stream with a SYN_STREAM whose `streamtype` header names its role
//!   (`error`, `stdin`, `stdout`, `stderr`, `resize`), read as spdystream and the kubelet read it
//!   ([`headers`]: the first NUL-separated value; a block with a name that is not lowercase or
//!   that repeats is refused, and the connection is no longer read);
//! - stream ids must grow: a SYN_STREAM below the next id spdystream expects is refused with
//!   RST_STREAM PROTOCOL_ERROR (`Connection.validateStreamId`);
//! - while the kubelet waits for the streams (`waitForStreams`, 30 s) every stream is answered
//!   with a SYN_REPLY, and each one with a known role takes that role, a later one replacing an
//!   earlier one (`ctx.stdoutStream = stream`); the session starts once as many known streams as
//!   the request implies have been answered (`expectedStreams`). After that no stream is taken
//!   or answered any more: the kubelet writes to the streams it took, whatever the client opens;
//! - header blocks are zlib-compressed with one context per direction for the connection: the
//!   client's all go through one [`HeaderInflater`] (HEADERS and empty blocks too), the
//!   server's SYN_REPLYs through one [`spdyframe::HeaderDeflater`];
//! - PINGs the client starts (odd ids) are echoed, as spdystream does;
//! - stdin data goes to the process, a FIN or RST_STREAM on stdin closes it; resize data is a
//!   JSON stream of sizes; output goes as data frames on the stdout/stderr streams, at most
//!   32 KiB each, even on a stream the client has reset (spdystream's `Stream.Write` does not
//!   look at the reset, `Connection.handleResetFrame` only forgets the stream for reading);
//! - at the end: the status on the error stream, FIN on the server's streams, GOAWAY.
//!
//! Framing is [`spdyframe`]'s; a client that sends something it cannot frame, or a header block
//! it cannot inflate or spdystream would refuse, has its connection closed (spdystream stops
//! reading it; closing is what a test can observe).

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
use crate::apiserver::streaming::spdy_headers as headers;

/// How long the client has to open its streams (kubelet's `DefaultStreamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// The kubelet's `switch streamType` in `waitForStreams`: `resize` is only known from v3 on.
    fn from_streamtype(name: &str, version: RemoteCommandVersion) -> Role {
        match name {
            "error" => Role::Error,
            "stdin" => Role::Stdin,
            "stdout" => Role::Stdout,
            "stderr" => Role::Stderr,
            "resize" if version.has_resize() => Role::Resize,
            _ => Role::Other,
        }
    }
}

/// The kubelet's `waitForStreams`: how many streams with a known role the request implies
/// (`expectedStreams`: the error stream, plus stdin, stdout, stderr without a tty, resize with a
/// tty from v3 on), and how many have been answered.
#[derive(Debug, Clone, Copy)]
struct StreamWait {
    expected: usize,
    answered: usize,
}

impl StreamWait {
    fn new(params: &SessionParams, version: RemoteCommandVersion) -> Self {
        let implied = [
            params.stdin,
            params.stdout,
            params.stderr && !params.tty,
            params.tty && version.has_resize(),
        ];
        StreamWait {
            expected: 1 + implied.into_iter().filter(|&b| b).count(),
            answered: 0,
        }
    }

    fn done(&self) -> bool {
        self.answered >= self.expected
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
        ClientState::new(&params, version),
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
    /// Answer the stream (SYN_REPLY) and let it take its role.
    Accept(StreamId, Role),
    /// Refuse the stream: RST_STREAM PROTOCOL_ERROR.
    Refuse(StreamId),
    EchoPing(u32),
    Event(ClientEvent),
    /// The client said GOAWAY: no more events.
    Gone,
}

/// The client's side of the connection, parsed.
struct ClientState {
    parser: FrameParser,
    inflater: HeaderInflater,
    version: RemoteCommandVersion,
    /// spdystream's `receivedStreamId`: the lowest id a new stream may have (1 on a server
    /// connection, then the last accepted id + 2).
    next_stream_id: u32,
    wait: StreamWait,
    /// The streams the kubelet reads stdin and resizes from (the last of each role it took).
    stdin: Option<StreamId>,
    resize_stream: Option<StreamId>,
    resize: ResizeDecoder,
}

impl ClientState {
    fn new(params: &SessionParams, version: RemoteCommandVersion) -> Self {
        ClientState {
            parser: FrameParser::new(Limits {
                max_control_payload: MAX_CONTROL_PAYLOAD,
            }),
            inflater: HeaderInflater::default(),
            version,
            next_stream_id: 1,
            wait: StreamWait::new(params, version),
            stdin: None,
            resize_stream: None,
            resize: ResizeDecoder::default(),
        }
    }

    /// Parses one read into actions; an error means the connection cannot go on.
    fn parse(&mut self, mut chunk: &[u8], actions: &mut Vec<Action>) -> Result<(), String> {
        while let Some(event) = self
            .parser
            .next_event(&mut chunk)
            .map_err(|e| e.to_string())?
        {
            match event {
                Event::Control(frame) => {
                    let action = control(
                        &mut self.inflater,
                        &mut StreamTable {
                            version: self.version,
                            next_stream_id: &mut self.next_stream_id,
                            wait: &mut self.wait,
                            stdin: &mut self.stdin,
                            resize: &mut self.resize_stream,
                        },
                        frame,
                    )?;
                    actions.extend(action);
                }
                Event::Data {
                    stream_id, bytes, ..
                } => {
                    let ends = event.ends_stream();
                    if Some(stream_id) == self.stdin {
                        if !bytes.is_empty() {
                            actions.push(Action::Event(ClientEvent::Stdin(
                                Bytes::copy_from_slice(bytes),
                            )));
                        }
                        if ends {
                            actions.push(Action::Event(ClientEvent::StdinClosed));
                        }
                    } else if Some(stream_id) == self.resize_stream {
                        for (cols, rows) in self.resize.feed(bytes) {
                            actions.push(Action::Event(ClientEvent::Resize { cols, rows }));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a control frame may change: which streams exist and which roles the kubelet took.
struct StreamTable<'a> {
    version: RemoteCommandVersion,
    next_stream_id: &'a mut u32,
    wait: &'a mut StreamWait,
    stdin: &'a mut Option<StreamId>,
    resize: &'a mut Option<StreamId>,
}

fn control(
    inflater: &mut HeaderInflater,
    table: &mut StreamTable<'_>,
    frame: ControlFrame<'_>,
) -> Result<Option<Action>, String> {
    if let Some(block) = headers::read_block(inflater, &frame)? {
        if let ControlFrame::SynStream { stream_id, .. } = frame {
            return open(table, stream_id, headers::stream_type(&block));
        }
        return Ok(None);
    }
    Ok(match frame {
        ControlFrame::Ping { id, .. } if id % 2 == 1 => Some(Action::EchoPing(id)),
        // spdystream closes a reset stream's reading side: stdin ends. Output streams are still
        // written (see the module docs).
        ControlFrame::RstStream { stream_id, .. } if Some(stream_id) == *table.stdin => {
            Some(Action::Event(ClientEvent::StdinClosed))
        }
        ControlFrame::GoAway { .. } => Some(Action::Gone),
        _ => None,
    })
}

/// A SYN_STREAM spdystream read: `validateStreamId`, then the kubelet's `waitForStreams`.
fn open(
    table: &mut StreamTable<'_>,
    stream_id: StreamId,
    stream_type: &str,
) -> Result<Option<Action>, String> {
    let id = stream_id.get();
    if id == 0 {
        // `readSynStreamFrame` fails with ZeroStreamId: the connection is no longer read.
        return Err("SYN_STREAM for stream 0".into());
    }
    if id < *table.next_stream_id {
        return Ok(Some(Action::Refuse(stream_id)));
    }
    *table.next_stream_id = id.saturating_add(2);
    if table.wait.done() {
        // The kubelet no longer receives streams: its handler blocks and never replies.
        return Ok(None);
    }
    let role = Role::from_streamtype(stream_type, table.version);
    match role {
        Role::Stdin => *table.stdin = Some(stream_id),
        Role::Resize => *table.resize = Some(stream_id),
        Role::Error | Role::Stdout | Role::Stderr | Role::Other => {}
    }
    if role != Role::Other {
        table.wait.answered += 1;
    }
    Ok(Some(Action::Accept(stream_id, role)))
}

async fn read_loop(
    mut io: BoxedRead,
    writer: Arc<Mutex<SpdyWriter>>,
    mut client: ClientState,
    events: mpsc::Sender<ClientEvent>,
    ready: oneshot::Sender<()>,
) {
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
                Action::Refuse(id) => {
                    if writer.lock().await.refuse(id).await.is_err() {
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
        if ready.is_some() && client.wait.done() {
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
        }
    }
}
