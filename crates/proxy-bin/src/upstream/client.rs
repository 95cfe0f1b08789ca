//! The HTTP client to the upstream API server: where to send a request and with which credentials.

use std::error::Error as _;
use std::time::Duration;

use http::{header, HeaderMap, Method, Uri};
use impersonate::Mode;
use url::Url;

use super::config::{Credential, UpstreamConfig};
use super::token::BearerToken;
use crate::hop_by_hop::remove_hop_by_hop;

/// The upstream API server.
#[derive(Debug)]
pub(crate) struct Upstream {
    client: reqwest::Client,
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
}

impl Upstream {
    /// Builds the client. In noauth mode no proxy credential (token or client certificate) is ever
    /// attached.
    pub(crate) fn new(config: &UpstreamConfig, mode: Mode) -> anyhow::Result<Upstream> {
        let use_credentials = mode == Mode::Auth;
        let mut builder = reqwest::Client::builder()
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .tcp_keepalive(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90));
        if config.server.scheme() == "https" {
            builder = builder
                .use_preconfigured_tls(super::tls::client_config(&config.tls, use_credentials)?);
        }
        let token = match (&config.credential, use_credentials) {
            (Credential::Token(token), true) => Some(BearerToken::fixed(token)?),
            (Credential::TokenFile(path), true) => Some(BearerToken::file(path.clone())?),
            _ => None,
        };
        Ok(Upstream {
            client: builder.build()?,
            base: config.server.clone(),
            token,
        })
    }

    /// The upstream URL for a request URI: the server's base path joined with the request's path and
    /// query, byte for byte (no re-encoding, so signed or escaped paths pass unchanged).
    pub(crate) fn url_for(&self, uri: &Uri) -> Url {
        let mut url = self.base.clone();
        let base_path = self.base.path().trim_end_matches('/');
        url.set_path(&format!("{base_path}{}", uri.path()));
        url.set_query(uri.query());
        url
    }

    /// Sends a request upstream and returns the streaming response. `headers` are the caller's headers
    /// after impersonation; hop-by-hop headers and `Host` are dropped here and the proxy's credential
    /// added (auth mode).
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        body: reqwest::Body,
    ) -> Result<http::Response<reqwest::Body>, UpstreamError> {
        remove_hop_by_hop(&mut headers);
        Ok(self.dispatch(method, uri, headers, body).await?.into())
    }

    /// Sends a connection-upgrade request (exec/attach over SPDY or WebSocket). Hop-by-hop headers
    /// are dropped except the `Upgrade` being asked for, with `Connection: Upgrade`. The caller
    /// calls `upgrade()` on a 101 answer.
    pub(crate) async fn send_upgrade(
        &self,
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        upgrade: http::HeaderValue,
    ) -> Result<reqwest::Response, UpstreamError> {
        remove_hop_by_hop(&mut headers);
        headers.insert(
            header::CONNECTION,
            http::HeaderValue::from_static("Upgrade"),
        );
        headers.insert(header::UPGRADE, upgrade);
        self.dispatch(method, uri, headers, reqwest::Body::from(""))
            .await
    }

    async fn dispatch(
        &self,
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        body: reqwest::Body,
    ) -> Result<reqwest::Response, UpstreamError> {
        headers.remove(header::HOST);
        if let Some(token) = &self.token {
            headers.insert(header::AUTHORIZATION, token.header()?);
        }
        let url = self.url_for(uri);
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
        let response = self
            .send(Method::GET, &uri, HeaderMap::new(), reqwest::Body::from(""))
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

/// reqwest's own Display is terse ("error sending request"); the cause is in the source chain.
fn error_chain(error: &reqwest::Error) -> String {
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
        Upstream::new(&config, Mode::Auth).expect("upstream")
    }

    #[test]
    fn url_keeps_base_path_and_raw_query() {
        let up = upstream("http://127.0.0.1:8080/k8s/clusters/c-1/");
        let uri: Uri = "/api/v1/pods?labelSelector=app%3Dweb&watch=1"
            .parse()
            .expect("uri");
        assert_eq!(
            up.url_for(&uri).as_str(),
            "http://127.0.0.1:8080/k8s/clusters/c-1/api/v1/pods?labelSelector=app%3Dweb&watch=1"
        );
        let plain = upstream("http://127.0.0.1:8080");
        let uri: Uri = "/version".parse().expect("uri");
        assert_eq!(
            plain.url_for(&uri).as_str(),
            "http://127.0.0.1:8080/version"
        );
    }

    #[test]
    fn https_without_ca_is_refused() {
        let config = UpstreamConfig {
            server: Url::parse("https://10.0.0.1:6443").expect("url"),
            tls: UpstreamTls::default(),
            credential: Credential::None,
            source: "test".into(),
        };
        let err = Upstream::new(&config, Mode::Auth).expect_err("no CA");
        assert!(err.to_string().contains("certificate-authority"), "{err}");
    }
}
