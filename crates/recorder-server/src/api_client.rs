//! A client for the read API of a running recorder (`kube-recorder ls --server` and friends).

use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::events::EventFilter;
use crate::recording_id::is_valid_id;
use crate::recording_meta::RecordingMeta;

/// Largest JSON answer read.
const MAX_JSON_BYTES: usize = 256 * 1024 * 1024;

/// A failed read API call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The server URL is not `http://HOST:PORT`.
    #[error("server URL {0:?}: expected http://HOST:PORT")]
    BadUrl(String),
    /// The ID cannot be a recording ID.
    #[error("{0:?} is not a recording ID")]
    InvalidId(String),
    /// The request could not be made.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The URL asked for.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{url}: {status}: {message}")]
    Status {
        /// The URL asked for.
        url: String,
        /// The status.
        status: StatusCode,
        /// The `error` of the answer, or its text.
        message: String,
    },
    /// The answer could not be read or parsed.
    #[error("{url}: bad answer: {message}")]
    BadAnswer {
        /// The URL asked for.
        url: String,
        /// What went wrong.
        message: String,
    },
}

/// A read API client over plain HTTP/1.1.
#[derive(Debug, Clone)]
pub struct RecorderApiClient {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    token: Option<Token>,
}

/// A viewer token, kept out of debug output.
#[derive(Clone)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// A cast being downloaded.
#[derive(Debug)]
pub struct CastDownload {
    body: Incoming,
    url: String,
}

impl CastDownload {
    /// The next piece of the cast; `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, ApiError>> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
                Err(error) => {
                    return Some(Err(ApiError::BadAnswer {
                        url: self.url.clone(),
                        message: error.to_string(),
                    }))
                }
            }
        }
    }
}

impl RecorderApiClient {
    /// A client for the recorder at `base_url` (`http://HOST:PORT`, a trailing `/` allowed).
    pub fn new(base_url: &str) -> Result<Self, ApiError> {
        let trimmed = base_url.trim_end_matches('/');
        let uri: Uri = trimmed
            .parse()
            .map_err(|_| ApiError::BadUrl(base_url.to_owned()))?;
        let plain_http = uri.scheme_str() == Some("http");
        let bare = uri
            .path_and_query()
            .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/");
        if !plain_http || uri.authority().is_none() || !bare {
            return Err(ApiError::BadUrl(base_url.to_owned()));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            base: trimmed.to_owned(),
            client,
            token: None,
        })
    }

    /// Sends `Authorization: Bearer TOKEN` with every request: a viewer token of the recorder's
    /// `--viewer-tokens` file.
    pub fn with_token(self, token: impl Into<String>) -> Self {
        Self {
            token: Some(Token(token.into())),
            ..self
        }
    }

    /// `GET /api/recordings`: every index entry, newest first.
    pub async fn recordings(&self) -> Result<Vec<RecordingMeta>, ApiError> {
        self.get_json("/api/recordings").await
    }

    /// `GET /api/recordings/{id}/meta`: one index entry.
    pub async fn recording(&self, id: &str) -> Result<RecordingMeta, ApiError> {
        check_id(id)?;
        self.get_json(&format!("/api/recordings/{id}/meta")).await
    }

    /// `GET /api/recordings/{id}`: the cast, streamed.
    pub async fn cast(&self, id: &str) -> Result<CastDownload, ApiError> {
        check_id(id)?;
        let (url, body) = self.get(&format!("/api/recordings/{id}")).await?;
        Ok(CastDownload { body, url })
    }

    /// `GET /api/events?...`: matching events, oldest first, each as stored.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<Box<RawValue>>, ApiError> {
        let mut query = Vec::new();
        let mut add = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                query.push(format!("{key}={}", percent_encode(&value)));
            }
        };
        add("user", filter.user.clone());
        add("verb", filter.verb.clone());
        add("namespace", filter.namespace.clone());
        add("since", filter.since.map(|s| s.to_string()));
        add("type", filter.event_type.clone());
        add("id", filter.id.clone());
        add("limit", filter.limit.map(|l| l.to_string()));
        let path = if query.is_empty() {
            "/api/events".to_owned()
        } else {
            format!("/api/events?{}", query.join("&"))
        };
        self.get_json(&path).await
    }

    async fn get(&self, path: &str) -> Result<(String, Incoming), ApiError> {
        let url = format!("{}{path}", self.base);
        let uri: Uri = url.parse().map_err(|_| ApiError::BadUrl(url.clone()))?;
        let mut request = http::Request::get(uri);
        if let Some(Token(token)) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Empty::new())
            .map_err(|_| ApiError::BadUrl(url.clone()))?;
        let response =
            self.client
                .request(request)
                .await
                .map_err(|error| ApiError::Unreachable {
                    url: url.clone(),
                    message: error_chain(&error),
                })?;
        let status = response.status();
        if status.is_success() {
            return Ok((url, response.into_body()));
        }
        let text = Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&text).into_owned());
        Err(ApiError::Status {
            url,
            status,
            message,
        })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let (url, body) = self.get(path).await?;
        let bytes = Limited::new(body, MAX_JSON_BYTES)
            .collect()
            .await
            .map_err(|error| ApiError::BadAnswer {
                url: url.clone(),
                message: error.to_string(),
            })?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|error| ApiError::BadAnswer {
            url,
            message: error.to_string(),
        })
    }
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::InvalidId(id.to_owned()))
    }
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_plain_http_base_urls() {
        assert!(RecorderApiClient::new("http://127.0.0.1:8080").is_ok());
        assert!(RecorderApiClient::new("http://recorder:80/").is_ok());
        for bad in ["https://x:1", "127.0.0.1:80", "http://x:1/api", "not a url"] {
            assert!(
                matches!(RecorderApiClient::new(bad), Err(ApiError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(percent_encode("alice@example.com"), "alice%40example.com");
        assert_eq!(percent_encode("tag:ci a&b"), "tag%3Aci%20a%26b");
    }
}
