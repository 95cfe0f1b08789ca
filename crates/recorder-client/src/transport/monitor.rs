//! Watching the recorder's side of an upload: v2 ack frames, the v1 final status.

use std::future::Future;
use std::time::Duration;

use bytes::BytesMut;
use castfmt::AckLine;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{sleep, Instant};

use crate::error::UploadError;

/// Longest ack frame line accepted (a frame is a few dozen bytes; an error message a few hundred).
const MAX_FRAME_LINE: usize = 64 * 1024;

/// Reads ack frames until the response ends. Fails on an `error` frame, on a gap of `window`
/// without any frame, on a malformed frame and on a broken connection.
pub(super) async fn read_acks(
    mut body: Incoming,
    window: Duration,
    acked: &tokio::sync::watch::Sender<u64>,
) -> Result<(), UploadError> {
    let mut line = BytesMut::new();
    let deadline = sleep(window);
    tokio::pin!(deadline);
    loop {
        let frame = tokio::select! {
            _ = &mut deadline => return Err(UploadError::NoAck(window)),
            frame = body.frame() => frame,
        };
        let data = match frame {
            None => return Ok(()),
            Some(Err(e)) => return Err(UploadError::Connection(e.to_string())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers
            },
        };
        line.extend_from_slice(&data);
        while let Some(end) = line.iter().position(|&b| b == b'\n') {
            let text = line.split_to(end + 1);
            let text = text.strip_suffix(b"\n").unwrap_or(&text);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            // One NDJSON line as tsrecorder writes it (Go's `v2ResponseFrame`).
            match AckLine::parse(text).map_err(|e| UploadError::BadFrame(e.to_string()))? {
                AckLine::Error(message) => return Err(UploadError::Recorder(message)),
                AckLine::Ack(received) => {
                    acked.send_if_modified(|highest| {
                        let higher = received > *highest;
                        if higher {
                            *highest = received;
                        }
                        higher
                    });
                }
                // A kind of line this client does not know is no proof that data arrived.
                other => {
                    return Err(UploadError::BadFrame(format!("unexpected frame {other:?}")));
                }
            }
            deadline.as_mut().reset(Instant::now() + window);
        }
        if line.len() > MAX_FRAME_LINE {
            return Err(UploadError::BadFrame(format!(
                "a line longer than {MAX_FRAME_LINE} bytes"
            )));
        }
    }
}

/// Waits for the v1 recorder's final answer: `200` (its body read to the end) or a failure.
pub(super) async fn await_final_status(
    response: impl Future<Output = hyper::Result<Response<Incoming>>>,
) -> Result<(), UploadError> {
    let response = response
        .await
        .map_err(|e| UploadError::Connection(e.to_string()))?;
    if response.status() != StatusCode::OK {
        return Err(UploadError::Status(response.status()));
    }
    // Read the body to its end (discarding it) so the exchange completes.
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|e| UploadError::Connection(e.to_string()))?;
    }
    Ok(())
}
