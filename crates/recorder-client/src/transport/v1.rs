//! Protocol v1: `POST /record` over HTTP/1.1 with `Expect: 100-continue`; the body is sent only
//! after the recorder's `100 Continue`, and its final `200` comes after the body ends.

use std::net::SocketAddr;

use castfmt::protocol::{V1_EXPECT, V1_RECORD_PATH};
use castfmt::Protocol;
use http::header::{EXPECT, HOST};
use http::{HeaderValue, Method, Request, StatusCode};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use super::{monitor, new_body, Upload};
use crate::config::RecorderConfig;
use crate::dial::RecorderIo;
use crate::error::AttemptError;

/// Sends the request head and waits for `100 Continue`.
pub(super) async fn start(
    io: Box<dyn RecorderIo>,
    addr: SocketAddr,
    _config: &RecorderConfig,
    content_type: Option<&'static str>,
) -> Result<Upload, AttemptError> {
    let (mut sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(AttemptError::Http)?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%addr, %error, "recorder HTTP/1.1 connection ended");
        }
    });
    let (body, request_body) = new_body();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(V1_RECORD_PATH)
        .header(HOST, addr.to_string())
        .header(EXPECT, HeaderValue::from_static(V1_EXPECT));
    if let Some(content_type) = content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    let mut request = request.body(request_body).map_err(AttemptError::Request)?;
    let (continued_tx, mut continued) = watch::channel(false);
    hyper::ext::on_informational(&mut request, move |response| {
        if response.status() == StatusCode::CONTINUE {
            continued_tx.send_replace(true);
        }
    });
    let mut response = Box::pin(sender.send_request(request));
    tokio::select! {
        biased;
        answer = &mut response => Err(match answer {
            Ok(response) => AttemptError::NoContinue(response.status()),
            Err(e) => AttemptError::Http(e),
        }),
        // Only whether the 100 came is kept: the watch guard must not live across an await (the
        // upload future has to be Send).
        got = async { continued.wait_for(|continued| *continued).await.is_ok() } => match got {
            true => {
                let monitor = tokio::spawn(async move {
                    // The request handle keeps the connection open for as long as the upload runs.
                    let _connection = sender;
                    monitor::await_final_status(response).await
                });
                Ok(Upload {
                    addr,
                    protocol: Protocol::V1,
                    body,
                    monitor,
                    acked: tokio::sync::watch::channel(0).1,
                })
            }
            // The callback was dropped with the request: the answer settles the attempt.
            false => Err(match response.await {
                Ok(response) => AttemptError::NoContinue(response.status()),
                Err(e) => AttemptError::Http(e),
            }),
        },
    }
}
