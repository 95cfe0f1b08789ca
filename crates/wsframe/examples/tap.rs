//! Observes both directions of a scripted `kubectl exec -it` over `v5.channel.k8s.io`, read
//! in small pieces as a proxy would, and prints what each direction carried.

use wsframe::{
    encode_channel_message, encode_close, encode_close_signal, encode_ping, encode_pong,
    ChannelEvent, ChannelProtocol, ChannelStream, Limits, CLIENT_GO_BUFFER_SIZE, ERROR, RESIZE,
    STDIN, STDOUT,
};

fn main() -> Result<(), wsframe::StreamError> {
    let protocol = ChannelProtocol::V5;
    let mask = Some([0x12, 0x34, 0x56, 0x78]);

    // kubectl -> apiserver: masked frames.
    let mut client = Vec::new();
    encode_channel_message(
        protocol,
        RESIZE,
        br#"{"Width":80,"Height":24}"#,
        mask,
        None,
        &mut client,
    );
    encode_channel_message(protocol, STDIN, b"ls\n", mask, None, &mut client);
    encode_ping(b"", mask, &mut client);
    encode_channel_message(protocol, STDIN, b"exit\n", mask, None, &mut client);
    encode_close_signal(STDIN, mask, &mut client);

    // apiserver -> kubectl: an empty first message, output, the exit status, close.
    let mut server = Vec::new();
    encode_channel_message(protocol, STDOUT, b"", None, None, &mut server);
    encode_channel_message(
        protocol,
        STDOUT,
        &vec![b'.'; 40_000],
        None,
        Some(CLIENT_GO_BUFFER_SIZE),
        &mut server,
    );
    encode_pong(b"", None, &mut server);
    encode_channel_message(
        protocol,
        ERROR,
        br#"{"metadata":{},"status":"Success"}"#,
        None,
        None,
        &mut server,
    );
    encode_close(Some(1000), "", None, &mut server);

    for (name, wire) in [("client", client), ("server", server)] {
        let mut tap = ChannelStream::new(protocol, Limits::default());
        // A message's data arrives in pieces (one or more per frame and read): join them.
        let mut message = Vec::new();
        for read in wire.chunks(1000) {
            tap.feed(read, &mut |event| match event {
                ChannelEvent::Data { bytes, .. } => message.extend_from_slice(bytes),
                ChannelEvent::MessageEnd { channel } => {
                    println!(
                        "{name}: channel {channel}: {} bytes {:?}",
                        message.len(),
                        preview(&message)
                    );
                    message.clear();
                }
                other => println!("{name}: {other:?}"),
            })?;
        }
    }
    Ok(())
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
    if bytes.len() > 40 {
        text + "..."
    } else {
        text
    }
}
