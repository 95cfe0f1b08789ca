//! Reads the start of a request body for its API event while keeping every byte for upstream.
//!
//! The event is sent before the request goes upstream, so the body is read first: all of it when
//! it fits the limit, otherwise the first `limit` bytes, which the event keeps (marked cut) and which
//! are then forwarded ahead of the rest of the body as it streams. Memory held per request is at most
//! the limit plus one frame.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;

/// A request body after its start was read.
#[derive(Debug)]
pub(crate) struct CapturedBody {
    /// What the event records: the whole body, or its first `limit` bytes.
    pub(crate) recorded: Bytes,
    /// Whether the body was longer than the limit.
    pub(crate) truncated: bool,
    /// The body to forward, byte for byte what the client sent.
    pub(crate) forward: Body,
}

/// Reads `body` up to `limit` bytes (and at most one frame more).
pub(crate) async fn capture(mut body: Body, limit: usize) -> Result<CapturedBody, axum::Error> {
    let mut read = BytesMut::new();
    while read.len() <= limit {
        let Some(frame) = body.frame().await else {
            let whole = read.freeze();
            return Ok(CapturedBody {
                recorded: whole.clone(),
                truncated: false,
                forward: Body::from(whole),
            });
        };
        // Trailers are not part of what an API request means; only data frames are kept.
        if let Ok(data) = frame?.into_data() {
            read.extend_from_slice(&data);
        }
    }
    let read = read.freeze();
    let recorded = read.slice(..limit);
    let head = futures_util::stream::once(std::future::ready(Ok::<_, axum::Error>(read)));
    Ok(CapturedBody {
        recorded,
        truncated: true,
        forward: Body::from_stream(head.chain(body.into_data_stream())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Body::from_stream(futures_util::stream::iter(frames))
    }

    async fn forwarded(body: Body) -> Vec<u8> {
        body.collect().await.expect("body").to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_recorded_whole() {
        let captured = capture(chunked(&[b"abc", b"def"]), 6).await.expect("read");
        assert_eq!(&captured.recorded[..], b"abcdef");
        assert!(!captured.truncated);
        assert_eq!(forwarded(captured.forward).await, b"abcdef");
    }

    #[tokio::test]
    async fn a_longer_body_is_cut_for_the_event_and_forwarded_whole() {
        let captured = capture(chunked(&[b"abc", b"def", b"ghi", b"jkl"]), 5)
            .await
            .expect("read");
        assert_eq!(&captured.recorded[..], b"abcde");
        assert!(captured.truncated);
        assert_eq!(forwarded(captured.forward).await, b"abcdefghijkl");
    }

    #[tokio::test]
    async fn an_empty_body_and_a_zero_limit() {
        let captured = capture(Body::empty(), 10).await.expect("read");
        assert!(captured.recorded.is_empty() && !captured.truncated);
        let captured = capture(chunked(&[b"x"]), 0).await.expect("read");
        assert!(captured.recorded.is_empty() && captured.truncated);
        assert_eq!(forwarded(captured.forward).await, b"x");
    }

    #[tokio::test]
    async fn a_broken_body_is_an_error() {
        let frames: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("client went away")),
        ];
        let body = Body::from_stream(futures_util::stream::iter(frames));
        assert!(capture(body, 100).await.is_err());
    }
}
