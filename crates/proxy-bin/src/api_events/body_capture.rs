//! Reads the start of a request body for its API event while keeping every byte for upstream.
//!
//! The event is sent before the request goes upstream, so the body is read first: all of it when
//! it fits, otherwise only its start, which the event keeps (marked cut) and which is then
//! forwarded ahead of the rest of the body as it streams. Reading stops at the first of:
//! - the end of the body;
//! - `limit` bytes (`--event-body-limit`);
//! - the shared [`BodyBudget`] running out: the bytes held by all captures at once are bounded,
//!   so many large uploads at a time cut their events earlier instead of growing memory;
//! - the deadline: a client trickling its body cannot hold the request (and the memory) for
//!   long; the event gets what has arrived.

use std::sync::Arc;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bytes that all body captures together may hold at once.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// Takes `bytes` from the budget if it has them.
    fn try_take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let bytes = u32::try_from(bytes).ok()?;
        Arc::clone(&self.0).try_acquire_many_owned(bytes).ok()
    }
}

/// A request body after its start was read.
#[derive(Debug)]
pub(crate) struct CapturedBody {
    /// What the event records: the whole body, or its start.
    pub(crate) recorded: Bytes,
    /// Whether `recorded` may be only the start of the body.
    pub(crate) truncated: bool,
    /// The body to forward, byte for byte what the client sent.
    pub(crate) forward: Body,
    /// The budget `recorded` holds; given back when dropped (after the event is sent).
    pub(crate) _budget: Option<OwnedSemaphorePermit>,
}

/// Reads `body` up to `limit` bytes, within `budget` and until `deadline`.
pub(crate) async fn capture(
    mut body: Body,
    limit: usize,
    budget: &BodyBudget,
    deadline: Instant,
) -> Result<CapturedBody, axum::Error> {
    let mut read = BytesMut::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    // How much of `read` the event may keep: stops growing once the budget says no.
    let mut recordable = 0;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(frame)) => frame?,
            Ok(None) => {
                let whole = read.freeze();
                return Ok(CapturedBody {
                    recorded: whole.slice(..recordable),
                    truncated: recordable < whole.len(),
                    forward: Body::from(whole),
                    _budget: held,
                });
            }
            // Too slow: the event gets what has arrived.
            Err(_) => break,
        };
        // Trailers are not part of what an API request means; only data frames are kept.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        read.extend_from_slice(&data);
        let wanted = read.len().min(limit) - recordable;
        let Some(permit) = budget.try_take(wanted) else {
            break;
        };
        match held.as_mut() {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        recordable += wanted;
        if read.len() > limit {
            break;
        }
    }
    let read = read.freeze();
    let recorded = read.slice(..recordable);
    let head = futures_util::stream::once(std::future::ready(Ok::<_, axum::Error>(read)));
    Ok(CapturedBody {
        recorded,
        truncated: true,
        forward: Body::from_stream(head.chain(body.into_data_stream())),
        _budget: held,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn chunked(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Body::from_stream(futures_util::stream::iter(frames))
    }

    async fn forwarded(body: Body) -> Vec<u8> {
        body.collect().await.expect("body").to_bytes().to_vec()
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn plenty() -> BodyBudget {
        BodyBudget::new(1 << 20)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_recorded_whole() {
        let captured = capture(chunked(&[b"abc", b"def"]), 6, &plenty(), later())
            .await
            .expect("read");
        assert_eq!(&captured.recorded[..], b"abcdef");
        assert!(!captured.truncated);
        assert_eq!(forwarded(captured.forward).await, b"abcdef");
    }

    #[tokio::test]
    async fn a_longer_body_is_cut_for_the_event_and_forwarded_whole() {
        let captured = capture(
            chunked(&[b"abc", b"def", b"ghi", b"jkl"]),
            5,
            &plenty(),
            later(),
        )
        .await
        .expect("read");
        assert_eq!(&captured.recorded[..], b"abcde");
        assert!(captured.truncated);
        assert_eq!(forwarded(captured.forward).await, b"abcdefghijkl");
    }

    #[tokio::test]
    async fn an_empty_body_and_a_zero_limit() {
        let captured = capture(Body::empty(), 10, &plenty(), later())
            .await
            .expect("read");
        assert!(captured.recorded.is_empty() && !captured.truncated);
        let captured = capture(chunked(&[b"x"]), 0, &plenty(), later())
            .await
            .expect("read");
        assert!(captured.recorded.is_empty() && captured.truncated);
        assert_eq!(forwarded(captured.forward).await, b"x");
    }

    #[tokio::test]
    async fn the_shared_budget_cuts_events_early_and_is_given_back() {
        let budget = BodyBudget::new(4);
        let first = capture(chunked(&[b"abc"]), 100, &budget, later())
            .await
            .expect("read");
        assert_eq!(&first.recorded[..], b"abc");
        // One byte of budget left while the first event is held: the second is cut.
        let second = capture(chunked(&[b"def", b"ghi"]), 100, &budget, later())
            .await
            .expect("read");
        assert!(second.truncated);
        assert!(second.recorded.is_empty(), "{:?}", second.recorded);
        assert_eq!(forwarded(second.forward).await, b"defghi");
        drop(first);
        let third = capture(chunked(&[b"jk"]), 100, &budget, later())
            .await
            .expect("read");
        assert_eq!((&third.recorded[..], third.truncated), (&b"jk"[..], false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_is_recorded_as_far_as_it_came_by_the_deadline() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let body = Body::from_stream(stream_of(receiver));
        sender
            .send(Ok(Bytes::from_static(b"early")))
            .await
            .expect("send");
        let deadline = Instant::now() + Duration::from_secs(10);
        let captured = capture(body, 100, &plenty(), deadline).await.expect("read");
        assert_eq!(
            (&captured.recorded[..], captured.truncated),
            (&b"early"[..], true)
        );
        sender
            .send(Ok(Bytes::from_static(b"-late")))
            .await
            .expect("send");
        drop(sender);
        assert_eq!(forwarded(captured.forward).await, b"early-late");
    }

    #[tokio::test]
    async fn a_broken_body_is_an_error() {
        let frames: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("client went away")),
        ];
        let body = Body::from_stream(futures_util::stream::iter(frames));
        assert!(capture(body, 100, &plenty(), later()).await.is_err());
    }

    /// A stream of what arrives on `rx`.
    fn stream_of<T: Send + 'static>(
        rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Send + 'static {
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
    }
}
