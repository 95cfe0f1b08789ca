//! Helpers shared by the integration tests: fixtures, a server in a temporary directory, an h2c
//! client and a reader of NDJSON response frames.
#![allow(dead_code, unreachable_pub)]

pub mod s3;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use recorder_server::{CastEvent, RecorderServer, ServerOptions};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A streaming request body fed from a channel.
pub type ChannelBody =
    StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The text of a cast's `o` events, concatenated: what playback must print.
pub fn output_text(cast: &[u8]) -> String {
    cast.split(|&b| b == b'\n')
        .skip(1)
        .filter(|line| !line.is_empty())
        .filter_map(|line| CastEvent::parse(line).ok())
        .filter(|event| event.code == "o")
        .map(|event| event.data)
        .collect()
}

/// A viewer token of every namespace, in the token file [`options`] gives the server.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789";

/// A server in `dir` on a free loopback port, reading allowed with [`ADMIN_TOKEN`].
pub fn options(dir: &tempfile::TempDir) -> ServerOptions {
    let tokens = dir.path().join("viewer-tokens");
    std::fs::write(&tokens, format!("{ADMIN_TOKEN} admin *\n")).expect("token file");
    let mut options = ServerOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path());
    options.access.viewer_tokens = Some(tokens);
    options
}

/// A reqwest client sending [`ADMIN_TOKEN`].
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {ADMIN_TOKEN}")).expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

pub async fn start(dir: &tempfile::TempDir) -> RecorderServer {
    RecorderServer::start(options(dir))
        .await
        .expect("server starts")
}

/// An HTTP/2 prior-knowledge (h2c) connection, as Tailscale's recorder clients make.
pub async fn h2c(addr: SocketAddr) -> (SendRequest<ChannelBody>, tokio::task::JoinHandle<()>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, driver)
}

/// A request body whose chunks are sent through the returned channel; dropping the sender ends
/// the body.
pub fn channel_body() -> (mpsc::Sender<Bytes>, ChannelBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok(Frame::data(chunk)), rx))
    });
    (
        tx,
        StreamBody::new(Box::pin(stream) as futures_util::stream::BoxStream<'static, _>),
    )
}

/// An empty request body of the same type.
pub fn empty_body() -> ChannelBody {
    StreamBody::new(
        Box::pin(futures_util::stream::empty()) as futures_util::stream::BoxStream<'static, _>
    )
}

/// Reads a response body as NDJSON, one JSON value at a time.
pub struct NdjsonReader {
    body: Incoming,
    buffer: Vec<u8>,
}

impl NdjsonReader {
    pub fn new(body: Incoming) -> Self {
        Self {
            body,
            buffer: Vec::new(),
        }
    }

    /// The next line, or `None` when the body has ended.
    pub async fn next(&mut self) -> Option<serde_json::Value> {
        loop {
            if let Some(newline) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=newline).collect();
                return Some(serde_json::from_slice(&line).expect("an NDJSON line"));
            }
            match self.body.frame().await {
                None => {
                    assert!(self.buffer.is_empty(), "body ended mid-line");
                    return None;
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => panic!("reading acks: {error}"),
            }
        }
    }
}

/// The JSON body of a reqwest response (the workspace's reqwest has no `json` feature).
pub async fn json<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> T {
    let bytes = response.bytes().await.expect("body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("JSON body: {e}: {}", String::from_utf8_lossy(&bytes)))
}
