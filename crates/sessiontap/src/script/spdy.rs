//! Encoding a scripted session over SPDY/3.1, as client-go and kubelet (through spdystream) write it.

use spdyframe::{
    encode_control, encode_data, ControlFrame, HeaderBlock, HeaderDeflater, StreamId, FLAG_FIN,
};

use super::{
    resize_bytes, status_bytes, writes, Effective, EncodeOptions, EncodedSession, ScriptedSession,
};
use crate::event::OutputStream;
use crate::protocol::RemoteCommandVersion;

/// One side of the connection being written.
struct Writer {
    out: Vec<u8>,
    deflater: HeaderDeflater,
}

impl Writer {
    fn new() -> Self {
        Writer {
            out: Vec::new(),
            deflater: HeaderDeflater::new(),
        }
    }

    fn header_block(&mut self, headers: &HeaderBlock) -> Vec<u8> {
        let mut block = Vec::new();
        // Deflating into a Vec only fails if zlib itself fails, which it does not for our input.
        if self.deflater.deflate(headers, &mut block).is_err() {
            block.clear();
        }
        block
    }

    /// One data frame per write, as spdystream writes (frames never exceed 2^24 - 1 bytes since
    /// writes are capped by `max_write`, itself capped below).
    fn data(&mut self, stream_id: StreamId, flags: u8, payload: &[u8]) {
        for piece in payload.chunks(spdyframe::MAX_PAYLOAD as usize) {
            let _ = encode_data(stream_id, flags, piece, &mut self.out);
        }
        if payload.is_empty() {
            let _ = encode_data(stream_id, flags, &[], &mut self.out);
        }
    }

    fn control(&mut self, frame: &ControlFrame<'_>) {
        encode_control(frame, &mut self.out);
    }
}

fn stream(id: u32) -> StreamId {
    StreamId::from_masked(id)
}

pub(super) fn encode(
    session: &ScriptedSession,
    version: RemoteCommandVersion,
    options: &EncodeOptions,
) -> EncodedSession {
    let params = &session.params;
    // client-go creates the streams in this order, each after the previous one's SYN_REPLY.
    let mut roles = vec!["error"];
    if params.stdin {
        roles.push("stdin");
    }
    if params.stdout {
        roles.push("stdout");
    }
    if params.stderr && !params.tty {
        roles.push("stderr");
    }
    if params.tty && version.has_resize() {
        roles.push("resize");
    }
    let id_of = |role: &str| -> StreamId {
        let index = roles.iter().position(|r| *r == role).unwrap_or(0);
        stream(1 + 2 * u32::try_from(index).unwrap_or(0))
    };

    let mut client = Writer::new();
    let mut server = Writer::new();
    for role in &roles {
        let mut headers = HeaderBlock::new();
        headers.push("streamtype", role);
        let block = client.header_block(&headers);
        client.control(&ControlFrame::SynStream {
            stream_id: id_of(role),
            associated_stream_id: StreamId::ZERO,
            priority: 0,
            slot: 0,
            flags: 0,
            header_block: &block,
        });
        let block = server.header_block(&HeaderBlock::new());
        server.control(&ControlFrame::SynReply {
            stream_id: id_of(role),
            flags: 0,
            header_block: &block,
        });
    }
    // The client never writes on the error stream: half-close it at once.
    client.data(id_of("error"), FLAG_FIN, &[]);
    let client_setup_len = client.out.len();

    let max_write = options.max_write.clamp(1, spdyframe::MAX_PAYLOAD as usize);
    let last_stdin = session
        .effective_steps()
        .enumerate()
        .filter(|(_, step)| matches!(step, Effective::Stdin(_)))
        .map(|(index, _)| index)
        .last();
    let mut exit_code = None;
    let mut ping_id = 1;
    for (index, step) in session.effective_steps().enumerate() {
        if options.pings {
            // The client pings; spdystream echoes the same id.
            client.control(&ControlFrame::Ping {
                id: ping_id,
                flags: 0,
            });
            server.control(&ControlFrame::Ping {
                id: ping_id,
                flags: 0,
            });
            ping_id += 2;
        }
        match step {
            Effective::Stdin(bytes) => {
                for piece in writes(bytes, max_write) {
                    client.data(id_of("stdin"), 0, piece);
                }
                if Some(index) == last_stdin {
                    // Stdin reached EOF: client-go closes its side of the stream.
                    client.data(id_of("stdin"), FLAG_FIN, &[]);
                }
            }
            Effective::Resize(cols, rows) => {
                client.data(id_of("resize"), 0, &resize_bytes(cols, rows))
            }
            Effective::Output(which, bytes) => {
                let role = match which {
                    OutputStream::Stdout => "stdout",
                    OutputStream::Stderr => "stderr",
                };
                for piece in writes(bytes, max_write) {
                    server.data(id_of(role), 0, piece);
                }
            }
            Effective::Exit(code) => exit_code = Some(code),
        }
    }

    let status = status_bytes(session.protocol.error_format(), exit_code.unwrap_or(0));
    if exit_code.is_some() && !status.is_empty() {
        server.data(id_of("error"), 0, &status);
    }
    // Kubelet's streams close when the command is done; then spdystream's Close sends GOAWAY.
    for role in roles
        .iter()
        .filter(|r| matches!(**r, "error" | "stdout" | "stderr"))
    {
        server.data(id_of(role), FLAG_FIN, &[]);
    }
    server.control(&ControlFrame::GoAway {
        last_good_stream_id: StreamId::ZERO,
        status: 0,
        flags: 0,
    });
    // kubectl closes the connection once it has the status.
    client.control(&ControlFrame::GoAway {
        last_good_stream_id: StreamId::ZERO,
        status: 0,
        flags: 0,
    });

    EncodedSession {
        client_to_server: client.out,
        server_to_client: server.out,
        client_setup_len,
    }
}
