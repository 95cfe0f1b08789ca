//! One forwarded TCP connection: a complete error/data pair and the pod's port, as the kubelet's
//! `portForward` and containerd's `PortForward` run it.
//!
//! - The target is the host address the configuration maps the container port to. A port
//!   mapped nowhere is what a closed port in the pod's network namespace is to containerd: its
//!   dial error, wrapped by the kubelet, goes on the error stream
//!   (`error forwarding port 8080 to pod SANDBOX, uid : failed to execute portforward in network
//!   namespace "...": failed to connect to localhost:8080 inside namespace "SANDBOX", IPv4: dial
//!   tcp4 127.0.0.1:8080: connect: connection refused IPv6 dial tcp6 [::1]:8080: connect:
//!   connection refused `), then both streams are closed.
//! - Bytes flow both ways: the client's data stream to the target, the target's reads (at most
//!   32 KiB each) as data frames. When the client ends the data stream (FIN or RST_STREAM) the
//!   target's write half is closed; when the target ends its side the data stream gets a FIN.
//!   Once one direction has ended the other gets one more second to end (containerd's grace:
//!   "give a chance to terminate gracefully or timeout after 1s"), then the forward ends: FIN on
//!   the error stream (and on the data stream if not sent yet), the target connection closed.
//! - A copy that fails (not an end of stream) is reported on the error stream the same way.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use spdyframe::StreamId;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::connection::{OutSender, CHUNK};
use super::PodPorts;

/// How long the other direction may go on after one has ended (containerd's).
const GRACE: Duration = Duration::from_secs(1);
/// How long connecting to a target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwards one pair until both directions end (or the connection goes).
pub(super) async fn run(
    out: OutSender,
    error: StreamId,
    data: StreamId,
    mut from_client: mpsc::Receiver<Bytes>,
    port: u16,
    pod: Arc<PodPorts>,
) {
    let target = match connect(&pod, port).await {
        Ok(target) => target,
        Err(cause) => {
            report(&out, error, &pod, port, &cause).await;
            out.fin(error).await;
            out.fin(data).await;
            return;
        }
    };
    let (mut target_read, mut target_write) = target.into_split();
    let upstream = async {
        while let Some(bytes) = from_client.recv().await {
            if let Err(e) = target_write.write_all(&bytes).await {
                return Err(format!("writing to the port: {e}"));
            }
        }
        let _ = target_write.shutdown().await;
        Ok(())
    };
    let downstream = async {
        let mut buf = vec![0u8; CHUNK];
        let result = loop {
            match target_read.read(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if out.data(data, &buf[..n]).await.is_err() {
                        break Ok(());
                    }
                }
                Err(e) => break Err(format!("reading from the port: {e}")),
            }
        };
        out.fin(data).await;
        result
    };
    tokio::pin!(upstream, downstream);
    let (first, second) = tokio::select! {
        result = &mut upstream => {
            let other = tokio::time::timeout(GRACE, &mut downstream).await;
            (result, other.unwrap_or(Ok(())))
        }
        result = &mut downstream => {
            let other = tokio::time::timeout(GRACE, &mut upstream).await;
            (result, other.unwrap_or(Ok(())))
        }
    };
    if let Err(cause) = first.and(second) {
        report(&out, error, &pod, port, &cause).await;
    }
    out.fin(error).await;
    out.fin(data).await;
}

/// Connects to the host address of `port`, or says why not in containerd's words.
async fn connect(pod: &PodPorts, port: u16) -> Result<TcpStream, String> {
    let refused = |ipv4: String| {
        format!(
            "failed to execute portforward in network namespace {:?}: failed to connect to \
             localhost:{port} inside namespace {:?}, IPv4: {ipv4} IPv6 dial tcp6 [::1]:{port}: \
             connect: connection refused ",
            pod.netns, pod.sandbox_id
        )
    };
    let Some(addr) = pod.targets.get(&port) else {
        return Err(refused(format!(
            "dial tcp4 127.0.0.1:{port}: connect: connection refused"
        )));
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(refused(format!(
            "dial tcp4 127.0.0.1:{port}: connect: {}",
            go_errno_text(&e)
        ))),
        Err(_) => Err(refused(format!(
            "dial tcp4 127.0.0.1:{port}: connect: connection timed out"
        ))),
    }
}

/// Go's text for a connect error (`syscall.Errno.Error()`), which is the C library's without
/// Rust's ` (os error N)`, lowercased as Go's table has it.
fn go_errno_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = text.split(" (os error").next().unwrap_or_default();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The kubelet's message on the error stream (`portForward`: `error forwarding port %d to pod
/// %s, uid %v: %v`, with the sandbox id and an empty uid from the CRI streaming server).
async fn report(out: &OutSender, error: StreamId, pod: &PodPorts, port: u16, cause: &str) {
    let message = format!(
        "error forwarding port {port} to pod {}, uid : {cause}",
        pod.sandbox_id
    );
    tracing::debug!(%message, "port-forward failed");
    let _ = out.data(error, message.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_as_go_writes_it() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(go_errno_text(&e), "connection refused");
    }
}
