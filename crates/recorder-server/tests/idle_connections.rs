//! Connections that carry no request give their slot back: one stalled inside the HTTP/2
//! preface, and an HTTP/2 connection without streams whose client answers the keep-alive pings.
//! A request in flight keeps its connection however long it is quiet (an upload of an idle
//! session). Paused time: the limits are the default 30 s, and the tests wait for none of it.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{channel_body, fixture, h2c, NdjsonReader};
use http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use recorder_server::{Outcome, RecorderServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The default header read timeout, which is also how long a connection may carry no request.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Longer than any limit the server has for a quiet connection.
const LONG: Duration = Duration::from_secs(600);

/// Reads until the server closes the connection (or resets it); `None` if it did not within
/// [`LONG`].
async fn closed_after(stream: &mut TcpStream) -> Option<Duration> {
    let start = Instant::now();
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(LONG, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()?;
    Some(start.elapsed())
}

/// A server with a single connection slot.
async fn one_slot_server(dir: &tempfile::TempDir) -> RecorderServer {
    let mut options = common::options(dir);
    options.max_connections = 1;
    RecorderServer::start(options).await.expect("server")
}

/// A client that has asked `GET /healthz`: with every slot taken, it waits in the listen queue
/// until one is given back.
async fn waiting_for_a_slot(server: &RecorderServer) -> TcpStream {
    let mut next = TcpStream::connect(server.addr()).await.expect("connect");
    next.write_all(b"GET /healthz HTTP/1.1\r\nHost: recorder\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    next
}

/// Reads the whole answer the server gives on `stream` and then closes; it must within [`LONG`].
async fn whole_answer(stream: &mut TcpStream, what: &str) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(LONG, stream.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer"))
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Waits for the server to end the connection that `driver` drives, which it must do within
/// [`LONG`] of `start` and not before the idle limit.
async fn assert_closed_after_the_limit(driver: tokio::task::JoinHandle<()>, start: Instant) {
    tokio::time::timeout(LONG, driver)
        .await
        .expect("the server ends the connection")
        .expect("driver");
    let closed = start.elapsed();
    assert!(closed >= IDLE_LIMIT, "closed after {closed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_client_stalled_inside_the_http2_preface_loses_its_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = one_slot_server(&dir).await;

    // `P` could begin the HTTP/2 preface: the server cannot tell the protocol yet.
    let mut stalled = TcpStream::connect(server.addr()).await.expect("connect");
    stalled.write_all(b"P").await.expect("write");
    let mut next = waiting_for_a_slot(&server).await;

    let closed = closed_after(&mut stalled)
        .await
        .expect("the stalled connection is closed");
    assert!(closed >= IDLE_LIMIT, "closed after {closed:?}");
    let answer = whole_answer(&mut next, "the next connection").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_http2_connection_without_streams_is_closed_once_idle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let start = Instant::now();
    // hyper's client answers the server's keep-alive pings by itself.
    let (_sender, driver) = h2c(server.addr()).await;
    assert_closed_after_the_limit(driver, start).await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_takes_its_answer_loses_its_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let start = Instant::now();
    // A receive window of 0: the server may send the answer's head, never its body.
    let stream = TcpStream::connect(server.addr()).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2c handshake");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::get(format!("http://{}/api/recordings", server.addr()))
        .body(common::empty_body())
        .expect("request");
    let response = sender.send_request(request).await.expect("response head");
    assert_closed_after_the_limit(driver, start).await;
    drop(response);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_upload_quiet_for_longer_than_the_limit_keeps_its_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let cast = fixture("session.cast");
    let (mut sender, _driver) = h2c(server.addr()).await;
    let (chunks, body) = channel_body();
    let request = Request::post(format!("http://{}/v2/record", server.addr()))
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let mut acks = NdjsonReader::new(response.into_body());
    let (first, rest) = cast.split_at(300);
    chunks
        .send(Bytes::copy_from_slice(first))
        .await
        .expect("send");
    // Quiet for ten minutes, as an idle terminal is; the recorder acks every second meanwhile.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_secs(600) {
        acks.next().await.expect("an ack while quiet");
    }
    chunks
        .send(Bytes::copy_from_slice(rest))
        .await
        .expect("send");
    drop(chunks);
    while acks.next().await.is_some() {}

    let list = server.store().list().await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].outcome, Outcome::Complete);
    assert_eq!(
        server.store().read_cast(&list[0].id).await.expect("cast"),
        cast
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_login_body_that_never_ends_is_answered_and_its_slot_given_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = one_slot_server(&dir).await;

    // Announces 100 bytes and sends 10: the request stays in flight while the body is awaited.
    let mut slow = TcpStream::connect(server.addr()).await.expect("connect");
    slow.write_all(
        b"POST /ui/login HTTP/1.1\r\nHost: recorder\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"token\":",
    )
    .await
    .expect("write");
    let mut next = waiting_for_a_slot(&server).await;

    let answer = whole_answer(&mut slow, "the slow login").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let answer = whole_answer(&mut next, "the next connection").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.shutdown().await;
}
