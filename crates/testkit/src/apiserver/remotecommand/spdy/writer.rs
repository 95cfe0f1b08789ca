//! The server's half of a SPDY remote command connection: SYN_REPLYs (through the direction's
//! one [`HeaderDeflater`]), PING echoes, output as data frames, and the end of the session (the
//! status on the error stream, FIN on the server's streams, GOAWAY).

use sessiontap::OutputStream;
use spdyframe::{
    encode_control, encode_data, ControlFrame, HeaderBlock, HeaderDeflater, StreamId, FLAG_FIN,
};
use tokio::io::AsyncWriteExt as _;

use super::Role;
use crate::apiserver::remotecommand::session::{BoxedWrite, OUTPUT_CHUNK};

/// RST_STREAM status PROTOCOL_ERROR (SPDY/3 draft section 2.6.3; spdystream's `ProtocolError`).
const RST_PROTOCOL_ERROR: u32 = 1;

/// The server's half of the connection: SYN_REPLYs, PING echoes, output, status, GOAWAY.
pub(crate) struct SpdyWriter {
    io: BoxedWrite,
    deflater: HeaderDeflater,
    buf: Vec<u8>,
    error: Option<StreamId>,
    stdout: Option<StreamId>,
    stderr: Option<StreamId>,
    closed: bool,
}

impl std::fmt::Debug for SpdyWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpdyWriter")
            .field("error", &self.error)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn broken_pipe() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "session closed")
}

impl SpdyWriter {
    pub(super) fn new(io: BoxedWrite) -> Self {
        SpdyWriter {
            io,
            deflater: HeaderDeflater::new(),
            buf: Vec::new(),
            error: None,
            stdout: None,
            stderr: None,
            closed: false,
        }
    }

    async fn send_buf(&mut self) -> std::io::Result<()> {
        let result = self.io.write_all(&self.buf).await;
        self.buf.clear();
        result
    }

    /// Accepts a client stream (spdystream replies with an empty header block). A stream with a
    /// role replaces the earlier stream of that role, as the kubelet's `waitForStreams` does; the
    /// reader only accepts streams while the kubelet would still take them.
    pub(super) async fn accept(&mut self, stream_id: StreamId, role: Role) -> std::io::Result<()> {
        match role {
            Role::Error => self.error = Some(stream_id),
            Role::Stdout => self.stdout = Some(stream_id),
            Role::Stderr => self.stderr = Some(stream_id),
            Role::Stdin | Role::Resize | Role::Other => {}
        }
        if self.closed {
            return Err(broken_pipe());
        }
        let mut block = Vec::new();
        self.deflater
            .deflate(&HeaderBlock::new(), &mut block)
            .map_err(std::io::Error::other)?;
        encode_control(
            &ControlFrame::SynReply {
                stream_id,
                flags: 0,
                header_block: &block,
            },
            &mut self.buf,
        );
        self.send_buf().await
    }

    /// Refuses a client stream whose id does not grow (spdystream's `checkStreamFrame`).
    pub(super) async fn refuse(&mut self, stream_id: StreamId) -> std::io::Result<()> {
        if self.closed {
            return Err(broken_pipe());
        }
        encode_control(
            &ControlFrame::RstStream {
                stream_id,
                status: RST_PROTOCOL_ERROR,
                flags: 0,
            },
            &mut self.buf,
        );
        self.send_buf().await
    }

    pub(super) async fn echo_ping(&mut self, id: u32) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        encode_control(&ControlFrame::Ping { id, flags: 0 }, &mut self.buf);
        self.send_buf().await
    }

    async fn data(&mut self, stream_id: StreamId, flags: u8, bytes: &[u8]) -> std::io::Result<()> {
        encode_data(stream_id, flags, bytes, &mut self.buf).map_err(std::io::Error::other)?;
        self.send_buf().await
    }

    pub(crate) async fn output(
        &mut self,
        stream: OutputStream,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        if self.closed {
            return Err(broken_pipe());
        }
        let id = match stream {
            OutputStream::Stdout => self.stdout,
            OutputStream::Stderr => self.stderr,
        };
        match id {
            Some(id) => {
                for piece in bytes.chunks(OUTPUT_CHUNK) {
                    self.data(id, 0, piece).await?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    pub(crate) async fn finish(&mut self, status: &[u8]) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        if let Some(error) = self.error {
            if !status.is_empty() {
                self.data(error, 0, status).await?;
            }
        }
        for id in [self.error, self.stdout, self.stderr].into_iter().flatten() {
            self.data(id, FLAG_FIN, &[]).await?;
        }
        self.close().await
    }

    pub(crate) async fn close(&mut self) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        encode_control(
            &ControlFrame::GoAway {
                last_good_stream_id: StreamId::ZERO,
                status: 0,
                flags: 0,
            },
            &mut self.buf,
        );
        self.send_buf().await?;
        self.io.shutdown().await
    }
}
