//! The HTTP client to the upstream API server: where to send a request and with which credentials.

use std::time::Duration;

use http::{header, HeaderMap, Method, Uri};
use impersonate::Mode;
use url::Url;

use super::config::{Credential, UpstreamConfig};
use super::request_headers::UpstreamHeaders;
use super::target::{self, UpstreamTarget};
use super::token::BearerToken;

/// The upstream API server.
#[derive(Debug)]
pub(crate) struct Upstream {
    client: reqwest::Client,
    /// Opens the client connections' own upstream connections ([`super::lane`]).
    lane: super::lane::LaneConnector,
    base: Url,
    /// The proxy's own bearer token; `None` in noauth mode or when the kubeconfig has none.
    token: Option<BearerToken>,
}

/// A request could not be carried to the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// Connecting or exchanging the request failed.
    #[error("upstream API server {url} unreachable: {reason}")]
    Unreachable {
        /// Where it went.
        url: String,
        /// reqwest's error chain, flattened.
        reason: String,
    },
    /// The proxy's own credential is unusable (e.g. the token file vanished).
    #[error("proxy credentials unusable: {0}")]
    Credential(#[from] super::token::TokenError),
    /// The upstream did not answer a connection upgrade in time.
    #[error("upstream API server {url} did not answer the upgrade within {timeout:?}")]
    HandshakeTimeout {
        /// Where it went.
        url: String,
        /// How long the proxy waited.
        timeout: Duration,
    },
}

/// A request path or query the proxy cannot send upstream byte for byte.
///
/// The proxy describes a request (in its API events, recordings and policy checks) by the path the
/// caller sent; the upstream must get exactly that path, or the two could name different
/// resources. `..` segments, backslashes and the like would be rewritten on the way (URL
/// normalisation) or read differently by servers along the path, so they are refused instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request path cannot be forwarded as sent: {reason}")]
pub(crate) struct UnforwardablePath {
    /// What is wrong with it.
    pub(crate) reason: String,
}

impl Upstream {
    /// Builds the client. In noauth mode no proxy credential (token or client certificate) is ever
    /// attached.
    pub(crate) fn new(
        config: &UpstreamConfig,
        mode: Mode,
        max_lane_connections: usize,
    ) -> anyhow::Result<Upstream> {
        let use_credentials = mode == Mode::Auth;
        let mut builder = reqwest::Client::builder()
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90));
        let tls = if config.server.scheme() == "https" {
            let tls = super::tls::client_config(&config.tls, use_credentials)?;
            builder = builder.use_preconfigured_tls(tls.clone());
            Some(std::sync::Arc::new(tls))
        } else {
            None
        };
        let token = match (&config.credential, use_credentials) {
            (Credential::Token(token), true) => Some(BearerToken::fixed(token)?),
            (Credential::TokenFile(path), true) => Some(BearerToken::file(path.clone())?),
            _ => None,
        };
        Ok(Upstream {
            client: builder.build()?,
            lane: super::lane::LaneConnector::new(&config.server, tls, max_lane_connections)?,
            base: config.server.clone(),
            token,
        })
    }

    /// The upstream URL for a request URI: the server's base path joined with the request's path and
    /// query, byte for byte (no re-encoding, so signed or escaped paths pass unchanged). A path or
    /// query that would not arrive byte for byte is refused: see [`UnforwardablePath`].
    pub(crate) fn url_for(&self, uri: &Uri) -> Result<Url, UnforwardablePath> {
        let path = uri.path();
        // `*` (asterisk form) or nothing (authority form): joined to a base path, it would name
        // another path than the one the request describes.
        if !path.starts_with('/') {
            return Err(UnforwardablePath {
                reason: "its target is not a path".into(),
            });
        }
        if let Some(reason) = requestinfo::path_ambiguity(path) {
            return Err(UnforwardablePath {
                reason: reason.to_string(),
            });
        }
        let mut url = self.base.clone();
        let base_path = self.base.path().trim_end_matches('/');
        let wanted = format!("{base_path}{path}");
        url.set_path(&wanted);
        url.set_query(uri.query());
        // The URL parser normalises what it is given (WHATWG URL: dot segments in any encoding,
        // `\` as `/`, percent-encoding of some bytes); whatever it changed would reach upstream
        // as a different request than the one the proxy checked and recorded.
        if url.path() != wanted {
            return Err(UnforwardablePath {
                reason: format!("it would reach the API server as {:?}", url.path()),
            });
        }
        if url.query() != uri.query() {
            return Err(UnforwardablePath {
                reason: "its query would reach the API server re-encoded".into(),
            });
        }
        Ok(url)
    }

    /// Where a request for `uri` goes upstream: the server's base path joined with the request's
    /// path and query, byte for byte. Accepts and refuses exactly what [`Upstream::url_for`] does;
    /// only paths and queries with bytes a URL parser might change go through the parser.
    pub(crate) fn target_for(&self, uri: &Uri) -> Result<UpstreamTarget, UnforwardablePath> {
        let path = uri.path();
        if let Some(reason) = requestinfo::path_ambiguity(path) {
            return Err(UnforwardablePath {
                reason: reason.to_string(),
            });
        }
        // Only an origin-form path (asterisk and authority forms have none) may skip the parser.
        let unparsed = path.starts_with('/')
            && target::path_passes_unparsed(path)
            && uri.query().is_none_or(target::query_passes_unparsed);
        if !unparsed {
            self.url_for(uri)?;
        }
        let base_path = self.base.path().trim_end_matches('/');
        UpstreamTarget::join(base_path, path, uri.query()).map_err(|error| UnforwardablePath {
            reason: error.to_string(),
        })
    }

    /// The URL of `target` on the server, for the pooled client.
    pub(crate) fn url_of(&self, target: &UpstreamTarget) -> Url {
        let mut url = self.base.clone();
        url.set_path(target.path());
        url.set_query(target.query());
        url
    }

    /// Sends a request upstream and returns the streaming response. `headers` are the caller's,
    /// already cleaned ([`UpstreamHeaders`]); `Host` is dropped and the proxy's credential added
    /// (auth mode) here, last.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        headers: UpstreamHeaders,
        body: reqwest::Body,
    ) -> Result<http::Response<reqwest::Body>, UpstreamError> {
        let headers = self.with_proxy_headers(headers)?;
        Ok(self.dispatch(method, url, headers, body).await?.into())
    }

    /// Whether `lane` may carry the next request ([`super::lane::UpstreamLane::reserve`]); if
    /// not, send it with [`Upstream::send`].
    pub(crate) fn reserve_lane(&self, lane: &super::lane::UpstreamLane) -> bool {
        lane.reserve(&self.lane)
    }

    /// [`Upstream::send`] on the client connection's own upstream connection ([`super::lane`]):
    /// the same headers (the caller's, cleaned, the proxy's credential last) plus `Host`.
    pub(crate) async fn send_in_lane(
        &self,
        lane: &super::lane::UpstreamLane,
        method: Method,
        target: UpstreamTarget,
        headers: UpstreamHeaders,
        body: axum::body::Body,
    ) -> Result<http::Response<hyper::body::Incoming>, UpstreamError> {
        let mut headers = self.with_proxy_headers(headers)?;
        headers.insert(header::HOST, self.lane.authority().clone());
        let unreachable = |reason: String| UpstreamError::Unreachable {
            url: format!(
                "{}{}",
                self.base.origin().ascii_serialization(),
                target.path()
            ),
            reason,
        };
        // Origin form, exactly the path and query `target_for` checked.
        let mut request = http::Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = Uri::from(target.origin_form().clone());
        *request.headers_mut() = headers;
        lane.send(&self.lane, request)
            .await
            .map_err(|error| unreachable(error_chain(&error)))
    }

    /// Sends a connection-upgrade request (exec/attach over SPDY or WebSocket) with the `Upgrade`
    /// being asked for and `Connection: Upgrade`, and no body: an upgrade request has none, and a
    /// body length the proxy forwarded without the body would leave the server waiting. The
    /// caller calls `upgrade()` on a 101 answer. The answer must come within `timeout`.
    pub(crate) async fn send_upgrade(
        &self,
        method: Method,
        url: Url,
        headers: UpstreamHeaders,
        upgrade: http::HeaderValue,
        timeout: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut headers = self.with_proxy_headers(headers)?;
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(
            header::CONNECTION,
            http::HeaderValue::from_static("Upgrade"),
        );
        headers.insert(header::UPGRADE, upgrade);
        let shown = redact(&url);
        tokio::time::timeout(
            timeout,
            self.dispatch(method, url, headers, reqwest::Body::from("")),
        )
        .await
        .map_err(|_| UpstreamError::HandshakeTimeout {
            url: shown,
            timeout,
        })?
    }

    /// The request headers as they go upstream: the caller's cleaned ones, without `Host` (the
    /// client sets the upstream's), with the proxy's own credential (auth mode) added last.
    pub(crate) fn with_proxy_headers(
        &self,
        headers: UpstreamHeaders,
    ) -> Result<HeaderMap, UpstreamError> {
        let mut headers = headers.into_inner();
        headers.remove(header::HOST);
        if let Some(token) = &self.token {
            headers.insert(header::AUTHORIZATION, token.header()?);
        }
        Ok(headers)
    }

    async fn dispatch(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: reqwest::Body,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.client
            .request(method, url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable {
                url: redact(&url),
                reason: error_chain(&e),
            })
    }

    /// Asks the upstream for `/version` with the proxy's credentials; any answer below 500 means it is
    /// up (an anonymous-disabled server answers 401 to noauth probes and is still up).
    pub(crate) async fn probe(&self) -> Result<(), String> {
        let uri = Uri::from_static("/version");
        let url = self.url_for(&uri).map_err(|e| e.to_string())?;
        let response = self
            .send(
                Method::GET,
                url,
                UpstreamHeaders::none(),
                reqwest::Body::from(""),
            )
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_server_error() {
            return Err(format!("upstream answered {}", response.status()));
        }
        Ok(())
    }
}

/// The URL without its query (which may carry tokens in some setups), for error messages.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// reqwest's and hyper's own Display are terse ("error sending request"); the cause is in the
/// source chain.
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
    use crate::upstream::config::UpstreamTls;

    fn upstream(server: &str) -> Upstream {
        let config = UpstreamConfig {
            server: Url::parse(server).expect("url"),
            tls: UpstreamTls::default(),
            credential: Credential::None,
            source: "test".into(),
        };
        Upstream::new(&config, Mode::Auth, 16).expect("upstream")
    }

    #[test]
    fn url_keeps_base_path_and_raw_query() {
        let up = upstream("http://127.0.0.1:8080/k8s/clusters/c-1/");
        let uri: Uri = "/api/v1/pods?labelSelector=app%3Dweb&watch=1"
            .parse()
            .expect("uri");
        assert_eq!(
            up.url_for(&uri).expect("forwardable").as_str(),
            "http://127.0.0.1:8080/k8s/clusters/c-1/api/v1/pods?labelSelector=app%3Dweb&watch=1"
        );
        let plain = upstream("http://127.0.0.1:8080");
        let uri: Uri = "/version".parse().expect("uri");
        assert_eq!(
            plain.url_for(&uri).expect("forwardable").as_str(),
            "http://127.0.0.1:8080/version"
        );
        let escaped: Uri = "/api/v1/namespaces/d%65fault/pods/a%2Fb"
            .parse()
            .expect("uri");
        assert_eq!(
            plain.url_for(&escaped).expect("forwardable").path(),
            "/api/v1/namespaces/d%65fault/pods/a%2Fb"
        );
    }

    #[test]
    fn paths_that_would_be_rewritten_are_refused() {
        let up = upstream("http://127.0.0.1:8080/base");
        for path in [
            "/api/v1/namespaces/default/pods/demo/../../../kube-system/secrets/db",
            "/api/v1/namespaces/default/pods/demo/%2e%2e/%2E%2e/x",
            "/api/v1/namespaces/default/pods/demo/.%2e/x",
            "/api/v1/namespaces/default/pods/./demo",
            "/api/v1/namespaces/default/pods/demo\\..\\secrets",
            "/api/v1/namespaces/default/pods/a%5c..%5csecrets",
            "/api/v1/namespaces/default/pods/..%2f..%2fsecrets",
        ] {
            let uri: Uri = match path.parse() {
                Ok(uri) => uri,
                // http refuses some of these itself: they never reach the proxy's handlers.
                Err(_) => continue,
            };
            assert!(up.url_for(&uri).is_err(), "{path} must be refused");
        }
    }

    /// Whatever the caller's `Connection` names, upstream gets the caller's impersonation and the
    /// proxy's token, each exactly once.
    #[test]
    fn proxy_headers_survive_any_connection_list() {
        let config = UpstreamConfig {
            server: Url::parse("http://127.0.0.1:8080").expect("url"),
            tls: UpstreamTls::default(),
            credential: Credential::Token("proxy-token".into()),
            source: "test".into(),
        };
        let up = Upstream::new(&config, Mode::Auth, 16).expect("upstream");
        let who = capmodel::Impersonation {
            user: "alice@example.com".into(),
            groups: vec!["eng".into()],
        };
        for connection in [
            "close, Impersonate-User, Impersonate-Group",
            "Upgrade, Authorization",
            "impersonate-group",
        ] {
            let mut caller = HeaderMap::new();
            caller.insert(header::CONNECTION, connection.parse().expect("value"));
            caller.insert(
                header::AUTHORIZATION,
                "Bearer caller".parse().expect("value"),
            );
            caller.insert("impersonate-user", "system:admin".parse().expect("value"));
            let cleaned = UpstreamHeaders::from_caller(caller, Mode::Auth, &who).expect("clean");
            let sent = up.with_proxy_headers(cleaned).expect("headers");
            let all = |name: &str| -> Vec<&str> {
                sent.get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect()
            };
            assert_eq!(
                all("impersonate-user"),
                ["alice@example.com"],
                "{connection}"
            );
            assert_eq!(all("impersonate-group"), ["eng"], "{connection}");
            assert_eq!(all("authorization"), ["Bearer proxy-token"], "{connection}");
            assert!(sent.get(header::CONNECTION).is_none());
        }
    }

    #[test]
    fn https_without_ca_is_refused() {
        let config = UpstreamConfig {
            server: Url::parse("https://10.0.0.1:6443").expect("url"),
            tls: UpstreamTls::default(),
            credential: Credential::None,
            source: "test".into(),
        };
        let err = Upstream::new(&config, Mode::Auth, 16).expect_err("no CA");
        assert!(err.to_string().contains("certificate-authority"), "{err}");
    }
}
