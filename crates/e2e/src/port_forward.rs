//! What the port-forward tests share: a TCP echo server behind the stand-in apiserver, a stack
//! whose demo pod forwards its port 8080 there, kubectl's `port-forward`, and a round trip through
//! one forwarded connection.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use crate::kubectl::LineStream;
use crate::stack::{admin_caller, default_apiserver_config, RecordingGrant, Stack, StackOptions};

/// kubectl's two port-forward transports: name, and `KUBECTL_PORT_FORWARD_WEBSOCKETS`.
pub const TRANSPORTS: [(&str, &str); 2] = [("websocket", "true"), ("spdy", "false")];

/// A TCP server on the loopback interface that echoes every connection back to itself, on a
/// thread per connection; its port.
pub fn echo_server() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let Ok(mut reader) = stream.try_clone() else {
                    return;
                };
                let _ = std::io::copy(&mut reader, &mut stream);
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    Ok(port)
}

/// A stack for the fixture's admin caller with `grant`, whose demo pod's port 8080 is the echo
/// server on `echo_port`.
pub fn stack_forwarding_to(grant: RecordingGrant, echo_port: u16) -> anyhow::Result<Stack> {
    let mut options = StackOptions::for_caller(admin_caller()?);
    options.recording = Some(grant);
    options.apiserver_config = format!(
        "{}portForward: {{\"8080\": \"127.0.0.1:{echo_port}\"}}\n",
        default_apiserver_config(0)
    );
    Stack::start(options)
}

/// `kubectl port-forward pod/demo :8080` on the loopback interface over the stack's kubectl
/// settings, once kubectl says it is forwarding; the local port it chose.
pub fn start_forward(stack: &Stack) -> anyhow::Result<(LineStream, u16)> {
    let mut forward = stack.kubectl.spawn_lines(&[
        "port-forward",
        "--address",
        "127.0.0.1",
        "pod/demo",
        ":8080",
    ])?;
    let line = forward.wait_for("Forwarding from", Duration::from_secs(60))?;
    Ok((forward, forwarding_port(&line)?))
}

/// The local port in kubectl's `Forwarding from 127.0.0.1:43567 -> 8080`.
pub fn forwarding_port(line: &str) -> anyhow::Result<u16> {
    let address = line
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| anyhow::anyhow!("unexpected line {line:?}"))?;
    let port = address
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("unexpected address {address:?}"))?
        .1;
    Ok(port.parse()?)
}

/// Sends `payload` through a forwarded connection and reads the echo back, at the same time.
pub fn round_trip(local_port: u16, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", local_port))?;
    let mut writer = stream.try_clone()?;
    let payload = payload.to_vec();
    let expected = payload.len();
    let sending = std::thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(&payload)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut echoed = Vec::with_capacity(expected);
    stream.read_to_end(&mut echoed)?;
    sending
        .join()
        .map_err(|_| anyhow::anyhow!("the sending thread panicked"))??;
    Ok(echoed)
}
