//! Protocol v2: `POST /v2/record` over h2c (HTTP/2 with prior knowledge), acks streamed back.

use std::net::SocketAddr;
use std::time::Duration;

use castfmt::protocol::V2_RECORD_PATH;
use castfmt::Protocol;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{Either, Empty};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::timeout;

use super::{monitor, new_body, uri, RequestBody, Upload};
use crate::config::RecorderConfig;
use crate::dial::RecorderIo;
use crate::error::AttemptError;

/// `HEAD /v2/record` over h2c on `io`: the connection, ready for the upload, when the recorder
/// answers 200 over HTTP/2; otherwise why not (then the caller tries v1).
pub(super) async fn probe(
    io: Box<dyn RecorderIo>,
    addr: SocketAddr,
    limit: Duration,
) -> Result<SendRequest<RequestBody>, String> {
    let exchange = async {
        let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%addr, %error, "recorder HTTP/2 connection ended");
            }
        });
        let request = Request::builder()
            .method(Method::HEAD)
            .uri(uri(addr, V2_RECORD_PATH))
            .body(Either::Left(Empty::new()))
            .map_err(|e| format!("building the probe: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HEAD /v2/record: {e}"))?;
        Ok::<_, String>((sender, response.status(), response.version()))
    };
    match timeout(limit, exchange).await {
        Err(_) => Err(format!("HEAD /v2/record: no answer in {limit:?}")),
        Ok(Err(reason)) => Err(reason),
        Ok(Ok((sender, StatusCode::OK, Version::HTTP_2))) => Ok(sender),
        Ok(Ok((_, status, version))) => Err(format!("HEAD /v2/record: {status} over {version:?}")),
    }
}

/// Starts the upload on a probed connection: the recorder answers 200 at once and then streams acks.
pub(super) async fn start(
    mut sender: SendRequest<RequestBody>,
    addr: SocketAddr,
    config: &RecorderConfig,
    content_type: Option<&'static str>,
) -> Result<Upload, AttemptError> {
    let (body, request_body) = new_body();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri(addr, V2_RECORD_PATH));
    if let Some(content_type) = content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    let request = request.body(request_body).map_err(AttemptError::Request)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(AttemptError::Http)?;
    if response.status() != StatusCode::OK {
        return Err(AttemptError::Status(response.status()));
    }
    // No other request goes on this connection. hyper keeps an HTTP/2 connection open while a
    // stream on it is, whether or not a request handle is left (its connection task runs until
    // h2 ends the connection, which it does once no handle and no stream is left), so the
    // handle is dropped now: that ends hyper's dispatch task and frees its request channel,
    // about 9 KiB per recording (issue 13, 1,000 idle recorded sessions). The upload's body
    // and the recorder's answer hold the stream, and with it the connection, to the end.
    drop(sender);
    let (counter, acked) = tokio::sync::watch::channel(0);
    let ack_window = config.ack_window;
    let monitor = tokio::spawn(async move {
        monitor::read_acks(response.into_body(), ack_window, &counter).await
    });
    Ok(Upload {
        addr,
        protocol: Protocol::V2,
        body,
        monitor,
        acked,
    })
}
