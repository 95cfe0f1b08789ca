//! Watches the server-to-client direction of a `kubectl exec` session over SPDY/3.1, as a
//! recording tap would: learns each stream's role from its SYN_REPLY/SYN_STREAM headers and
//! prints what arrives on stdout, fed in small reads that split frames anywhere.
//!
//! Run with `cargo run -p spdyframe --example exec_stream`.

use std::collections::HashMap;

use spdyframe::{
    encode_control, encode_data, ControlFrame, Event, FrameParser, HeaderBlock, HeaderDeflater,
    HeaderInflater, Limits, StreamId, FLAG_FIN,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wire = server_side_bytes()?;

    let mut parser = FrameParser::new(Limits::default());
    let mut inflater = HeaderInflater::default(); // one per direction, every block in order
    let mut roles: HashMap<StreamId, String> = HashMap::new();
    let mut stdout = Vec::new();
    for mut read in wire.chunks(5) {
        while let Some(event) = parser.next_event(&mut read)? {
            match event {
                Event::Control(frame) => {
                    if let Some(block) = frame.header_block() {
                        let headers = inflater.inflate(block)?;
                        if let (Some(id), Some(kind)) =
                            (frame.stream_id(), headers.get("streamtype"))
                        {
                            roles.insert(id, kind.to_owned());
                        }
                    }
                }
                Event::Data {
                    stream_id, bytes, ..
                } => {
                    if roles.get(&stream_id).map(String::as_str) == Some("stdout") {
                        stdout.extend_from_slice(bytes);
                    }
                }
            }
        }
    }
    print!("{}", String::from_utf8_lossy(&stdout));
    Ok(())
}

/// A server that names stream roles in its replies (as spdystream echoes them), then writes
/// output on stdout (5) and the exit status on the error stream (1).
fn server_side_bytes() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut deflater = HeaderDeflater::new();
    let mut wire = Vec::new();
    for (id, kind) in [(1, "error"), (5, "stdout")] {
        let headers: HeaderBlock = [("streamtype", kind)].into_iter().collect();
        let mut block = Vec::new();
        deflater.deflate(&headers, &mut block)?;
        let stream_id = StreamId::new(id).ok_or("stream id")?;
        encode_control(
            &ControlFrame::SynReply {
                stream_id,
                flags: 0,
                header_block: &block,
            },
            &mut wire,
        );
    }
    let stdout = StreamId::new(5).ok_or("stream id")?;
    encode_data(stdout, 0, b"hello from the pod\n", &mut wire)?;
    encode_data(stdout, FLAG_FIN, b"", &mut wire)?;
    let error = StreamId::new(1).ok_or("stream id")?;
    encode_data(
        error,
        FLAG_FIN,
        br#"{"metadata":{},"status":"Success"}"#,
        &mut wire,
    )?;
    Ok(wire)
}
