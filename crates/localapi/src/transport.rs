//! One HTTP/1.1 `GET` over the LocalAPI Unix socket, on a connection of its own.

use std::path::Path;
use std::pin::pin;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::{LocalApiError, LOCAL_API_HOST, MAX_RESPONSE_BYTES};

/// The longest daemon error text kept in an error, in bytes.
const MAX_ERROR_MESSAGE: usize = 512;

/// A complete response: status and a body of at most [`MAX_RESPONSE_BYTES`].
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// Sends `GET <path_and_query>` to the daemon at `socket` and reads the whole response.
///
/// The connection is driven on the caller's task rather than spawned, so dropping the returned
/// future (e.g. on timeout) closes the socket at once.
pub(crate) async fn get(socket: &Path, path_and_query: &str) -> Result<Response, LocalApiError> {
    let stream = crate::retry::retry_transient(|| UnixStream::connect(socket))
        .await
        .map_err(|source| LocalApiError::Unreachable {
            socket: socket.to_path_buf(),
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| protocol(&e))?;
    // tailscaled rejects requests whose Host is not this name, and any with Origin or Referer
    // (ipn/localapi/localapi.go, Handler.ServeHTTP): never send those.
    let request = Request::get(path_and_query)
        .header(header::HOST, LOCAL_API_HOST)
        .body(Empty::<Bytes>::new())
        .map_err(|e| LocalApiError::Malformed(format!("cannot build request: {e}")))?;

    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| protocol(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<LengthLimitError>().is_some() {
                    LocalApiError::Malformed(format!(
                        "response body exceeds {MAX_RESPONSE_BYTES} bytes"
                    ))
                } else {
                    LocalApiError::Malformed(format!("reading response body: {e}"))
                }
            })?
            .to_bytes();
        Ok(Response { status, body })
    };
    let mut exchange = pin!(exchange);
    let mut conn = pin!(conn);
    tokio::select! {
        biased;
        result = &mut exchange => result,
        // The connection may finish (e.g. `Connection: close`) while the last body bytes still
        // wait in hyper's channel; once it has, the exchange either completes or fails promptly.
        _ = &mut conn => exchange.await,
    }
}

/// The daemon's error text from a non-200 body: the `error` field of a JSON error
/// (`{"error": "..."}`, newer tailscaled) or the `text/plain` body, trimmed and truncated.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct JsonError {
        error: String,
    }
    let text = match serde_json::from_slice::<JsonError>(body) {
        Ok(json) => json.error,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.trim();
    if text.len() <= MAX_ERROR_MESSAGE {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn protocol(e: &hyper::Error) -> LocalApiError {
    LocalApiError::Malformed(format!("HTTP exchange failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_trims_text_and_reads_json() {
        assert_eq!(
            error_message(b"no match for IP:port\n"),
            "no match for IP:port"
        );
        assert_eq!(
            error_message(br#"{"error":"cert access denied"}"#),
            "cert access denied"
        );
        assert_eq!(error_message(b"\xffoops"), "\u{fffd}oops");
    }

    #[test]
    fn error_message_truncates_on_a_char_boundary() {
        let long = "é".repeat(MAX_ERROR_MESSAGE);
        let message = error_message(long.as_bytes());
        assert!(message.ends_with('…'));
        assert!(message.len() <= MAX_ERROR_MESSAGE + '…'.len_utf8());
    }
}
