//! A small in-test session recorder speaking tsrecorder's protocols (v2 over h2c with acks, v1 with
//! `Expect: 100-continue`), reachable over real TCP or over an in-memory network whose dialer lets
//! tests run on Tokio's paused clock.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use recorder_client::{
    Caller, CastHeader, DialFuture, Dialer, KubernetesSession, RecorderIo, SessionType,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// How the fake recorder behaves.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Serve HTTP/1.1 only (no h2c): the v2 probe fails and the client falls back to v1.
    pub http1_only: bool,
    /// The status of `HEAD /v2/record`.
    pub probe_status: StatusCode,
    /// Send `{"ack": n}` after each body frame received.
    pub ack_each_frame: bool,
    /// Send an ack this often while idle (tsrecorder acks at least once a second).
    pub idle_ack: Option<Duration>,
    /// After this many bytes, send `{"error": ...}` and end the response.
    pub error_after: Option<(usize, String)>,
    /// After this many bytes, drop the connection (a recorder killed mid-upload).
    pub die_after: Option<usize>,
    /// Read the upload body only while this is true (a stalled recorder).
    pub reading: Option<watch::Receiver<bool>>,
    /// Answer `POST /v2/record` and `POST /record` with this status instead of taking the upload.
    pub refuse_upload: Option<StatusCode>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            http1_only: false,
            probe_status: StatusCode::OK,
            ack_each_frame: true,
            idle_ack: Some(Duration::from_secs(1)),
            error_after: None,
            die_after: None,
            reading: None,
            refuse_upload: None,
        }
    }
}

/// How an upload ended, seen from the recorder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The body ended cleanly.
    Complete,
    /// The body failed (reset, connection closed, aborted).
    Broken(String),
    /// The recorder itself ended it (error frame, dropped connection).
    ByRecorder,
}

/// What the recorder has received of one upload so far.
#[derive(Clone, Debug, Default)]
pub struct UploadState {
    pub data: Vec<u8>,
    pub end: Option<End>,
}

/// One upload as the recorder sees it.
pub struct ServerUpload {
    pub path: String,
    pub version: http::Version,
    pub state: watch::Receiver<UploadState>,
}

impl ServerUpload {
    /// Waits for the upload to end and returns what was received.
    pub async fn ended(&mut self) -> UploadState {
        self.state
            .wait_for(|s| s.end.is_some())
            .await
            .expect("upload state")
            .clone()
    }

    /// Waits until at least `n` bytes arrived.
    pub async fn received(&mut self, n: usize) -> UploadState {
        self.state
            .wait_for(|s| s.data.len() >= n || s.end.is_some())
            .await
            .expect("upload state")
            .clone()
    }
}

/// A fake recorder: serve connections to it and take its uploads.
#[derive(Clone)]
pub struct FakeRecorder {
    behaviour: Behaviour,
    uploads: mpsc::UnboundedSender<ServerUpload>,
}

impl FakeRecorder {
    pub fn new(behaviour: Behaviour) -> (Self, mpsc::UnboundedReceiver<ServerUpload>) {
        let (uploads, rx) = mpsc::unbounded_channel();
        (FakeRecorder { behaviour, uploads }, rx)
    }

    /// Serves one connection.
    pub async fn serve<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, io: I) {
        let behaviour = self.behaviour.clone();
        let (kill_tx, mut kill_rx) = mpsc::unbounded_channel::<()>();
        let svc = service_fn(move |req| {
            let this = self.clone();
            let kill = kill_tx.clone();
            async move { Ok::<_, Infallible>(this.handle(req, kill).await) }
        });
        let io = TokioIo::new(io);
        if behaviour.http1_only {
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
            tokio::select! {
                _ = conn => {}
                _ = kill_rx.recv() => {}
            }
        } else {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Small flow-control windows, so that a stalled recorder pushes back quickly.
            builder
                .http2()
                .initial_stream_window_size(16 * 1024)
                .initial_connection_window_size(16 * 1024);
            let conn = builder.serve_connection(io, svc);
            tokio::select! {
                _ = conn => {}
                _ = kill_rx.recv() => {}
            }
        }
    }

    /// Listens on 127.0.0.1 and serves every connection; returns the address.
    pub async fn listen(self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(self.clone().serve(stream));
            }
        });
        addr
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        kill: mpsc::UnboundedSender<()>,
    ) -> Response<http_body_util::Either<Full<Bytes>, Channel<Bytes, Infallible>>> {
        let path = req.uri().path().to_owned();
        let status = |s: StatusCode| {
            let mut r = Response::new(http_body_util::Either::Left(Full::new(Bytes::new())));
            *r.status_mut() = s;
            r
        };
        match (req.method().clone(), path.as_str()) {
            (Method::HEAD, "/v2/record") => status(self.behaviour.probe_status),
            (Method::POST, _) if self.behaviour.refuse_upload.is_some() => {
                status(self.behaviour.refuse_upload.unwrap_or(StatusCode::OK))
            }
            (Method::POST, "/v2/record") => {
                let (state_tx, state_rx) = watch::channel(UploadState::default());
                let _ = self.uploads.send(ServerUpload {
                    path,
                    version: req.version(),
                    state: state_rx,
                });
                let (mut acks, body) = Channel::<Bytes, Infallible>::new(16);
                let behaviour = self.behaviour.clone();
                tokio::spawn(async move {
                    let mut body = req.into_body();
                    let mut total = 0usize;
                    let mut idle = behaviour.idle_ack.map(tokio::time::interval);
                    let mut reading = behaviour.reading.clone();
                    loop {
                        let next_frame = async {
                            if let Some(reading) = reading.as_mut() {
                                let _ = reading.wait_for(|r| *r).await;
                            }
                            body.frame().await
                        };
                        let frame = tokio::select! {
                            frame = next_frame => frame,
                            () = tick(idle.as_mut()) => {
                                let _ = acks.send_data(ack(total)).await;
                                continue;
                            }
                        };
                        match frame {
                            None => {
                                state_tx.send_modify(|s| s.end = Some(End::Complete));
                                let _ = acks.send_data(ack(total)).await;
                                return; // dropping `acks` ends the response
                            }
                            Some(Err(e)) => {
                                state_tx.send_modify(|s| s.end = Some(End::Broken(e.to_string())));
                                return;
                            }
                            Some(Ok(frame)) => {
                                let Ok(data) = frame.into_data() else {
                                    continue;
                                };
                                total += data.len();
                                state_tx.send_modify(|s| s.data.extend_from_slice(&data));
                                if let Some(limit) = behaviour.die_after {
                                    if total >= limit {
                                        state_tx.send_modify(|s| s.end = Some(End::ByRecorder));
                                        let _ = kill.send(());
                                        return;
                                    }
                                }
                                if let Some((limit, message)) = &behaviour.error_after {
                                    if total >= *limit {
                                        let line = serde_json::json!({ "error": message });
                                        let _ =
                                            acks.send_data(Bytes::from(format!("{line}\n"))).await;
                                        state_tx.send_modify(|s| s.end = Some(End::ByRecorder));
                                        return;
                                    }
                                }
                                if behaviour.ack_each_frame {
                                    let _ = acks.send_data(ack(total)).await;
                                }
                            }
                        }
                    }
                });
                Response::new(http_body_util::Either::Right(body))
            }
            (Method::POST, "/record") => {
                let (state_tx, state_rx) = watch::channel(UploadState::default());
                let _ = self.uploads.send(ServerUpload {
                    path,
                    version: req.version(),
                    state: state_rx,
                });
                let mut body = req.into_body();
                loop {
                    match body.frame().await {
                        None => break,
                        Some(Err(e)) => {
                            state_tx.send_modify(|s| s.end = Some(End::Broken(e.to_string())));
                            return status(StatusCode::BAD_REQUEST);
                        }
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                state_tx.send_modify(|s| s.data.extend_from_slice(&data));
                            }
                        }
                    }
                }
                state_tx.send_modify(|s| s.end = Some(End::Complete));
                status(StatusCode::OK)
            }
            _ => status(StatusCode::NOT_FOUND),
        }
    }
}

async fn tick(idle: Option<&mut tokio::time::Interval>) {
    match idle {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn ack(total: usize) -> Bytes {
    Bytes::from(format!("{{\"ack\":{total}}}\n"))
}

/// What a raw v1 recorder saw.
#[derive(Clone, Debug)]
pub struct RawV1Report {
    pub head: String,
    /// Body bytes that arrived before the recorder sent `100 Continue`.
    pub early_body: Vec<u8>,
    pub body: Vec<u8>,
}

/// A v1 recorder written against the bytes, to see exactly when the client sends its body. Rejects
/// HTTP/2 by closing the connection. Reports each upload.
pub async fn serve_raw_v1(
    mut io: tokio::io::DuplexStream,
    reports: mpsc::UnboundedSender<RawV1Report>,
) {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        let mut chunk = [0u8; 4096];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    if head.starts_with("PRI * HTTP/2.0") {
        return; // no h2c here
    }
    let mut rest = buf[head_end..].to_vec();
    if rest.is_empty() {
        // Give the client every chance to send its body early: the paused clock only moves on when
        // every task is idle, so anything the client wanted to send is here by then.
        let mut chunk = [0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), io.read(&mut chunk)).await {
            rest.extend_from_slice(&chunk[..n]);
        }
    }
    let early_body = rest.clone();
    io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        .await
        .expect("write 100");
    // Decode the chunked body.
    let mut body = Vec::new();
    let mut data = rest;
    loop {
        let Some(line_end) = find(&data, b"\r\n") else {
            if !read_more(&mut io, &mut data).await {
                return;
            }
            continue;
        };
        let size_text = String::from_utf8_lossy(&data[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        let needed = line_end + 2 + size + 2;
        while data.len() < needed {
            if !read_more(&mut io, &mut data).await {
                return;
            }
        }
        body.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data.drain(..needed);
        if size == 0 {
            break;
        }
    }
    io.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .expect("write 200");
    let _ = reports.send(RawV1Report {
        head,
        early_body,
        body,
    });
    let _ = io.shutdown().await;
}

async fn read_more(io: &mut tokio::io::DuplexStream, data: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match io.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            data.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What is at an address of the in-memory network.
#[derive(Clone)]
pub enum Route {
    Recorder(FakeRecorder),
    RawV1(mpsc::UnboundedSender<RawV1Report>),
    Refuse,
    Hang,
}

/// An in-memory network: dialing an address connects to what is routed there.
#[derive(Clone, Default)]
pub struct MemNet {
    routes: Arc<Mutex<HashMap<SocketAddr, Route>>>,
    dials: Arc<Mutex<Vec<SocketAddr>>>,
}

impl MemNet {
    pub fn route(&self, addr: &str, route: Route) -> SocketAddr {
        let addr: SocketAddr = addr.parse().expect("address");
        self.routes.lock().expect("routes").insert(addr, route);
        addr
    }

    pub fn dials(&self) -> Vec<SocketAddr> {
        self.dials.lock().expect("dials").clone()
    }
}

impl Dialer for MemNet {
    fn dial(&self, addr: SocketAddr) -> DialFuture {
        self.dials.lock().expect("dials").push(addr);
        let route = self.routes.lock().expect("routes").get(&addr).cloned();
        Box::pin(async move {
            match route {
                None | Some(Route::Refuse) => {
                    Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
                }
                Some(Route::Hang) => std::future::pending().await,
                Some(Route::Recorder(recorder)) => {
                    let (client, server) = tokio::io::duplex(64 * 1024);
                    tokio::spawn(recorder.serve(server));
                    Ok(Box::new(client) as Box<dyn RecorderIo>)
                }
                Some(Route::RawV1(reports)) => {
                    let (client, server) = tokio::io::duplex(64 * 1024);
                    tokio::spawn(serve_raw_v1(server, reports));
                    Ok(Box::new(client) as Box<dyn RecorderIo>)
                }
            }
        })
    }
}

/// A header for tests.
pub fn header(session_type: SessionType) -> CastHeader {
    CastHeader::kubernetes(
        1_700_000_000,
        Caller::User {
            node: "laptop.example.ts.net.".into(),
            node_id: "nLaptop".into(),
            login_name: "alice@example.com".into(),
            user_id: 42,
        },
        "sh -c date",
        KubernetesSession {
            pod_name: "demo".into(),
            namespace: "default".into(),
            container: "app".into(),
            session_type,
        },
    )
}

/// A parsed recording: the header and the events `(time, code, data)`.
pub struct Cast {
    pub header: serde_json::Value,
    pub events: Vec<(f64, String, String)>,
}

impl Cast {
    pub fn parse(bytes: &[u8]) -> Cast {
        let text = std::str::from_utf8(bytes).expect("recording is UTF-8");
        assert!(
            text.ends_with('\n'),
            "recording ends with a newline: {text:?}"
        );
        let mut lines = text.lines();
        let header = serde_json::from_str(lines.next().expect("header line")).expect("header");
        let events = lines
            .map(|l| serde_json::from_str(l).expect("event line"))
            .collect();
        Cast { header, events }
    }

    /// The concatenated data of the events with this code.
    pub fn text(&self, code: &str) -> String {
        self.events
            .iter()
            .filter(|e| e.1 == code)
            .map(|e| e.2.as_str())
            .collect()
    }
}
