//! One port-forward connection: the client's SPDY/3.1 frames read as spdystream reads them and
//! the kubelet's `httpStreamHandler` (`pkg/kubelet/cri/streaming/portforward/httpstream.go`)
//! pairs the streams.
//!
//! - Every SYN_STREAM's header block goes through the one inflater of the client's direction and
//!   is checked as spdystream checks it ([`spdy_headers`]); a block it refuses, or bytes that
//!   cannot be framed, end the connection. Stream ids must grow (else RST_STREAM
//!   PROTOCOL_ERROR).
//! - `httpStreamReceived` checks each new stream before it is answered: `port` must be a port
//!   (`strconv.ParseUint(s, 10, 16)`, above 0) and `streamtype` `error` or `data`, else the
//!   stream is reset (RST_STREAM CANCEL, spdystream's `Stream.Reset`) and not answered. Header
//!   values are read as `Header.Get` reads them: the first NUL-separated piece.
//! - Accepted streams get a SYN_REPLY with an empty header block and join the pair of their
//!   `requestID` (without one, the kubelet's guess for old clients: the error stream's id, or the
//!   data stream's id minus 2). A second error or data stream for a pair is refused with
//!   `error processing stream for request ID: error stream already assigned` on the pair's error
//!   stream; a pair not complete after 30 s (`streamCreationTimeout`) gets
//!   `timed out waiting for streams` there. A complete pair leaves the table (a later stream with
//!   the same request ID starts a new pair) and is forwarded ([`super::forward`]).
//! - Data on a data stream goes to its pair's target; a FIN or RST_STREAM on it ends that
//!   direction (spdystream's `closeRemoteChannels`). A reset stream is still written to, but no
//!   FIN is sent on it any more (`Stream.Close` fails on a finished stream).
//! - PINGs the client starts are echoed; SETTINGS, WINDOW_UPDATE, GOAWAY and the rest are read
//!   and ignored, as spdystream does.
//! - When the client's side of the connection ends, every forward of the connection ends and the
//!   connection is closed (over WebSocket with a close frame 1000).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use spdyframe::{
    encode_control, encode_data, ControlFrame, Event, FrameParser, HeaderBlock, HeaderDeflater,
    HeaderInflater, Limits, StreamId, FLAG_FIN,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::tunnel::{TunnelReader, TunnelWriter};
use super::{forward, BoxedRead, BoxedWrite, PodPorts};
use crate::apiserver::config::parse_container_port;
use crate::apiserver::streaming::spdy_headers::{self, first_value};

/// The kubelet's `DefaultStreamCreationTimeout`.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest control frame accepted; port-forward header blocks are a few dozen bytes.
const MAX_CONTROL_PAYLOAD: u32 = 64 * 1024;
/// Reads of the connection, and target reads forwarded as one data frame (`io.Copy`'s buffer).
pub(super) const CHUNK: usize = 32 * 1024;
/// Queued pieces between the connection and its writer, and between it and a target.
const QUEUE: usize = 16;
/// RST_STREAM status PROTOCOL_ERROR.
const RST_PROTOCOL_ERROR: u32 = 1;
/// RST_STREAM status CANCEL (spdystream's `Stream.Reset`).
const RST_CANCEL: u32 = 5;

/// What the connection's writer sends.
#[derive(Debug)]
pub(super) enum Out {
    /// Encoded SPDY frames.
    Frames(Vec<u8>),
    /// An empty data frame with FIN on a stream, unless the client has reset it.
    Fin(StreamId),
    /// The client reset this stream: no FIN on it any more.
    ClientReset(StreamId),
    /// A WebSocket pong with this payload (tunnel only).
    Pong(Vec<u8>),
    /// Close the connection.
    End,
}

/// Sends to the connection's writer. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct OutSender(mpsc::Sender<Out>);

impl OutSender {
    /// Data on `stream`; an error means the client is gone.
    pub(super) async fn data(&self, stream: StreamId, bytes: &[u8]) -> Result<(), ()> {
        let mut frame = Vec::with_capacity(bytes.len() + 8);
        encode_data(stream, 0, bytes, &mut frame).map_err(|_| ())?;
        self.0.send(Out::Frames(frame)).await.map_err(|_| ())
    }

    /// Half-closes `stream` (FIN).
    pub(super) async fn fin(&self, stream: StreamId) {
        let _ = self.0.send(Out::Fin(stream)).await;
    }

    async fn send(&self, out: Out) -> Result<(), ()> {
        self.0.send(out).await.map_err(|_| ())
    }
}

/// Serves one upgraded connection until the client goes.
pub(super) async fn run(read: BoxedRead, write: BoxedWrite, tunnel: bool, pod: Arc<PodPorts>) {
    let (out_tx, out_rx) = mpsc::channel(QUEUE);
    let out = OutSender(out_tx);
    let writer = tokio::spawn(write_loop(write, tunnel, out_rx));
    let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let reader = tokio::spawn(read_loop(read, tunnel, in_tx, out.clone()));
    let (timeouts_tx, mut timeouts) = mpsc::channel::<String>(QUEUE);
    let mut conn = Connection {
        parser: FrameParser::new(Limits {
            max_control_payload: MAX_CONTROL_PAYLOAD,
        }),
        inflater: HeaderInflater::default(),
        deflater: HeaderDeflater::new(),
        next_stream_id: 1,
        data_streams: HashMap::new(),
        pairs: HashMap::new(),
        forwards: JoinSet::new(),
        timeouts: timeouts_tx,
        out: out.clone(),
        pod,
    };
    loop {
        tokio::select! {
            chunk = in_rx.recv() => {
                let Some(chunk) = chunk else { break };
                if let Err(e) = conn.feed(&chunk).await {
                    tracing::debug!(error = %e, "closing a port-forward connection that cannot be read");
                    break;
                }
            }
            Some(request_id) = timeouts.recv() => conn.timed_out(&request_id).await,
        }
    }
    reader.abort();
    conn.forwards.shutdown().await;
    let _ = out.send(Out::End).await;
    drop(conn);
    drop(out);
    let _ = writer.await;
}

/// A pair being assembled.
#[derive(Debug, Default)]
struct Pair {
    error: Option<StreamId>,
    data: Option<DataStream>,
}

/// A data stream: its id, its `port` header, and what the client sends on it.
#[derive(Debug)]
struct DataStream {
    id: StreamId,
    port: String,
    from_client: mpsc::Receiver<Bytes>,
}

struct Connection {
    parser: FrameParser,
    inflater: HeaderInflater,
    deflater: HeaderDeflater,
    /// spdystream's `receivedStreamId`: the lowest id a new stream may have.
    next_stream_id: u32,
    /// Where each open data stream's bytes go (dropped: the client ended the stream).
    data_streams: HashMap<StreamId, mpsc::Sender<Bytes>>,
    pairs: HashMap<String, Pair>,
    forwards: JoinSet<()>,
    timeouts: mpsc::Sender<String>,
    out: OutSender,
    pod: Arc<PodPorts>,
}

impl Connection {
    /// Handles one piece of the client's SPDY byte stream.
    async fn feed(&mut self, mut chunk: &[u8]) -> Result<(), String> {
        // Events borrow the chunk; what they ask for is done after parsing each one.
        loop {
            let event = self
                .parser
                .next_event(&mut chunk)
                .map_err(|e| e.to_string())?;
            let Some(event) = event else {
                return Ok(());
            };
            match event {
                Event::Control(frame) => {
                    let block = spdy_headers::read_block(&mut self.inflater, &frame)?;
                    match frame {
                        ControlFrame::SynStream {
                            stream_id, flags, ..
                        } => {
                            let block = block.unwrap_or_default();
                            self.open(stream_id, flags & FLAG_FIN != 0, &block).await?;
                        }
                        ControlFrame::RstStream { stream_id, .. } => {
                            self.data_streams.remove(&stream_id);
                            let _ = self.out.send(Out::ClientReset(stream_id)).await;
                        }
                        ControlFrame::Ping { id, .. } if id % 2 == 1 => {
                            let mut frame = Vec::new();
                            encode_control(&ControlFrame::Ping { id, flags: 0 }, &mut frame);
                            let _ = self.out.send(Out::Frames(frame)).await;
                        }
                        _ => {}
                    }
                }
                Event::Data {
                    stream_id, bytes, ..
                } => {
                    let ends = event.ends_stream();
                    if let Some(sender) = self.data_streams.get(&stream_id) {
                        if !bytes.is_empty()
                            && sender.send(Bytes::copy_from_slice(bytes)).await.is_err()
                        {
                            // The forward has ended; the client's further bytes go nowhere.
                            self.data_streams.remove(&stream_id);
                        }
                    }
                    if ends {
                        self.data_streams.remove(&stream_id);
                    }
                }
            }
        }
    }

    /// A SYN_STREAM: spdystream's id check, the kubelet's `httpStreamReceived`, then pairing.
    async fn open(
        &mut self,
        stream_id: StreamId,
        fin: bool,
        block: &HeaderBlock,
    ) -> Result<(), String> {
        let id = stream_id.get();
        if id == 0 {
            return Err("SYN_STREAM for stream 0".into());
        }
        if id < self.next_stream_id {
            self.reset(stream_id, RST_PROTOCOL_ERROR).await;
            return Ok(());
        }
        self.next_stream_id = id.saturating_add(2);
        let port = first_value(block, "port");
        let stream_type = first_value(block, "streamtype");
        let rejected = if port.is_empty() {
            Some("\"port\" header is required".to_owned())
        } else if parse_container_port(port).is_none() {
            Some(format!("invalid port {port:?}"))
        } else if stream_type.is_empty() {
            Some("\"streamType\" header is required".to_owned())
        } else if stream_type != "error" && stream_type != "data" {
            Some(format!("invalid stream type {stream_type:?}"))
        } else {
            None
        };
        if let Some(why) = rejected {
            tracing::debug!(stream = id, why, "port-forward stream rejected");
            self.reset(stream_id, RST_CANCEL).await;
            return Ok(());
        }
        self.reply(stream_id).await?;
        let mut request_id = first_value(block, "requestid").to_owned();
        if request_id.is_empty() {
            request_id = if stream_type == "error" {
                id.to_string()
            } else {
                (i64::from(id) - 2).to_string()
            };
        }
        // Forget the forwards and timers that have ended.
        while self.forwards.try_join_next().is_some() {}
        let created = !self.pairs.contains_key(&request_id);
        let pair = self.pairs.entry(request_id.clone()).or_default();
        if created {
            let timeouts = self.timeouts.clone();
            let request = request_id.clone();
            self.forwards.spawn(async move {
                tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
                let _ = timeouts.send(request).await;
            });
        }
        let assigned = if stream_type == "error" {
            match pair.error {
                Some(_) => Err("error stream already assigned"),
                None => {
                    pair.error = Some(stream_id);
                    Ok(())
                }
            }
        } else if pair.data.is_some() {
            Err("data stream already assigned")
        } else {
            let (sender, from_client) = mpsc::channel(QUEUE);
            if !fin {
                self.data_streams.insert(stream_id, sender);
            }
            pair.data = Some(DataStream {
                id: stream_id,
                port: port.to_owned(),
                from_client,
            });
            Ok(())
        };
        if let Err(why) = assigned {
            let message = format!("error processing stream for request {request_id}: {why}");
            tracing::debug!(%message, "port-forward stream refused");
            if let Some(error) = pair.error {
                let _ = self.out.data(error, message.as_bytes()).await;
            }
            return Ok(());
        }
        if pair.error.is_some() && pair.data.is_some() {
            if let Some(Pair {
                error: Some(error),
                data: Some(data),
            }) = self.pairs.remove(&request_id)
            {
                let port = parse_container_port(&data.port).unwrap_or_default();
                self.forwards.spawn(forward::run(
                    self.out.clone(),
                    error,
                    data.id,
                    data.from_client,
                    port,
                    self.pod.clone(),
                ));
            }
        }
        Ok(())
    }

    /// The kubelet's `monitorStreamPair` timing out on an incomplete pair.
    async fn timed_out(&mut self, request_id: &str) {
        let Some(pair) = self.pairs.remove(request_id) else {
            return;
        };
        if let Some(data) = &pair.data {
            self.data_streams.remove(&data.id);
        }
        let message = format!("(conn=&{{}}, request={request_id}) timed out waiting for streams");
        tracing::debug!(%message, "port-forward pair incomplete");
        if let Some(error) = pair.error {
            let _ = self.out.data(error, message.as_bytes()).await;
        }
    }

    async fn reply(&mut self, stream_id: StreamId) -> Result<(), String> {
        let mut block = Vec::new();
        self.deflater
            .deflate(&HeaderBlock::new(), &mut block)
            .map_err(|e| e.to_string())?;
        let mut frame = Vec::new();
        encode_control(
            &ControlFrame::SynReply {
                stream_id,
                flags: 0,
                header_block: &block,
            },
            &mut frame,
        );
        let _ = self.out.send(Out::Frames(frame)).await;
        Ok(())
    }

    async fn reset(&mut self, stream_id: StreamId, status: u32) {
        let mut frame = Vec::new();
        encode_control(
            &ControlFrame::RstStream {
                stream_id,
                status,
                flags: 0,
            },
            &mut frame,
        );
        let _ = self.out.send(Out::Frames(frame)).await;
    }
}

/// Reads the client's side: the SPDY byte stream, unwrapped from WebSocket messages when
/// tunnelled. Ends (dropping `to_conn`) when the client closes or breaks the transport.
async fn read_loop(
    mut io: BoxedRead,
    tunnel: bool,
    to_conn: mpsc::Sender<Vec<u8>>,
    out: OutSender,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut unwrap = tunnel.then(TunnelReader::new);
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "port-forward connection read failed");
                return;
            }
        };
        let Some(tunnel) = &mut unwrap else {
            if to_conn.send(buf[..n].to_vec()).await.is_err() {
                return;
            }
            continue;
        };
        let mut spdy = Vec::new();
        let mut pongs = Vec::new();
        let result = tunnel.feed(&buf[..n], &mut spdy, &mut pongs);
        for payload in pongs {
            let _ = out.send(Out::Pong(payload)).await;
        }
        if !spdy.is_empty() && to_conn.send(spdy).await.is_err() {
            return;
        }
        match result {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(error = %e, "closing a port-forward tunnel that cannot be read");
                return;
            }
        }
    }
}

/// Writes the server's side, in order.
async fn write_loop(mut io: BoxedWrite, tunnel: bool, mut from: mpsc::Receiver<Out>) {
    let mut wrap = tunnel.then(TunnelWriter::default);
    let mut reset = std::collections::HashSet::new();
    let mut frame = Vec::new();
    while let Some(out) = from.recv().await {
        frame.clear();
        let spdy = match out {
            Out::Frames(bytes) => bytes,
            Out::Fin(stream) => {
                if !reset.insert(stream) {
                    // Reset by the client, or already finished.
                    continue;
                }
                let mut fin = Vec::with_capacity(8);
                let _ = encode_data(stream, FLAG_FIN, &[], &mut fin);
                fin
            }
            Out::ClientReset(stream) => {
                reset.insert(stream);
                continue;
            }
            Out::Pong(payload) => {
                if let Some(wrap) = &mut wrap {
                    wrap.pong(&payload, &mut frame);
                    if io.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            Out::End => break,
        };
        let bytes = match &mut wrap {
            Some(wrap) => {
                wrap.binary(&spdy, &mut frame);
                &frame
            }
            None => &spdy,
        };
        if io.write_all(bytes).await.is_err() {
            return;
        }
    }
    if let Some(wrap) = &mut wrap {
        frame.clear();
        wrap.close(&mut frame);
        let _ = io.write_all(&frame).await;
    }
    let _ = io.shutdown().await;
}
