//! The server side of a remote command session over WebSocket, as the API server's stream
//! translator and the kubelet run it (apimachinery `wsstream/conn.go`, kubelet
//! `cri/streaming/remotecommand/websocket.go`):
//!
//! - right after the 101, an empty message on the lowest writable channel (stdout, else stderr,
//!   else error), which tells the client the streams are ready;
//! - then a pause until the client has sent something or [`CLIENT_READY_GRACE`] has passed,
//!   before the process's output can flow (see there why);
//! - client frames must be masked (RFC 6455 section 5.1) and are decoded by [`wsframe`] in the
//!   negotiated channel protocol: channel 0 is stdin, 4 resize (a JSON stream of sizes); on
//!   `v5.channel.k8s.io` the message `[255, 0]` closes stdin;
//! - pings are answered with pongs carrying the same payload (RFC 6455 section 5.5.3);
//! - output is one message per read of at most 32 KiB on channel 1 or 2, unfragmented;
//! - at the end the status goes on channel 3, then a close frame 1000;
//! - a client close frame ends the session; anything that cannot be framed or decoded closes
//!   the connection with 1002 (protocol error).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sessiontap::{OutputStream, SessionParams};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot, Mutex};
use wsframe::{
    encode_channel_message, encode_close, encode_pong, ChannelDecoder, ChannelEvent,
    ChannelProtocol, Event, FrameParser, Limits, Opcode, ERROR, MAX_CONTROL_PAYLOAD, RESIZE,
    STDERR, STDIN, STDOUT,
};

use super::resize::ResizeDecoder;
use super::session::{
    BoxedRead, BoxedWrite, ClientEvent, Session, SessionWriter, EVENT_QUEUE, OUTPUT_CHUNK,
};
use super::tasks::AbortOnDrop;

/// How long a session waits after the 101 for the client's first bytes before output may flow.
///
/// client-go (`tools/remotecommand/websocket.go`, v1.32) starts reading the connection in one
/// goroutine and creates its streams in another, and `readDemuxLoop` discards ("Unknown stream
/// id %d, discarding message") messages for streams not yet created. Behind a real apiserver,
/// kubelet and container runtime the first output comes milliseconds after the 101 and the
/// race is never lost; a host process answering at once loses it now and then (kubectl then
/// misses output or the exit status, or fails with "closed all streams"). There is no signal
/// that the streams exist unless the client sends something (stdin, a resize), so a session
/// waits for that, or for this long.
pub(crate) const CLIENT_READY_GRACE: Duration = Duration::from_millis(250);

/// The largest frame payload a client may announce. kubectl's frames are at most 33,792 bytes.
const MAX_CLIENT_FRAME: u64 = 1 << 20;

/// Close status 1000, normal closure (RFC 6455 section 7.4.1).
const NORMAL_CLOSURE: u16 = 1000;
/// Close status 1002, protocol error.
const PROTOCOL_ERROR: u16 = 1002;

/// The server's half of the connection.
pub(crate) struct WebSocketWriter {
    io: BoxedWrite,
    protocol: ChannelProtocol,
    buf: Vec<u8>,
    closed: bool,
}

impl std::fmt::Debug for WebSocketWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketWriter")
            .field("protocol", &self.protocol)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl WebSocketWriter {
    async fn send_buf(&mut self) -> std::io::Result<()> {
        let result = self.io.write_all(&self.buf).await;
        self.buf.clear();
        result
    }

    async fn message(&mut self, channel: u8, data: &[u8]) -> std::io::Result<()> {
        if self.closed {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "session closed",
            ));
        }
        encode_channel_message(self.protocol, channel, data, None, None, &mut self.buf);
        self.send_buf().await
    }

    async fn pong(&mut self, payload: &[u8]) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        encode_pong(payload, None, &mut self.buf);
        self.send_buf().await
    }

    pub(crate) async fn output(
        &mut self,
        stream: OutputStream,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let channel = match stream {
            OutputStream::Stdout => STDOUT,
            OutputStream::Stderr => STDERR,
        };
        for piece in bytes.chunks(OUTPUT_CHUNK) {
            self.message(channel, piece).await?;
        }
        Ok(())
    }

    pub(crate) async fn finish(&mut self, status: &[u8]) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        if !status.is_empty() {
            self.message(ERROR, status).await?;
        }
        self.close().await
    }

    pub(crate) async fn close(&mut self) -> std::io::Result<()> {
        self.close_with(NORMAL_CLOSURE, "").await
    }

    async fn close_with(&mut self, code: u16, reason: &str) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        encode_close(Some(code), reason, None, &mut self.buf);
        self.send_buf().await?;
        self.io.shutdown().await
    }
}

/// Establishes the session over an upgraded connection: sends the empty first message and
/// starts reading the client. `None` if the connection is already gone.
pub(crate) async fn start(
    read: BoxedRead,
    write: BoxedWrite,
    params: SessionParams,
    protocol: ChannelProtocol,
) -> Option<Session> {
    let mut writer = WebSocketWriter {
        io: write,
        protocol,
        buf: Vec::new(),
        closed: false,
    };
    let first = if params.stdout {
        STDOUT
    } else if params.stderr {
        STDERR
    } else {
        ERROR
    };
    if let Err(e) = writer.message(first, &[]).await {
        tracing::debug!(error = %e, "WebSocket client gone before the session started");
        return None;
    }
    let writer = Arc::new(Mutex::new(writer));
    let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
    let (spoke, client_spoke) = oneshot::channel();
    let reader = AbortOnDrop(tokio::spawn(read_loop(
        read,
        writer.clone(),
        protocol,
        events,
        spoke,
    )));
    // Whatever the outcome (bytes, the reader ending, the grace running out), go on.
    let _ = tokio::time::timeout(CLIENT_READY_GRACE, client_spoke).await;
    Some(Session {
        resizable: params.tty,
        params,
        format: sessiontap::Protocol::WebSocket(protocol).error_format(),
        events: events_rx,
        writer: SessionWriter::WebSocket(writer),
        reader,
    })
}

/// What a read asked of the server.
enum Action {
    Pong(Vec<u8>),
    Event(ClientEvent),
    /// The client sent a close frame.
    Gone,
}

/// A ping frame being read: its key and payload so far.
struct PingFrame {
    mask: [u8; 4],
    payload: Vec<u8>,
}

/// The client's side of the connection, parsed.
struct ClientState {
    parser: FrameParser,
    decoder: ChannelDecoder,
    resize: ResizeDecoder,
    ping: Option<PingFrame>,
}

impl ClientState {
    /// Parses one read into actions; an error means the connection cannot go on.
    fn parse(&mut self, mut chunk: &[u8], actions: &mut Vec<Action>) -> Result<(), String> {
        while let Some(event) = self
            .parser
            .next_event(&mut chunk)
            .map_err(|e| e.to_string())?
        {
            // The decoder reports pings without their payload; collect it to echo it.
            match event {
                Event::FrameStart(header) => {
                    let Some(mask) = header.mask else {
                        return Err("unmasked client frame".to_owned());
                    };
                    if header.opcode == Opcode::Ping {
                        self.ping = Some(PingFrame {
                            mask,
                            payload: Vec::new(),
                        });
                    }
                }
                Event::Payload { bytes, offset } => {
                    if let Some(ping) = &mut self.ping {
                        let start = ping.payload.len();
                        let room = MAX_CONTROL_PAYLOAD.saturating_sub(start);
                        ping.payload
                            .extend_from_slice(&bytes[..bytes.len().min(room)]);
                        wsframe::unmask(&mut ping.payload[start..], ping.mask, offset);
                    }
                }
                Event::FrameEnd => {
                    if let Some(ping) = self.ping.take() {
                        actions.push(Action::Pong(ping.payload));
                    }
                }
            }
            let resize = &mut self.resize;
            self.decoder
                .feed(&event, &mut |decoded| match decoded {
                    ChannelEvent::Data {
                        channel: STDIN,
                        bytes,
                    } => actions.push(Action::Event(ClientEvent::Stdin(Bytes::copy_from_slice(
                        bytes,
                    )))),
                    ChannelEvent::Data {
                        channel: RESIZE,
                        bytes,
                    } => {
                        for (cols, rows) in resize.feed(bytes) {
                            actions.push(Action::Event(ClientEvent::Resize { cols, rows }));
                        }
                    }
                    ChannelEvent::ChannelClosed { channel: STDIN } => {
                        actions.push(Action::Event(ClientEvent::StdinClosed));
                    }
                    ChannelEvent::Close { .. } => actions.push(Action::Gone),
                    _ => {}
                })
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

async fn read_loop(
    mut io: BoxedRead,
    writer: Arc<Mutex<WebSocketWriter>>,
    protocol: ChannelProtocol,
    events: mpsc::Sender<ClientEvent>,
    spoke: oneshot::Sender<()>,
) {
    let mut spoke = Some(spoke);
    let mut client = ClientState {
        parser: FrameParser::new(Limits {
            max_payload: MAX_CLIENT_FRAME,
        }),
        decoder: ChannelDecoder::new(protocol),
        resize: ResizeDecoder::default(),
        ping: None,
    };
    // Dropped when the client sends a close frame: the driver then sees the client gone, while
    // the connection is still read to its end.
    let mut events = Some(events);
    let mut buf = vec![0u8; OUTPUT_CHUNK];
    let mut actions = Vec::new();
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket connection read failed");
                return;
            }
        };
        if let Some(spoke) = spoke.take() {
            let _ = spoke.send(());
        }
        let parsed = client.parse(&buf[..n], &mut actions);
        for action in actions.drain(..) {
            match action {
                Action::Pong(payload) => {
                    let _ = writer.lock().await.pong(&payload).await;
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
            tracing::debug!(error = %e, "closing a WebSocket connection that cannot be read");
            let _ = writer
                .lock()
                .await
                .close_with(PROTOCOL_ERROR, "protocol error")
                .await;
            return;
        }
    }
}
