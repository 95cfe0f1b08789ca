//! Makes a request body `Sync` so it can be handed to the upstream client.
//!
//! reqwest requires `Sync` bodies; axum's body is `Send` only. Polling needs `&mut` access, which a
//! `Mutex` gives without locking (`get_mut`), so the wrapper costs nothing on the data path; only the
//! rarely called `&self` methods lock, and never contended.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

/// A `Send` body made `Sync`.
#[derive(Debug)]
pub(crate) struct SyncBody<B>(Mutex<B>);

impl<B> SyncBody<B> {
    /// Wraps a body.
    pub(crate) fn new(body: B) -> Self {
        SyncBody(Mutex::new(body))
    }
}

impl<B: Body + Unpin> Body for SyncBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        Pin::new(inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).size_hint()
    }
}
