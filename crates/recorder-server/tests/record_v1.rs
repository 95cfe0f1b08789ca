//! `/record` over HTTP/1.1 with `Expect: 100-continue`, written by hand on a raw socket so the
//! order of bytes on the wire is what is checked; and recovery after a crash.

mod common;

use common::fixture;
use recorder_server::{Outcome, Protocol, RecorderServer, Store};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Reads one response head (up to the blank line); what follows stays unread.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read");
        assert_eq!(
            n,
            1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("ASCII head")
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

#[tokio::test]
async fn the_body_goes_only_after_100_continue_and_200_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let cast = fixture("session.cast");
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "POST /record HTTP/1.1\r\nHost: recorder\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        cast.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let interim = read_head(&mut stream).await;
    assert!(
        interim.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{interim:?}"
    );

    // The recording exists before a byte of it is sent.
    let listed = server.store().list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].outcome, Outcome::Recording);

    stream.write_all(&cast).await.expect("write body");
    let last = read_head(&mut stream).await;
    assert!(last.starts_with("HTTP/1.1 200 OK\r\n"), "{last:?}");

    let meta = server.store().get(&listed[0].id).await.expect("entry");
    assert_eq!(meta.outcome, Outcome::Complete);
    assert_eq!(meta.protocol, Protocol::V1);
    assert_eq!(meta.bytes, cast.len() as u64);
    assert_eq!(meta.exit_code, Some(3));
    assert_eq!(
        server.store().read_cast(&meta.id).await.expect("cast"),
        cast
    );
    server.shutdown().await;
}

#[tokio::test]
async fn chunked_uploads_as_go_sends_them_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let cast = fixture("tagged.cast");
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    stream
        .write_all(b"POST /record HTTP/1.1\r\nHost: recorder\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("write head");
    assert!(read_head(&mut stream)
        .await
        .starts_with("HTTP/1.1 100 Continue\r\n"));
    for piece in cast.chunks(50) {
        stream.write_all(&chunk(piece)).await.expect("chunk");
    }
    stream.write_all(b"0\r\n\r\n").await.expect("last chunk");
    assert!(read_head(&mut stream)
        .await
        .starts_with("HTTP/1.1 200 OK\r\n"));
    let meta = &server.store().list().await.expect("list")[0];
    assert_eq!(meta.outcome, Outcome::Complete);
    assert_eq!(
        meta.src_node_tags,
        vec!["tag:ci".to_owned(), "tag:k8s".to_owned()]
    );
    assert_eq!(meta.who(), "tag:ci,tag:k8s");
    assert_eq!(meta.session_type.as_deref(), Some("attach"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_busy_recorder_refuses_before_100_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = common::options(&dir);
    options.max_uploads = 1;
    let server = RecorderServer::start(options).await.expect("start");
    let expect = b"POST /record HTTP/1.1\r\nHost: recorder\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n";

    let mut first = TcpStream::connect(server.addr()).await.expect("connect");
    first.write_all(expect).await.expect("head");
    assert!(read_head(&mut first)
        .await
        .starts_with("HTTP/1.1 100 Continue\r\n"));

    let mut second = TcpStream::connect(server.addr()).await.expect("connect");
    second.write_all(expect).await.expect("head");
    let refused = read_head(&mut second).await;
    assert!(
        refused.starts_with("HTTP/1.1 503 "),
        "503 and no 100 first: {refused:?}"
    );

    first
        .write_all(&chunk(&fixture("session.cast")))
        .await
        .expect("chunk");
    first.write_all(b"0\r\n\r\n").await.expect("last chunk");
    assert!(read_head(&mut first)
        .await
        .starts_with("HTTP/1.1 200 OK\r\n"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_cut_off_midway_is_kept_and_marked_incomplete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::start(&dir).await;
    let cast = fixture("session.cast");
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "POST /record HTTP/1.1\r\nHost: recorder\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        cast.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    assert!(read_head(&mut stream)
        .await
        .starts_with("HTTP/1.1 100 Continue\r\n"));
    let cut = cast.len() - 30;
    stream
        .write_all(&cast[..cut])
        .await
        .expect("part of the body");
    drop(stream);

    // Shutdown waits for uploads to be stored; the cut-off is seen long before its grace ends.
    let store = server.store().clone();
    server.shutdown().await;
    let meta = &store.list().await.expect("list")[0];
    assert_eq!(meta.outcome, Outcome::Incomplete);
    assert!(
        meta.reason
            .as_deref()
            .unwrap_or("")
            .starts_with("upload cut off"),
        "{:?}",
        meta.reason
    );
    assert_eq!(meta.bytes, cut as u64);
    assert_eq!(meta.pod.as_deref(), Some("demo"));
    assert_eq!(store.read_cast(&meta.id).await.expect("cast"), &cast[..cut]);
}

#[tokio::test]
async fn a_restart_marks_what_a_crash_left_unfinished() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).await.expect("create");
    let cast = fixture("session.cast");
    let mut writer = store
        .create_recording(Protocol::V2)
        .await
        .expect("recording");
    let id = writer.id().to_owned();
    writer.write(&cast[..cast.len() - 40]).await.expect("write");
    writer.flush().await.expect("flush");
    drop(writer); // as if the process died here: no finish
    assert_eq!(
        store.get(&id).await.expect("entry").outcome,
        Outcome::Recording
    );

    let server = common::start(&dir).await;
    let meta = server.store().get(&id).await.expect("entry");
    assert_eq!(meta.outcome, Outcome::Incomplete);
    assert_eq!(
        meta.reason.as_deref(),
        Some("the recorder stopped before the upload ended")
    );
    assert_eq!(
        meta.bytes,
        (cast.len() - 40) as u64,
        "numbers read again from the cast"
    );
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    server.shutdown().await;
}
