//! Which SPDY stream the exec server writes output to, as the kubelet behind spdystream decides
//! it: the first NUL-separated `streamtype` value, the last stream of a role while the kubelet
//! waits for streams and none after, output still written on a stream the client reset, refused
//! header blocks and stream ids. A recording proxy's tap is only right if this is.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use spdyframe::{
    encode_control, encode_data, ControlFrame, Event, FrameParser, HeaderBlock, HeaderDeflater,
    StreamId, FLAG_FIN,
};
use support::raw::{request, server, spdy_headers};
use tokio::io::AsyncWriteExt as _;

/// The client's frames, through its one header compression context.
struct Client {
    out: Vec<u8>,
    deflater: HeaderDeflater,
}

impl Client {
    fn new() -> Self {
        Client {
            out: Vec::new(),
            deflater: HeaderDeflater::new(),
        }
    }

    fn open_with(&mut self, id: u32, pairs: &[(&str, &str)]) -> &mut Self {
        let headers: HeaderBlock = pairs.iter().copied().collect();
        let mut block = Vec::new();
        self.deflater.deflate(&headers, &mut block).unwrap();
        encode_control(
            &ControlFrame::SynStream {
                stream_id: StreamId::new(id).unwrap(),
                associated_stream_id: StreamId::ZERO,
                priority: 0,
                slot: 0,
                flags: 0,
                header_block: &block,
            },
            &mut self.out,
        );
        self
    }

    fn open(&mut self, id: u32, stream_type: &str) -> &mut Self {
        self.open_with(id, &[("streamtype", stream_type)])
    }

    fn data(&mut self, id: u32, flags: u8, bytes: &[u8]) -> &mut Self {
        encode_data(StreamId::new(id).unwrap(), flags, bytes, &mut self.out).unwrap();
        self
    }

    fn reset(&mut self, id: u32) -> &mut Self {
        encode_control(
            &ControlFrame::RstStream {
                stream_id: StreamId::new(id).unwrap(),
                status: 5,
                flags: 0,
            },
            &mut self.out,
        );
        self
    }
}

/// What the server sent, by frame kind.
#[derive(Debug, Default)]
struct FromServer {
    replies: Vec<u32>,
    resets: Vec<(u32, u32)>,
    data: BTreeMap<u32, Vec<u8>>,
    goaway: bool,
}

impl FromServer {
    fn parse(mut bytes: &[u8]) -> Self {
        let mut parser = FrameParser::default();
        let mut seen = FromServer::default();
        while let Some(event) = parser.next_event(&mut bytes).unwrap() {
            match event {
                Event::Control(ControlFrame::SynReply { stream_id, .. }) => {
                    seen.replies.push(stream_id.get())
                }
                Event::Control(ControlFrame::RstStream {
                    stream_id, status, ..
                }) => seen.resets.push((stream_id.get(), status)),
                Event::Control(ControlFrame::GoAway { .. }) => seen.goaway = true,
                Event::Control(_) => {}
                Event::Data {
                    stream_id, bytes, ..
                } => seen
                    .data
                    .entry(stream_id.get())
                    .or_default()
                    .extend_from_slice(bytes),
            }
        }
        seen
    }

    fn on(&self, id: u32) -> &[u8] {
        self.data.get(&id).map_or(&[][..], Vec::as_slice)
    }
}

/// Runs an exec with `query`, sends the client's frames at once, and reads all the server sends.
async fn exec(query: &str, client: &Client) -> FromServer {
    let server = server().await;
    let path = format!("/api/v1/namespaces/default/pods/demo/exec?{query}");
    let mut answer = request(
        &server,
        "POST",
        &path,
        &spdy_headers(&["v4.channel.k8s.io"]),
    )
    .await;
    assert_eq!(answer.status, 101);
    answer.stream.write_all(&client.out).await.unwrap();
    let (bytes, _stream) = answer.read_to_end().await;
    FromServer::parse(&bytes)
}

#[tokio::test]
async fn the_stream_type_is_the_first_nul_separated_value() {
    let mut client = Client::new();
    client.open(1, "error").open(3, "stdout\0");
    let seen = exec("command=echo&command=hi&stdout=true", &client).await;
    assert_eq!(seen.on(3), b"hi\n", "{seen:?}");
}

#[tokio::test]
async fn the_last_stream_of_a_role_wins_while_the_kubelet_waits() {
    // Three known streams are expected (error, stdout, stderr); two stdout streams count.
    let mut client = Client::new();
    client.open(1, "error").open(3, "stdout").open(5, "stdout");
    let seen = exec("command=echo&command=hi&stdout=true&stderr=true", &client).await;
    assert_eq!(seen.replies, [1, 3, 5]);
    assert_eq!(seen.on(5), b"hi\n", "{seen:?}");
    assert_eq!(seen.on(3), b"", "{seen:?}");
}

#[tokio::test]
async fn streams_opened_after_the_session_started_are_neither_answered_nor_used() {
    let mut client = Client::new();
    client
        .open(1, "error")
        .open(3, "stdin")
        .open(5, "stdout")
        .open(7, "stdout")
        .open(9, "stdin")
        .data(9, FLAG_FIN, b"")
        .data(3, 0, b"typed\n")
        .data(3, FLAG_FIN, b"");
    let seen = exec("command=cat&stdin=true&stdout=true", &client).await;
    assert_eq!(seen.replies, [1, 3, 5]);
    assert_eq!(seen.on(5), b"typed\n", "{seen:?}");
    assert_eq!(seen.on(7), b"");
}

#[tokio::test]
async fn output_is_still_written_on_a_stream_the_client_reset() {
    let mut client = Client::new();
    client
        .open(1, "error")
        .open(3, "stdin")
        .open(5, "stdout")
        .reset(5)
        .data(3, 0, b"after the reset\n")
        .data(3, FLAG_FIN, b"");
    let seen = exec("command=cat&stdin=true&stdout=true", &client).await;
    assert_eq!(seen.on(5), b"after the reset\n", "{seen:?}");
}

#[tokio::test]
async fn a_stream_id_that_does_not_grow_is_refused() {
    let mut client = Client::new();
    client
        .open(1, "error")
        .open(5, "stdin")
        .open(3, "stdout")
        .open(7, "stdout")
        .data(5, FLAG_FIN, b"");
    let seen = exec("command=echo&command=hi&stdin=true&stdout=true", &client).await;
    // PROTOCOL_ERROR, as spdystream's checkStreamFrame answers.
    assert_eq!(seen.resets, [(3, 1)]);
    assert_eq!(seen.replies, [1, 5, 7]);
    assert_eq!(seen.on(7), b"hi\n", "{seen:?}");
}

#[tokio::test]
async fn a_header_block_spdystream_refuses_ends_the_connection() {
    for pairs in [
        &[("StreamType", "stdout")][..],
        &[("streamtype", "stdout"), ("streamtype", "stderr")][..],
        &[("streamtype", "stdout"), ("host", "example")][..],
    ] {
        let mut client = Client::new();
        client.open(1, "error").open_with(3, pairs);
        let seen = exec("command=echo&command=hi&stdout=true", &client).await;
        assert_eq!(seen.replies, [1], "{pairs:?}");
        assert!(seen.goaway, "{pairs:?}");
        assert_eq!(seen.on(3), b"", "{pairs:?}");
    }
}
