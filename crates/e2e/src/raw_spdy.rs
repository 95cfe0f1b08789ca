//! A raw SPDY/3.1 exec client for attack tests, over [`RawClient`]: it opens whatever streams a
//! test asks for with whatever headers (a NUL inside a value, a second stream for a role), resets
//! its own streams, and reads back every data frame the proxy forwards, by stream, whatever the
//! client did to that stream. Frames are built with [`spdyframe`], through the client's one header
//! compression context, as spdystream writes them.

use std::collections::BTreeMap;

use anyhow::Context as _;
use spdyframe::{
    encode_control, encode_data, ControlFrame, Event, FrameParser, HeaderBlock, HeaderDeflater,
    StreamId,
};

use crate::raw::RawClient;

/// RST_STREAM status CANCEL (what spdystream's `Stream.Reset` sends).
pub const RST_CANCEL: u32 = 5;

/// The headers of a SPDY exec/attach upgrade offering `v4.channel.k8s.io`, as client-go sends
/// them (Go adds `Content-Length: 0` to a `POST` without a body).
pub const SPDY_UPGRADE: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "SPDY/3.1"),
    ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
    ("Content-Length", "0"),
];

/// One upgraded SPDY exec/attach session seen from the client.
pub struct SpdySession {
    client: RawClient,
    deflater: HeaderDeflater,
    parser: FrameParser,
    /// The payload of every data frame received, by stream id.
    received: BTreeMap<u32, Vec<u8>>,
    /// The ids of the PINGs received.
    pings: Vec<u32>,
    /// The proxy closed its side.
    ended: bool,
    /// Frames held back by [`SpdySession::at_once`], sent together when it ends.
    corked: Option<Vec<u8>>,
}

impl SpdySession {
    /// Sends `POST path` with the SPDY upgrade to the proxy at `proxy_url` and reads the answer's
    /// head; fails unless it is `101 Switching Protocols`.
    pub fn start(proxy_url: &str, path: &str) -> anyhow::Result<SpdySession> {
        let client = RawClient::upgraded(proxy_url, "POST", path, &SPDY_UPGRADE)?;
        Ok(SpdySession {
            corked: None,
            client,
            deflater: HeaderDeflater::new(),
            parser: FrameParser::default(),
            received: BTreeMap::new(),
            pings: Vec::new(),
            ended: false,
        })
    }

    /// Opens stream `id` with a SYN_STREAM carrying `headers` exactly as given.
    pub fn open_with(&mut self, id: u32, headers: &[(&str, &str)]) -> anyhow::Result<()> {
        let block: HeaderBlock = headers.iter().copied().collect();
        let mut compressed = Vec::new();
        self.deflater.deflate(&block, &mut compressed)?;
        let mut frame = Vec::new();
        encode_control(
            &ControlFrame::SynStream {
                stream_id: stream(id)?,
                associated_stream_id: StreamId::ZERO,
                priority: 0,
                slot: 0,
                flags: 0,
                header_block: &compressed,
            },
            &mut frame,
        );
        self.send(&frame)
    }

    /// Sends the frames `frames` writes in one write, so the proxy gets them together: a test
    /// that sends what the proxy refuses, followed by more, then never writes to a connection the
    /// proxy has closed in between.
    pub fn at_once(
        &mut self,
        frames: impl FnOnce(&mut SpdySession) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.corked = Some(Vec::new());
        let written = frames(self);
        let corked = self.corked.take().unwrap_or_default();
        written?;
        self.client.send(&corked)
    }

    fn send(&mut self, frame: &[u8]) -> anyhow::Result<()> {
        match &mut self.corked {
            Some(corked) => {
                corked.extend_from_slice(frame);
                Ok(())
            }
            None => self.client.send(frame),
        }
    }

    /// Opens stream `id` with `streamtype: stream_type`.
    pub fn open(&mut self, id: u32, stream_type: &str) -> anyhow::Result<()> {
        self.open_with(id, &[("streamtype", stream_type)])
    }

    /// Sends a data frame on stream `id`.
    pub fn data(&mut self, id: u32, flags: u8, bytes: &[u8]) -> anyhow::Result<()> {
        let mut frame = Vec::new();
        encode_data(stream(id)?, flags, bytes, &mut frame)?;
        self.send(&frame)
    }

    /// Resets stream `id` (RST_STREAM CANCEL).
    pub fn reset(&mut self, id: u32) -> anyhow::Result<()> {
        let mut frame = Vec::new();
        encode_control(
            &ControlFrame::RstStream {
                stream_id: stream(id)?,
                status: RST_CANCEL,
                flags: 0,
            },
            &mut frame,
        );
        self.send(&frame)
    }

    /// Sends a PING (client ids are odd). spdystream answers it with the same id once it has read
    /// everything the client sent before it, so the echo shows the server got those frames.
    pub fn ping(&mut self, id: u32) -> anyhow::Result<()> {
        let mut frame = Vec::new();
        encode_control(&ControlFrame::Ping { id, flags: 0 }, &mut frame);
        self.send(&frame)
    }

    /// Whether a PING with `id` came back.
    pub fn pinged_back(&self, id: u32) -> bool {
        self.pings.contains(&id)
    }

    /// Everything received on stream `id` so far.
    pub fn received(&self, id: u32) -> &[u8] {
        self.received.get(&id).map_or(&[][..], Vec::as_slice)
    }

    /// Reads until `done` holds or the proxy closes its side; returns whether `done` held.
    pub fn read_until(&mut self, done: impl Fn(&SpdySession) -> bool) -> anyhow::Result<bool> {
        while !done(self) {
            if self.ended {
                return Ok(false);
            }
            self.read_more()?;
        }
        Ok(true)
    }

    /// Reads until the proxy closes its side.
    pub fn read_to_end(&mut self) -> anyhow::Result<()> {
        while !self.ended {
            self.read_more()?;
        }
        Ok(())
    }

    /// Closes the connection as a client leaving does (TLS close_notify, then the socket), so the
    /// proxy ends the session and its recording.
    pub fn close(self) {
        self.client.close();
    }

    /// One read, parsed into frames.
    fn read_more(&mut self) -> anyhow::Result<()> {
        let bytes = self.client.read_some().context("reading the session")?;
        if bytes.is_empty() {
            self.ended = true;
            return Ok(());
        }
        let mut rest = bytes.as_slice();
        while let Some(event) = self
            .parser
            .next_event(&mut rest)
            .context("the proxy forwarded bytes that are not SPDY frames")?
        {
            match event {
                Event::Data {
                    stream_id, bytes, ..
                } => self
                    .received
                    .entry(stream_id.get())
                    .or_default()
                    .extend_from_slice(bytes),
                Event::Control(ControlFrame::Ping { id, .. }) => self.pings.push(id),
                Event::Control(_) => {}
            }
        }
        Ok(())
    }
}

fn stream(id: u32) -> anyhow::Result<StreamId> {
    StreamId::new(id).with_context(|| format!("stream id {id} does not fit in 31 bits"))
}
