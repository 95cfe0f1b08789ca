//! [`LocalApiClient`]: the three LocalAPI calls, each with its own timeout.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use crate::transport::{self, error_message};
use crate::{CertPair, LocalApiError, Status, DEFAULT_SOCKET};

/// The default per-call timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for one tailscaled's LocalAPI.
///
/// Cheap to clone; holds no connection (each call connects anew, so a restarted daemon is picked
/// up without any reconnect logic). A connection refused because the daemon's accept backlog is
/// full for a moment (`EAGAIN`, a burst of callers) is tried again with backoff, within the call's
/// timeout; other connection errors are returned at once.
#[derive(Clone, Debug)]
pub struct LocalApiClient {
    socket: PathBuf,
    timeout: Duration,
}

impl Default for LocalApiClient {
    /// A client for [`DEFAULT_SOCKET`].
    fn default() -> Self {
        Self::new(DEFAULT_SOCKET)
    }
}

impl LocalApiClient {
    /// A client for the daemon listening on `socket`, with a 10 s per-call timeout.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the timeout of each call: connecting, sending and reading the whole answer.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// The socket path this client connects to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Who is at `addr`: the tailnet node, its owner's profile and the capability grants that
    /// apply to it (Go: `Client.WhoIs`).
    ///
    /// Sends `GET /localapi/v0/whois?addr=<ip:port>`, the address query-escaped as Go's
    /// `url.QueryEscape` does (`[fd7a::1]:443` becomes `%5Bfd7a%3A%3A1%5D%3A443`).
    ///
    /// # Errors
    /// [`LocalApiError::UnknownPeer`] when no node has that address (404), and the other variants
    /// as for every call.
    pub async fn whois(&self, addr: SocketAddr) -> Result<capmodel::WhoIs, LocalApiError> {
        let query: String =
            url::form_urlencoded::byte_serialize(addr.to_string().as_bytes()).collect();
        let body = self
            .get(&format!("/localapi/v0/whois?addr={query}"))
            .await
            .map_err(|e| match e {
                LocalApiError::Http {
                    status: 404,
                    message,
                } => LocalApiError::UnknownPeer { addr, message },
                other => other,
            })?;
        capmodel::WhoIs::from_json(&body).map_err(|e| LocalApiError::Malformed(e.to_string()))
    }

    /// The TLS key and certificate chain for `domain`, one of [`Status::cert_domains`] (Go:
    /// `Client.CertPair`). tailscaled obtains or renews the certificate (ACME) if needed, which can
    /// take longer than other calls; give the client a suitable timeout.
    ///
    /// Sends `GET /localapi/v0/cert/<domain>?type=pair` and splits the body, the key PEM followed
    /// by the certificate chain PEM.
    ///
    /// # Errors
    /// [`LocalApiError::Http`] with the daemon's reason when it cannot issue a certificate for
    /// `domain` (tailscaled answers 500, e.g. `invalid domain "x"; must be one of [...]`), and
    /// [`LocalApiError::Malformed`] when the body is not one key plus a certificate chain.
    pub async fn cert_pair(&self, domain: &str) -> Result<CertPair, LocalApiError> {
        let body = self
            .get(&format!(
                "/localapi/v0/cert/{}?type=pair",
                escape_path_segment(domain)
            ))
            .await?;
        CertPair::from_pair_body(&body)
    }

    /// The daemon's status without its peers (Go: `Client.StatusWithoutPeers`).
    ///
    /// Sends `GET /localapi/v0/status?peers=false`.
    pub async fn status(&self) -> Result<Status, LocalApiError> {
        let body = self.get("/localapi/v0/status?peers=false").await?;
        serde_json::from_slice(&body)
            .map_err(|e| LocalApiError::Malformed(format!("status response: {e}")))
    }

    /// One call: the body of a 200 answer, or the error the status stands for.
    async fn get(&self, path_and_query: &str) -> Result<Bytes, LocalApiError> {
        let response = self
            .within_timeout(transport::get(&self.socket, path_and_query))
            .await?;
        match response.status {
            StatusCode::OK => Ok(response.body),
            StatusCode::FORBIDDEN => {
                Err(LocalApiError::AccessDenied(error_message(&response.body)))
            }
            status => Err(LocalApiError::Http {
                status: status.as_u16(),
                message: error_message(&response.body),
            }),
        }
    }

    async fn within_timeout<T>(
        &self,
        call: impl Future<Output = Result<T, LocalApiError>>,
    ) -> Result<T, LocalApiError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| LocalApiError::Timeout)?
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a domain can never change the
/// request path or add a query.
fn escape_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(
            escape_path_segment("proxy.tail1a2b3.ts.net"),
            "proxy.tail1a2b3.ts.net"
        );
        assert_eq!(
            escape_path_segment("a/../b?type=key#"),
            "a%2F..%2Fb%3Ftype%3Dkey%23"
        );
        assert_eq!(escape_path_segment("*.x"), "%2A.x");
    }

    #[test]
    fn builder_sets_socket_and_timeout() {
        let client = LocalApiClient::new("/tmp/ts.sock").with_timeout(Duration::from_millis(250));
        assert_eq!(client.socket(), Path::new("/tmp/ts.sock"));
        assert_eq!(client.timeout(), Duration::from_millis(250));
        assert_eq!(
            LocalApiClient::default().socket(),
            Path::new(DEFAULT_SOCKET)
        );
    }
}
