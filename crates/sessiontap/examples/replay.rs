//! Plays a scripted `kubectl exec -it` session through a tap, in every protocol, and prints what
//! the tap reports.
//!
//! `cargo run -p sessiontap --example replay`

use sessiontap::script::{EncodeOptions, ScriptedSession, Step};
use sessiontap::{
    ChannelProtocol, Protocol, RemoteCommandVersion, SessionEvent, SessionParams, SessionTap,
    TapLimits,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let params = SessionParams::from_query(
        "command=sh&command=-c&command=read+x%3B+echo+%24x%3B+exit+3&stdin=true&stdout=true&tty=true",
    )?;
    let steps = vec![
        Step::Resize { cols: 81, rows: 25 },
        Step::Resize { cols: 80, rows: 24 },
        Step::Stdin(b"hello\r".to_vec()),
        Step::Stdout(b"hello\r\nhello\r\n".to_vec()),
        Step::Exit(3),
    ];
    let protocols = RemoteCommandVersion::ALL
        .into_iter()
        .map(|version| Protocol::Spdy { version })
        .chain(ChannelProtocol::ALL.into_iter().map(Protocol::WebSocket));
    for protocol in protocols {
        let session = ScriptedSession {
            protocol,
            params: params.clone(),
            steps: steps.clone(),
        };
        let wire = session.encode(&EncodeOptions::default());
        println!(
            "{protocol:?}: {} bytes from the client, {} from the server",
            wire.client_to_server.len(),
            wire.server_to_client.len()
        );
        let mut tap = SessionTap::new(protocol, TapLimits::default());
        let mut print = |event: SessionEvent<'_>| match event {
            SessionEvent::Output { stream, bytes } => {
                println!("  {stream:?} {:?}", String::from_utf8_lossy(bytes));
            }
            SessionEvent::Input { bytes } => {
                println!("  stdin {:?}", String::from_utf8_lossy(bytes))
            }
            SessionEvent::Resize { cols, rows } => println!("  resize {cols}x{rows}"),
            SessionEvent::Exit { status } => println!("  exit {status:?}"),
        };
        // A proxy reads in pieces; any split works.
        for chunk in wire.client_to_server.chunks(16) {
            tap.client_bytes(chunk, &mut print)?;
        }
        for chunk in wire.server_to_client.chunks(16) {
            tap.server_bytes(chunk, &mut print)?;
        }
        tap.finish(&mut print);
    }
    Ok(())
}
