//! What the exec and attach drivers see of a connection, whichever transport carries it: the
//! client's events (stdin, its end, resizes, departure) from a channel, and a writer for output
//! and the final status.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sessiontap::{ErrorFormat, OutputStream, SessionParams};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, Mutex};

use super::outcome::Outcome;
use super::spdy::SpdyWriter;
use super::tasks::AbortOnDrop;
use super::websocket::WebSocketWriter;

/// The read half of an upgraded connection.
pub(crate) type BoxedRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of an upgraded connection.
pub(crate) type BoxedWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Output is written in pieces of at most this size: the `io.Copy` buffer of the kubelet.
pub(crate) const OUTPUT_CHUNK: usize = 32 * 1024;

/// Client events queued between the connection reader and the driver; with reads of at most
/// [`OUTPUT_CHUNK`] bytes this bounds what a session holds.
pub(crate) const EVENT_QUEUE: usize = 16;

/// After the status is written, how long the client gets to close its side before the
/// connection is dropped. Generous: a client behind a recording proxy may still be reading output
/// queued in the socket (fail-closed recording applies backpressure), and dropping the connection
/// while the client's later bytes (pings) sit unread makes the kernel reset it, discarding output
/// not yet delivered.
const LINGER: Duration = Duration::from_secs(60);

/// Something the client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientEvent {
    /// Bytes for the process's stdin.
    Stdin(Bytes),
    /// The client closed stdin (SPDY FIN on the stdin stream, WebSocket v5 close signal).
    StdinClosed,
    /// The client's terminal has this size; `0x0` means unknown.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
}

/// Writes to the client in the session's transport. Cheap to clone; writes are serialised.
#[derive(Debug, Clone)]
pub(crate) enum SessionWriter {
    /// SPDY/3.1 data frames on the client's streams.
    Spdy(Arc<Mutex<SpdyWriter>>),
    /// WebSocket channel messages.
    WebSocket(Arc<Mutex<WebSocketWriter>>),
}

impl SessionWriter {
    /// Writes process output, in frames/messages of at most [`OUTPUT_CHUNK`] bytes. An error
    /// means the client is gone.
    pub(crate) async fn output(&self, stream: OutputStream, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            SessionWriter::Spdy(w) => w.lock().await.output(stream, bytes).await,
            SessionWriter::WebSocket(w) => w.lock().await.output(stream, bytes).await,
        }
    }

    /// Writes the status on the error stream/channel and closes the connection's write side
    /// (SPDY: FIN on the server's streams and GOAWAY; WebSocket: a close frame 1000).
    pub(crate) async fn finish(&self, status: &[u8]) {
        let result = match self {
            SessionWriter::Spdy(w) => w.lock().await.finish(status).await,
            SessionWriter::WebSocket(w) => w.lock().await.finish(status).await,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not write the session's status");
        }
    }

    /// Closes the connection's write side without a status (the client left first).
    pub(crate) async fn close(&self) {
        let result = match self {
            SessionWriter::Spdy(w) => w.lock().await.close().await,
            SessionWriter::WebSocket(w) => w.lock().await.close().await,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not close the session");
        }
    }
}

/// An established session: the request's parameters, the client's events and the writer.
#[derive(Debug)]
pub(crate) struct Session {
    /// What the client asked for (`tty` implies no stderr).
    pub(crate) params: SessionParams,
    /// How the status is written.
    pub(crate) format: ErrorFormat,
    /// Whether the client sends resizes (a tty, and a protocol that carries them).
    pub(crate) resizable: bool,
    /// The client's events; `None` once the client has gone (connection closed or unreadable).
    pub(crate) events: mpsc::Receiver<ClientEvent>,
    /// Output and status.
    pub(crate) writer: SessionWriter,
    /// The task reading the connection (answering pings until the client closes).
    pub(crate) reader: AbortOnDrop,
}

impl Session {
    /// Writes `outcome` and closes, then gives the client a moment to close its side (reading
    /// and discarding), so that it reads everything before the connection goes.
    pub(crate) async fn finish(mut self, outcome: &Outcome) {
        self.writer.finish(&outcome.encode(self.format)).await;
        self.linger().await;
    }

    /// Closes without a status (the client has gone or broke the protocol).
    pub(crate) async fn abandon(mut self) {
        self.writer.close().await;
        self.linger().await;
    }

    async fn linger(&mut self) {
        // The reader ends when the client closes; events are no longer wanted.
        self.events.close();
        // On timeout the reader is aborted when the session is dropped.
        let _ = tokio::time::timeout(LINGER, self.reader.join()).await;
    }
}
