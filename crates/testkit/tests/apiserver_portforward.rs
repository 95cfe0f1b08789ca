//! `kubectl port-forward` (the real kubectl 1.32) against the stand-in apiserver, over both
//! transports: SPDY tunnelled in WebSocket (kubectl's default) and plain SPDY
//! (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`). The pod's port is a real TCP listener on the host,
//! mapped in the configuration (`portForward`).
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::process::Stdio;

use support::{pattern, read_until, Kubectl, Transport, PATIENCE};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStderr};

/// Bytes each forwarded connection carries each way.
const VOLUME: usize = 1024 * 1024;

/// How kubectl talks to port-forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortForward {
    /// kubectl 1.32's default: SPDY inside WebSocket (`GET`).
    WebSocket,
    /// `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`: SPDY (`POST`).
    Spdy,
}

impl PortForward {
    const BOTH: [PortForward; 2] = [PortForward::WebSocket, PortForward::Spdy];

    fn env(self) -> &'static str {
        match self {
            PortForward::WebSocket => "true",
            PortForward::Spdy => "false",
        }
    }

    fn method(self) -> &'static str {
        match self {
            PortForward::WebSocket => "GET",
            PortForward::Spdy => "POST",
        }
    }
}

/// An echo server: every connection gets back what it sends, and is closed after the client's
/// end of stream.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    addr
}

/// The stand-in with pod `default/demo` whose port 8080 is `target`.
async fn start(target: SocketAddr) -> Kubectl {
    let config = format!(
        "pods:\n  - {{namespace: default, name: demo, portForward: {{\"8080\": \"{target}\"}}}}\n"
    );
    Kubectl::start(&config, false, "unused").await
}

/// A running `kubectl port-forward`, its local port read from its "Forwarding from" line.
struct Forwarding {
    child: Child,
    local_port: u16,
    stderr: ChildStderr,
}

async fn port_forward(kubectl: &Kubectl, transport: PortForward, remote: u16) -> Forwarding {
    let target = format!(":{remote}");
    let mut cmd = kubectl.command(
        // Exec's transport is not used by port-forward.
        Transport::WebSocket,
        &[
            "port-forward",
            "--address",
            "127.0.0.1",
            "pod/demo",
            &target,
        ],
    );
    cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", transport.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let prefix = b"Forwarding from 127.0.0.1:";
    let start = read_until(&mut stdout, &mut seen, 0, prefix).await;
    let end = start.and(
        read_until(
            &mut stdout,
            &mut seen,
            0,
            format!(" -> {remote}\n").as_bytes(),
        )
        .await,
    );
    let (Some(start), Some(end)) = (start, end) else {
        let mut err = Vec::new();
        let mut stderr = stderr;
        let _ = tokio::time::timeout(PATIENCE, stderr.read_to_end(&mut err)).await;
        panic!(
            "kubectl port-forward did not say where it listens; stdout: {}; stderr: {}",
            String::from_utf8_lossy(&seen),
            String::from_utf8_lossy(&err)
        );
    };
    let line = String::from_utf8_lossy(&seen[start..end]);
    let local_port = line
        .split(" -> ")
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    // kubectl writes "Handling connection for ..." for each connection: keep its stdout drained.
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink).await;
    });
    Forwarding {
        child,
        local_port,
        stderr,
    }
}

/// Sends `data` through the forward and reads back as much, checking it byte for byte.
async fn round_trip(local_port: u16, data: Vec<u8>) {
    let stream = TcpStream::connect(("127.0.0.1", local_port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.unwrap();
        write.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    tokio::time::timeout(PATIENCE, read.read_to_end(&mut back))
        .await
        .expect("the echo came back in time")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len(), "bytes echoed");
    assert!(back == data, "the echo differs from what was sent");
}

/// Asserts that every port-forward request used `transport` and was upgraded (no fallback).
fn assert_upgraded(kubectl: &Kubectl, transport: PortForward) {
    let requests: Vec<_> = kubectl
        .server
        .requests()
        .into_iter()
        .filter(|r| {
            r.path
                .split('?')
                .next()
                .unwrap_or_default()
                .ends_with("/portforward")
        })
        .collect();
    assert!(!requests.is_empty(), "no port-forward request");
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.status),
            (transport.method(), 101),
            "{r:?}"
        );
    }
}

async fn read_stderr_until<R: AsyncRead + Unpin>(stderr: &mut R, needle: &str) -> String {
    let mut seen = Vec::new();
    let found = read_until(stderr, &mut seen, 0, needle.as_bytes()).await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        found.is_some(),
        "kubectl never said {needle:?}; stderr: {text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_carry_a_megabyte_each_way() {
    let echo = echo_server().await;
    for transport in PortForward::BOTH {
        eprintln!("--- {transport:?}");
        let kubectl = start(echo).await;
        let mut forwarding = port_forward(&kubectl, transport, 8080).await;
        let mut first = pattern(VOLUME);
        first.reverse();
        let second = pattern(VOLUME + 7);
        tokio::join!(
            round_trip(forwarding.local_port, first),
            round_trip(forwarding.local_port, second),
        );
        // The forward stays usable after those connections ended.
        round_trip(forwarding.local_port, b"once more".to_vec()).await;
        assert_upgraded(&kubectl, transport);
        forwarding.child.start_kill().unwrap();
        let _ = forwarding.child.wait().await;
        let mut err = Vec::new();
        let _ = forwarding.stderr.read_to_end(&mut err).await;
        assert!(
            !String::from_utf8_lossy(&err).contains("error"),
            "kubectl reported an error: {}",
            String::from_utf8_lossy(&err)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unmapped_port_is_reported_as_the_kubelet_does() {
    let echo = echo_server().await;
    for transport in PortForward::BOTH {
        eprintln!("--- {transport:?}");
        let kubectl = start(echo).await;
        let mut forwarding = port_forward(&kubectl, transport, 8081).await;
        let mut stream = TcpStream::connect(("127.0.0.1", forwarding.local_port))
            .await
            .unwrap();
        // kubectl closes the local connection once the forward has failed.
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut sink)).await;
        assert!(sink.is_empty());
        // kubectl 1.32 gives up the whole forward after an error on a connection.
        let text = read_stderr_until(&mut forwarding.stderr, "error: lost connection to pod").await;
        let expected = format!(
            "an error occurred forwarding {} -> 8081: error forwarding port 8081 to pod ",
            forwarding.local_port
        );
        assert!(text.contains(&expected), "stderr: {text}");
        assert!(
            text.contains(", uid : failed to execute portforward"),
            "stderr: {text}"
        );
        assert!(
            text.contains("failed to connect to localhost:8081"),
            "stderr: {text}"
        );
        assert_upgraded(&kubectl, transport);
        let status = tokio::time::timeout(PATIENCE, forwarding.child.wait())
            .await
            .expect("kubectl exits after the error")
            .unwrap();
        assert!(!status.success(), "{status:?}");
    }
}

/// The wire protocol itself, with a raw client: stream validation, pairing, half-close in both
/// directions, and (tunnelled) SPDY bytes split across WebSocket messages anywhere.
mod wire {
    use std::collections::BTreeMap;

    use spdyframe::{
        encode_control, encode_data, ControlFrame, Event, FrameParser, HeaderBlock, HeaderDeflater,
        Limits, StreamId, FLAG_FIN,
    };
    use testkit::apiserver::{ApiServer, ApiServerConfig, PodConfig, ServeOptions};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use wsframe::{encode_frame, encode_ping, FrameHeader, Opcode};

    use super::support::raw;
    use super::PATIENCE;

    const PATH: &str = "/api/v1/namespaces/default/pods/demo/portforward";

    fn id(n: u32) -> StreamId {
        StreamId::new(n).unwrap()
    }

    fn syn(deflater: &mut HeaderDeflater, stream: u32, pairs: &[(&str, &str)], out: &mut Vec<u8>) {
        let mut headers = HeaderBlock::new();
        for (name, value) in pairs {
            headers.push(name, value);
        }
        let mut block = Vec::new();
        deflater.deflate(&headers, &mut block).unwrap();
        encode_control(
            &ControlFrame::SynStream {
                stream_id: id(stream),
                associated_stream_id: StreamId::ZERO,
                priority: 0,
                slot: 0,
                flags: 0,
                header_block: &block,
            },
            out,
        );
    }

    /// What the server sent, per stream: replies, resets (with status), data and FINs.
    #[derive(Debug, Default)]
    struct Seen {
        replies: Vec<u32>,
        resets: Vec<(u32, u32)>,
        data: BTreeMap<u32, Vec<u8>>,
        fins: Vec<u32>,
    }

    struct Reader {
        ws: Option<wsframe::FrameParser>,
        binary: bool,
        spdy: FrameParser,
        seen: Seen,
    }

    impl Reader {
        fn feed(&mut self, bytes: &[u8]) {
            let mut spdy = Vec::new();
            match &mut self.ws {
                None => spdy.extend_from_slice(bytes),
                Some(parser) => {
                    let mut chunk = bytes;
                    while let Some(event) = parser.next_event(&mut chunk).unwrap() {
                        match event {
                            wsframe::Event::FrameStart(header) => {
                                assert!(header.mask.is_none(), "server frames are not masked");
                                self.binary =
                                    matches!(header.opcode, Opcode::Binary | Opcode::Continuation);
                            }
                            wsframe::Event::Payload { bytes, .. } if self.binary => {
                                spdy.extend_from_slice(bytes)
                            }
                            _ => {}
                        }
                    }
                }
            }
            let mut chunk = &spdy[..];
            while let Some(event) = self.spdy.next_event(&mut chunk).unwrap() {
                match event {
                    Event::Control(ControlFrame::SynReply { stream_id, .. }) => {
                        self.seen.replies.push(stream_id.get())
                    }
                    Event::Control(ControlFrame::RstStream {
                        stream_id, status, ..
                    }) => self.seen.resets.push((stream_id.get(), status)),
                    Event::Control(_) => {}
                    Event::Data {
                        stream_id, bytes, ..
                    } => {
                        let ends = event.ends_stream();
                        self.seen
                            .data
                            .entry(stream_id.get())
                            .or_default()
                            .extend_from_slice(bytes);
                        if ends {
                            self.seen.fins.push(stream_id.get());
                        }
                    }
                }
            }
        }
    }

    /// Wraps `spdy` in masked binary messages of awkward sizes (empty ones, a fragmented one,
    /// a ping in between), as a WebSocket client may send them.
    fn tunnelled(spdy: &[u8]) -> Vec<u8> {
        let mask = Some([0x11, 0x22, 0x33, 0x44]);
        let message = |opcode, fin, payload: &[u8], out: &mut Vec<u8>| {
            let header = FrameHeader {
                fin,
                mask,
                ..FrameHeader::new(opcode, 0)
            };
            encode_frame(&header, payload, out);
        };
        let mut out = Vec::new();
        let mut rest = spdy;
        let mut size = 1;
        while !rest.is_empty() {
            let n = size.min(rest.len());
            if size % 3 == 0 {
                message(Opcode::Binary, false, &rest[..n / 2], &mut out);
                encode_ping(b"p", mask, &mut out);
                message(Opcode::Continuation, true, &rest[n / 2..n], &mut out);
            } else {
                message(Opcode::Binary, true, &rest[..n], &mut out);
            }
            message(Opcode::Binary, true, &[], &mut out);
            rest = &rest[n..];
            size = size % 17 + 1;
        }
        out
    }

    async fn half_close(tunnel: bool) {
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = ApiServerConfig {
            pods: vec![PodConfig::new("default", "demo")
                .with_port_forward(8080, target.local_addr().unwrap())],
            ..ApiServerConfig::default()
        };
        let server = ApiServer::start(config, ServeOptions::default())
            .await
            .unwrap();
        let answer = if tunnel {
            let headers = raw::websocket_headers(Some("SPDY/3.1+portforward.k8s.io"));
            raw::request(&server, "GET", PATH, &headers).await
        } else {
            let headers = raw::spdy_headers(&["portforward.k8s.io"]);
            raw::request(&server, "POST", PATH, &headers).await
        };
        assert_eq!(answer.status, 101);
        if tunnel {
            assert_eq!(
                answer.header("sec-websocket-protocol"),
                Some("SPDY/3.1+portforward.k8s.io")
            );
        } else {
            assert_eq!(
                answer.header("x-stream-protocol-version"),
                Some("portforward.k8s.io")
            );
        }
        let mut deflater = HeaderDeflater::new();
        let mut spdy = Vec::new();
        let pair = |t| [("streamtype", t), ("port", "8080"), ("requestid", "0")];
        syn(&mut deflater, 1, &pair("error"), &mut spdy);
        syn(&mut deflater, 3, &pair("data"), &mut spdy);
        // Refused before any reply: port 0, an unknown stream type.
        syn(
            &mut deflater,
            5,
            &[("streamtype", "data"), ("port", "0"), ("requestid", "1")],
            &mut spdy,
        );
        syn(
            &mut deflater,
            7,
            &[
                ("streamtype", "stdin"),
                ("port", "8080"),
                ("requestid", "1"),
            ],
            &mut spdy,
        );
        encode_data(id(3), 0, b"hello", &mut spdy).unwrap();
        encode_data(id(3), FLAG_FIN, &[], &mut spdy).unwrap();
        let wire = if tunnel { tunnelled(&spdy) } else { spdy };
        let mut stream = answer.stream;
        stream.write_all(&wire).await.unwrap();

        // The client's FIN closes the target's read side; the target answers and closes.
        let (mut accepted, _) = tokio::time::timeout(PATIENCE, target.accept())
            .await
            .unwrap()
            .unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(PATIENCE, accepted.read_to_end(&mut got))
            .await
            .expect("the target sees the end of the client's data")
            .unwrap();
        assert_eq!(got, b"hello");
        accepted.write_all(b"world").await.unwrap();
        drop(accepted);

        let mut reader = Reader {
            ws: tunnel.then(|| wsframe::FrameParser::new(wsframe::Limits::default())),
            binary: false,
            spdy: FrameParser::new(Limits::default()),
            seen: Seen::default(),
        };
        reader.feed(&answer.rest);
        let mut buf = vec![0u8; 4096];
        while !(reader.seen.fins.contains(&1) && reader.seen.fins.contains(&3)) {
            let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
                .await
                .expect("the server ends the pair in time")
                .unwrap();
            assert!(n > 0, "connection closed early: {:?}", reader.seen);
            reader.feed(&buf[..n]);
        }
        let seen = reader.seen;
        assert_eq!(seen.replies, [1, 3], "{seen:?}");
        assert_eq!(seen.resets, [(5, 5), (7, 5)], "RST_STREAM CANCEL: {seen:?}");
        assert_eq!(seen.data.get(&3).map(Vec::as_slice), Some(&b"world"[..]));
        assert_eq!(seen.data.get(&1).map(Vec::as_slice), Some(&b""[..]));
        assert_eq!(seen.fins, [3, 1], "data ends first, then the error stream");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn half_close_over_spdy() {
        half_close(false).await;
    }

    #[tokio::test]
    async fn half_close_through_the_websocket_tunnel() {
        half_close(true).await;
    }

    /// Authentication and impersonation as for exec: a caller allowed to impersonate acts as
    /// the impersonated user, another is refused before any upgrade.
    #[tokio::test]
    async fn impersonation_as_for_exec() {
        let server = ApiServer::start(ApiServerConfig::default(), ServeOptions::default())
            .await
            .unwrap();
        let mut headers = raw::spdy_headers(&["portforward.k8s.io"]);
        headers.push(("Authorization", "Bearer proxy-token"));
        headers.push(("Impersonate-User", "alice"));
        let answer = raw::request(&server, "POST", PATH, &headers).await;
        assert_eq!(answer.status, 101);
        let logged = server.requests().pop().unwrap();
        assert_eq!(logged.effective_user.unwrap().username, "alice");
        let mut headers = raw::spdy_headers(&["portforward.k8s.io"]);
        headers.push(("Authorization", "Bearer alice-token"));
        headers.push(("Impersonate-User", "bob"));
        let answer = raw::request(&server, "POST", PATH, &headers).await;
        assert_eq!(answer.status, 403);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn refusals_make_kubectl_fall_back() {
        let server = ApiServer::start(ApiServerConfig::default(), ServeOptions::default())
            .await
            .unwrap();
        let no_tunnel = raw::websocket_headers(Some("v5.channel.k8s.io"));
        let answer = raw::request(&server, "GET", PATH, &no_tunnel).await;
        assert_eq!(answer.status, 400);
        let other = raw::websocket_headers(Some("SPDY/3.1+v2.portforward.k8s.io"));
        let answer = raw::request(&server, "GET", PATH, &other).await;
        assert_eq!(answer.status, 403);
        assert_eq!(
            answer.header("x-accepted-stream-protocol-versions"),
            Some("portforward.k8s.io")
        );
        let answer = raw::request(
            &server,
            "POST",
            PATH,
            &raw::spdy_headers(&["v4.channel.k8s.io"]),
        )
        .await;
        assert_eq!(answer.status, 403);
        let missing = raw::request(
            &server,
            "POST",
            "/api/v1/namespaces/default/pods/nope/portforward",
            &raw::spdy_headers(&["portforward.k8s.io"]),
        )
        .await;
        assert_eq!(missing.status, 404);
        server.shutdown().await;
    }
}
