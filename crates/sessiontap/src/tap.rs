//! The tap: one observer per direction of a session, and what they share.

use crate::error::TapError;
use crate::event::{OutputStream, SessionEvent};
use crate::params::SessionParams;
use crate::protocol::Protocol;
use crate::resize::ResizeDecoder;
use crate::spdy::{SpdyTap, StreamWait};
use crate::status::ErrorStreamCollector;
use crate::websocket::WebSocketTap;
use crate::ExitStatus;

/// Bounds on what a tap holds in memory, whatever the peers send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapLimits {
    /// The longest resize object held while incomplete, in bytes (default 4 KiB; kubectl's are
    /// about 25 bytes). A longer one is [`ResizeError::TooLarge`](crate::ResizeError::TooLarge).
    pub max_resize_object: usize,
    /// The most bytes of the error stream/channel held until it is decoded (default 64 KiB).
    pub max_error_stream: usize,
    /// SPDY: the largest decompressed header block (default 64 KiB): a zlib bomb is an error, not
    /// an allocation.
    pub max_header_block: usize,
    /// SPDY: the largest control frame payload, which the parser buffers when it arrives split
    /// (default 1 MiB).
    pub max_control_frame: u32,
    /// WebSocket: the largest frame payload a header may announce (default 16 MiB; payloads are
    /// never buffered, this only bounds what a peer can announce).
    pub max_websocket_frame: u64,
}

impl Default for TapLimits {
    fn default() -> Self {
        TapLimits {
            max_resize_object: 4 * 1024,
            max_error_stream: 64 * 1024,
            max_header_block: spdyframe::DEFAULT_MAX_DECOMPRESSED,
            max_control_frame: spdyframe::DEFAULT_MAX_CONTROL_PAYLOAD,
            max_websocket_frame: wsframe::Limits::DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// Counters of what a tap saw but did not report, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// Data frames (SPDY) or messages (WebSocket) carrying data the session does not use: client
    /// data on a stream whose role is unknown (no SYN_STREAM seen, or an unknown `streamtype`) or
    /// that the client closed, data on a channel with no meaning in that direction, error stream
    /// data after the server closed it or after the exit status was decoded. (Server data on a
    /// SPDY stream the tap cannot attribute is an error, not counted here.)
    pub ignored_frames: u64,
    /// The payload bytes of those frames or messages.
    pub ignored_bytes: u64,
}

/// Observes both byte streams of one `kubectl exec`/`attach` session and reports
/// [`SessionEvent`]s.
///
/// Feed it copies of (or borrowed slices of) the bytes exactly as they are forwarded, each
/// direction in order and split anywhere: [`SessionTap::client_bytes`] for client to server,
/// [`SessionTap::server_bytes`] for server to client. It never needs bytes held back.
///
/// **Ordering (SPDY):** stream roles are learnt from the client's SYN_STREAM frames, and the
/// server can only send on a stream after it has seen its SYN_STREAM. Feed each client chunk to the
/// tap *before* (or instead of racing with) any server chunk that was read after that client chunk
/// was forwarded: for example, feed the client chunk first and forward it second, or feed both
/// directions from one task in the order they were read. Server data on a stream the tap does not
/// know as stdout, stderr or the error stream is an error
/// ([`SpdyStreamError::UnattributedData`](crate::SpdyStreamError::UnattributedData)): the client
/// may be reading it as output. WebSocket has no such requirement.
///
/// **Unreadable sessions (SPDY):** the tap follows the streams as spdystream and the kubelet do
/// (the first NUL-separated `streamtype` value, names in any letter case, output still written
/// on streams the client reset) and reports [`TapError::SpdyStreams`] when a client makes that
/// impossible (a second stream for a role, a stream id reused) or the server sends data it
/// cannot attribute. A proxy enforcing a recording must then end the session.
///
/// **Late header blocks (SPDY):** a tap made with [`SessionTap::with_params`] knows which streams
/// the server waits for. Once the client has opened them all, the server takes no more streams,
/// and the tap drops the client's header compression context (zlib-rs allocates its 32 KiB
/// window with it) and reports any later SYN_STREAM, SYN_REPLY or HEADERS from the client as
/// [`SpdyStreamError::HeadersAfterStreamsOpen`](crate::SpdyStreamError::HeadersAfterStreamsOpen):
/// it can no longer read them. kubectl never sends one. A tap made with [`SessionTap::new`]
/// keeps the context to the end of the session.
///
/// **Errors:** a method that returns an error has stopped the tap: events reported before the
/// error stand, nothing more is reported, and every later call returns [`TapError::Failed`].
///
/// **Exit:** the [`SessionEvent::Exit`] event is reported at most once, as soon as the status is
/// complete (a JSON `Status` as soon as its object closes, plain text when its stream/message
/// ends). [`SessionTap::finish`] reports what the error stream held when the connection ends
/// without one; over SPDY, a session whose error stream the tap never saw opened has no exit
/// status at all (never a success by default).
#[derive(Debug)]
pub struct SessionTap {
    protocol: Protocol,
    inner: Inner,
    shared: Shared,
    failed: bool,
}

#[derive(Debug)]
enum Inner {
    Spdy(Box<SpdyTap>),
    WebSocket(Box<WebSocketTap>),
}

impl SessionTap {
    /// A tap at the start of a session speaking `protocol`, its parameters unknown: over SPDY
    /// it reads the client's header blocks to the end of the session. Prefer
    /// [`SessionTap::with_params`] when the request's query is at hand.
    pub fn new(protocol: Protocol, limits: TapLimits) -> Self {
        Self::build(protocol, None, limits)
    }

    /// A tap at the start of a session speaking `protocol`, requested with `params` (the query of
    /// the exec/attach request, as forwarded). Over SPDY it stops reading the client's header
    /// blocks, and frees their compression context, once the client has opened every stream the
    /// server waits for; a later header block from the client is an error (see the type's docs).
    /// Over WebSocket it is the same as [`SessionTap::new`].
    pub fn with_params(protocol: Protocol, params: &SessionParams, limits: TapLimits) -> Self {
        Self::build(protocol, Some(params), limits)
    }

    fn build(protocol: Protocol, params: Option<&SessionParams>, limits: TapLimits) -> Self {
        let inner = match protocol {
            Protocol::Spdy { version } => {
                let wait = params.map(|params| StreamWait::new(params, version));
                Inner::Spdy(Box::new(SpdyTap::new(&limits, wait)))
            }
            Protocol::WebSocket(channel_protocol) => {
                Inner::WebSocket(Box::new(WebSocketTap::new(channel_protocol, &limits)))
            }
        };
        SessionTap {
            protocol,
            inner,
            shared: Shared {
                resize: ResizeDecoder::new(limits.max_resize_object),
                error: ErrorStreamCollector::new(protocol.error_format(), limits.max_error_stream),
                stats: TapStats::default(),
            },
            failed: false,
        }
    }

    /// The protocol the tap was made for.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Feeds the next chunk of the client-to-server byte stream; events go to `sink` as they are
    /// found (input and resizes).
    pub fn client_bytes(
        &mut self,
        chunk: &[u8],
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) -> Result<(), TapError> {
        self.feed(chunk, true, sink)
    }

    /// Feeds the next chunk of the server-to-client byte stream; events go to `sink` as they are
    /// found (output and the exit status).
    pub fn server_bytes(
        &mut self,
        chunk: &[u8],
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) -> Result<(), TapError> {
        self.feed(chunk, false, sink)
    }

    fn feed(
        &mut self,
        chunk: &[u8],
        from_client: bool,
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) -> Result<(), TapError> {
        if self.failed {
            return Err(TapError::Failed);
        }
        let result = match (&mut self.inner, from_client) {
            (Inner::Spdy(tap), true) => tap.client_bytes(chunk, &mut self.shared, sink),
            (Inner::Spdy(tap), false) => tap.server_bytes(chunk, &mut self.shared, sink),
            (Inner::WebSocket(tap), true) => tap.client_bytes(chunk, &mut self.shared, sink),
            (Inner::WebSocket(tap), false) => tap.server_bytes(chunk, &mut self.shared, sink),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Ends the session (both connections closed): if no exit status was reported yet, reports
    /// the one the error stream holds, as client-go concludes it when the stream ends there (no
    /// bytes at all is [`ExitStatus::Success`]). Does nothing after an error, nor over SPDY when
    /// the client never opened an error stream: the exit status is then unknown, not a success.
    pub fn finish(&mut self, sink: &mut dyn FnMut(SessionEvent<'_>)) {
        let error_stream_seen = match &self.inner {
            Inner::Spdy(spdy) => spdy.error_stream().is_some(),
            Inner::WebSocket(_) => true,
        };
        if !self.failed && error_stream_seen {
            self.shared.error_end(sink);
        }
    }

    /// Whether the exit status has been reported.
    pub fn exited(&self) -> bool {
        self.shared.error.is_done()
    }

    /// Whether the tap has failed.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Over SPDY, the id of the client's `error` stream once its SYN_STREAM has been seen: where a
    /// proxy writes a `metav1.Status` to tell the client why its session ends. `None` over WebSocket
    /// (the error channel is always 3) and before the stream is opened.
    pub fn spdy_error_stream(&self) -> Option<spdyframe::StreamId> {
        match &self.inner {
            Inner::Spdy(spdy) => spdy.error_stream(),
            Inner::WebSocket(_) => None,
        }
    }

    /// Over SPDY, the client's `stdout` stream once opened (see [`SessionTap::spdy_stdout_stream`]).
    pub(crate) fn spdy_stream_of_stdout(&self) -> Option<spdyframe::StreamId> {
        match &self.inner {
            Inner::Spdy(spdy) => spdy.stdout_stream(),
            Inner::WebSocket(_) => None,
        }
    }

    /// What the tap saw but did not report.
    pub fn stats(&self) -> TapStats {
        self.shared.stats
    }
}

/// What both directions of a session update: the two JSON streams and the counters.
#[derive(Debug)]
pub(crate) struct Shared {
    resize: ResizeDecoder,
    error: ErrorStreamCollector,
    stats: TapStats,
}

impl Shared {
    pub(crate) fn output(
        &mut self,
        stream: OutputStream,
        bytes: &[u8],
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) {
        if !bytes.is_empty() {
            sink(SessionEvent::Output { stream, bytes });
        }
    }

    pub(crate) fn input(&mut self, bytes: &[u8], sink: &mut dyn FnMut(SessionEvent<'_>)) {
        if !bytes.is_empty() {
            sink(SessionEvent::Input { bytes });
        }
    }

    pub(crate) fn resize(
        &mut self,
        bytes: &[u8],
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) -> Result<(), TapError> {
        self.resize.feed(bytes, &mut |cols, rows| {
            sink(SessionEvent::Resize { cols, rows })
        })?;
        Ok(())
    }

    /// Bytes of the error stream/channel.
    pub(crate) fn error_bytes(
        &mut self,
        bytes: &[u8],
        sink: &mut dyn FnMut(SessionEvent<'_>),
    ) -> Result<(), TapError> {
        if self.error.is_done() {
            self.ignore(bytes.len());
            return Ok(());
        }
        let status = self.error.feed(bytes)?;
        exit(status, sink);
        Ok(())
    }

    /// The end of a message on the error channel (WebSocket).
    pub(crate) fn error_message_end(&mut self, sink: &mut dyn FnMut(SessionEvent<'_>)) {
        exit(self.error.message_end(), sink);
    }

    /// The end of the error stream/channel.
    pub(crate) fn error_end(&mut self, sink: &mut dyn FnMut(SessionEvent<'_>)) {
        exit(self.error.end(), sink);
    }

    /// The connection ended abnormally before the exit status was complete.
    pub(crate) fn error_abort(&mut self, message: String, sink: &mut dyn FnMut(SessionEvent<'_>)) {
        exit(self.error.abort(message), sink);
    }

    /// Counts one frame or message of `len` bytes that is not reported.
    pub(crate) fn ignore_frame(&mut self, len: usize) {
        self.stats.ignored_frames += 1;
        self.ignore(len);
    }

    /// Counts `len` more bytes that are not reported.
    pub(crate) fn ignore(&mut self, len: usize) {
        self.stats.ignored_bytes = self
            .stats
            .ignored_bytes
            .saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
    }
}

fn exit(status: Option<ExitStatus>, sink: &mut dyn FnMut(SessionEvent<'_>)) {
    if let Some(status) = status {
        sink(SessionEvent::Exit { status: &status });
    }
}
