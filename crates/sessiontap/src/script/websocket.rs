//! Encoding a scripted session over WebSocket, as client-go and the API server (wsstream) write it.

use base64::Engine as _;
use wsframe::{
    encode_close, encode_close_signal, encode_frame, encode_ping, encode_pong, ChannelProtocol,
    FrameHeader, Opcode, ERROR, RESIZE, STDERR, STDIN, STDOUT,
};

use super::{
    resize_bytes, status_bytes, writes, Effective, EncodeOptions, EncodedSession, ScriptedSession,
};
use crate::event::OutputStream;

/// One side of the connection being written.
struct Writer<'o> {
    out: Vec<u8>,
    protocol: ChannelProtocol,
    options: &'o EncodeOptions,
    /// Masking key state (client only); `None` for the server, whose frames are never masked.
    mask_state: Option<u32>,
    /// Raw channel byte in TEXT frames (the Python client), binary protocols only.
    text_frames: bool,
    payload: Vec<u8>,
}

impl Writer<'_> {
    fn mask(&mut self) -> Option<[u8; 4]> {
        let state = self.mask_state.as_mut()?;
        // xorshift32: distinct, deterministic keys per frame.
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        Some(state.to_be_bytes())
    }

    /// A control frame between data frames: a ping from the client, a pong from the server
    /// (and the reverse), as keep-alives go.
    fn keep_alive(&mut self) {
        let mask = self.mask();
        encode_ping(b"k", mask, &mut self.out);
        let mask = self.mask();
        encode_pong(b"", mask, &mut self.out);
    }

    /// One channel message (`data` may be empty: the message is then only its channel byte).
    fn message(&mut self, channel: u8, data: &[u8]) {
        self.payload.clear();
        let opcode = if self.protocol.is_base64() {
            self.payload.push(b'0' + channel);
            let text = base64::engine::general_purpose::STANDARD.encode(data);
            self.payload.extend_from_slice(text.as_bytes());
            Opcode::Text
        } else {
            self.payload.push(channel);
            self.payload.extend_from_slice(data);
            if self.text_frames {
                Opcode::Text
            } else {
                Opcode::Binary
            }
        };
        let payload = std::mem::take(&mut self.payload);
        let size = self
            .options
            .max_websocket_frame
            .unwrap_or(usize::MAX)
            .max(1);
        let mut fragments = payload.chunks(size).peekable();
        let mut first = true;
        while let Some(fragment) = fragments.next() {
            let last = fragments.peek().is_none();
            let header = FrameHeader {
                fin: last,
                rsv: 0,
                opcode: if first { opcode } else { Opcode::Continuation },
                mask: self.mask(),
                payload_len: 0,
            };
            encode_frame(&header, fragment, &mut self.out);
            if self.options.pings && !last {
                // Control frames may come between the fragments of a message (RFC 6455 5.4).
                self.keep_alive();
            }
            first = false;
        }
        self.payload = payload;
    }
}

pub(super) fn encode(
    session: &ScriptedSession,
    protocol: ChannelProtocol,
    options: &EncodeOptions,
) -> EncodedSession {
    let params = &session.params;
    let mut client = Writer {
        out: Vec::new(),
        protocol,
        options,
        mask_state: Some(options.mask_seed | 1),
        text_frames: options.client_text_frames,
        payload: Vec::new(),
    };
    let mut server = Writer {
        out: Vec::new(),
        protocol,
        options,
        mask_state: None,
        text_frames: false,
        payload: Vec::new(),
    };

    // Right after the 101 the server writes an empty message on its lowest writable channel
    // (kubelet's createWebSocketStreams, the API server's stream translator).
    let hello = if params.stdout {
        STDOUT
    } else if params.stderr {
        STDERR
    } else {
        ERROR
    };
    server.message(hello, &[]);

    let max_write = options.max_write.max(1);
    let steps: Vec<Effective<'_>> = session.effective_steps().collect();
    let last_stdin = steps
        .iter()
        .rposition(|step| matches!(step, Effective::Stdin(_)));
    let mut exit_code = None;
    for (index, step) in steps.into_iter().enumerate() {
        if options.pings {
            client.keep_alive();
            server.keep_alive();
        }
        match step {
            Effective::Stdin(bytes) => {
                for piece in writes(bytes, max_write) {
                    client.message(STDIN, piece);
                }
                if Some(index) == last_stdin && protocol.supports_close_signal() {
                    // Stdin reached EOF: client-go's v5 stream.Close sends the close signal.
                    let mask = client.mask();
                    encode_close_signal(STDIN, mask, &mut client.out);
                }
            }
            Effective::Resize(cols, rows) => client.message(RESIZE, &resize_bytes(cols, rows)),
            Effective::Output(OutputStream::Stdout, bytes) => {
                for piece in writes(bytes, max_write) {
                    server.message(STDOUT, piece);
                }
            }
            Effective::Output(OutputStream::Stderr, bytes) => {
                for piece in writes(bytes, max_write) {
                    server.message(STDERR, piece);
                }
            }
            Effective::Exit(code) => exit_code = Some(code),
        }
    }

    if let Some(code) = exit_code {
        let status = status_bytes(session.protocol.error_format(), code);
        if !status.is_empty() {
            server.message(ERROR, &status);
        }
    }
    // The server closes normally once the command is done; the client echoes the close.
    encode_close(Some(1000), "", None, &mut server.out);
    let mask = client.mask();
    encode_close(Some(1000), "", mask, &mut client.out);

    EncodedSession {
        client_to_server: client.out,
        server_to_client: server.out,
        client_setup_len: 0,
    }
}
