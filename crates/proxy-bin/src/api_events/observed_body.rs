//! A response body that reports, once, how it ended: how many bytes reached the client and whether
//! it was cut. Used for the response event that follows a request event.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// Called once with the bytes sent and, when the body did not end normally, why.
pub(crate) type OnEnd = Box<dyn FnOnce(u64, Option<String>) + Send>;

pin_project! {
    /// Passes `inner` through, counting data bytes; calls `on_end` at the end of the body, on its
    /// error, or when it is dropped unfinished (the client went away, or a watch was stopped).
    pub(crate) struct ObservedBody<B: Body> {
        #[pin]
        inner: B,
        bytes: u64,
        on_end: Option<OnEnd>,
    }

    impl<B: Body> PinnedDrop for ObservedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(on_end) = this.on_end.take() {
                // hyper drops a body without polling it to its end once it says it has ended
                // (a known length fully sent, or nothing to send): that is a complete response.
                let error = (!this.inner.is_end_stream())
                    .then(|| "the client stopped reading before the response ended".to_owned());
                on_end(*this.bytes, error);
            }
        }
    }
}

impl<B: Body> ObservedBody<B> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: B, on_end: OnEnd) -> Self {
        ObservedBody {
            inner,
            bytes: 0,
            on_end: Some(on_end),
        }
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = ready!(inner.as_mut().poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += bytes::Buf::remaining(data) as u64;
                }
                // The last frame of a body of known length: hyper will not poll again.
                if inner.is_end_stream() {
                    if let Some(on_end) = this.on_end.take() {
                        on_end(*this.bytes, None);
                    }
                }
            }
            Some(Err(error)) => {
                if let Some(on_end) = this.on_end.take() {
                    on_end(
                        *this.bytes,
                        Some(format!("the response broke off: {error}")),
                    );
                }
            }
            None => {
                if let Some(on_end) = this.on_end.take() {
                    on_end(*this.bytes, None);
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body as AxumBody;
    use bytes::Bytes;
    use http_body_util::BodyExt as _;

    use super::*;

    type Ends = Arc<Mutex<Vec<(u64, Option<String>)>>>;

    fn observed(body: AxumBody) -> (ObservedBody<AxumBody>, Ends) {
        let ends: Ends = Arc::default();
        let sink = Arc::clone(&ends);
        let body = ObservedBody::new(
            body,
            Box::new(move |bytes, error| {
                sink.lock().expect("lock").push((bytes, error));
            }),
        );
        (body, ends)
    }

    #[tokio::test]
    async fn a_finished_body_reports_its_bytes_once() {
        let frames: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"de")),
        ];
        let (body, ends) = observed(AxumBody::from_stream(futures_util::stream::iter(frames)));
        let collected = body.collect().await.expect("body").to_bytes();
        assert_eq!(&collected[..], b"abcde");
        assert_eq!(*ends.lock().expect("lock"), [(5, None)]);
    }

    #[tokio::test]
    async fn a_body_of_known_length_is_complete_after_its_last_frame() {
        // What hyper's server does: poll until `is_end_stream`, then drop without polling on.
        let (mut body, ends) = observed(AxumBody::from("abc"));
        let frame = body.frame().await.expect("frame").expect("ok");
        assert_eq!(frame.into_data().expect("data"), Bytes::from_static(b"abc"));
        assert!(body.is_end_stream());
        drop(body);
        assert_eq!(*ends.lock().expect("lock"), [(3, None)]);
    }

    #[tokio::test]
    async fn an_empty_body_dropped_unpolled_is_complete() {
        let (body, ends) = observed(AxumBody::empty());
        assert!(body.is_end_stream());
        drop(body);
        assert_eq!(*ends.lock().expect("lock"), [(0, None)]);
    }

    #[tokio::test]
    async fn a_dropped_body_reports_that_it_was_cut() {
        let frames: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from_static(b"abc"))];
        let (mut body, ends) = observed(AxumBody::from_stream(futures_util::stream::iter(frames)));
        let first = body.frame().await.expect("frame").expect("ok");
        assert_eq!(first.into_data().expect("data"), Bytes::from_static(b"abc"));
        drop(body);
        let ends = ends.lock().expect("lock");
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].0, 3);
        assert!(ends[0].1.is_some());
    }

    #[tokio::test]
    async fn a_broken_body_reports_the_error() {
        let frames: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("upstream reset")),
        ];
        let (body, ends) = observed(AxumBody::from_stream(futures_util::stream::iter(frames)));
        assert!(body.collect().await.is_err());
        let ends = ends.lock().expect("lock");
        assert_eq!(ends.len(), 1);
        assert!(ends[0]
            .1
            .as_deref()
            .is_some_and(|e| e.contains("upstream reset")));
    }
}
