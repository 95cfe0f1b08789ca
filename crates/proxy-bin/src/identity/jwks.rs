//! Where an OIDC issuer's signing keys come from: a JWK set file (`--oidc-jwks-file`, re-read
//! when it changes, for clusters that cannot reach the issuer), or the issuer's discovery
//! document (`<issuer>/.well-known/openid-configuration`, its `jwks_uri`), fetched over HTTPS and
//! cached.
//!
//! Fetched keys are used for [`MAX_AGE`], then fetched again on the next request (a failed fetch
//! keeps the old keys). A token naming a `kid` the cached set lacks (the issuer rotated its keys)
//! makes the keys be fetched again, at most once per [`UNKNOWN_KID_REFETCH`]; so a stream of
//! tokens with made-up `kid`s cannot make the proxy hammer the issuer. Fetches are serialized.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::jwt::JwkSet;

/// How long fetched keys are used before they are fetched again.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(3600);
/// At most one fetch per this long for a token with an unknown `kid`.
pub(crate) const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(60);
/// At most one fetch per this long while no keys could be fetched at all.
const RETRY_WITHOUT_KEYS: Duration = Duration::from_secs(5);
/// Time for each request to the issuer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document or JWK set read.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// CA bundles of common distributions, tried in order when `--oidc-ca-file` is not given
/// (`SSL_CERT_FILE` first).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The issuer's keys.
#[derive(Debug)]
pub(crate) enum Jwks {
    /// `--oidc-jwks-file`.
    File(JwksFile),
    /// The issuer's discovery document.
    Discovery(Discovery),
}

impl Jwks {
    /// The keys in force, fetching them if there are none yet or they are old.
    pub(crate) async fn keys(&self) -> Result<Arc<JwkSet>, String> {
        match self {
            Jwks::File(file) => Ok(file.current()),
            Jwks::Discovery(discovery) => discovery.keys().await,
        }
    }

    /// Keys fetched again for a token whose `kid` the current ones lack; `None` when that is not
    /// possible now (a file, or a fetch within the last minute).
    pub(crate) async fn refetch_for_unknown_kid(&self) -> Option<Arc<JwkSet>> {
        match self {
            Jwks::File(_) => None,
            Jwks::Discovery(discovery) => discovery.refetch_for_unknown_kid().await,
        }
    }

    /// The file, when the keys come from one.
    pub(crate) fn file(&self) -> Option<&JwksFile> {
        match self {
            Jwks::File(file) => Some(file),
            Jwks::Discovery(_) => None,
        }
    }
}

/// A JWK set file, re-read when it changes; a changed file that cannot be used keeps the keys in
/// force.
pub(crate) type JwksFile = super::reloadable::ReloadableFile<JwkSet>;

/// Reads the JWK set file at `path` now (`--oidc-jwks-file`): a file without a usable key is a
/// start-up error.
pub(crate) fn load_jwks_file(path: PathBuf) -> anyhow::Result<JwksFile> {
    JwksFile::load("--oidc-jwks-file", path, |path| {
        read_file(path).map(Arc::new)
    })
}

fn read_file(path: &Path) -> anyhow::Result<JwkSet> {
    JwkSet::parse(&std::fs::read(path)?).map_err(anyhow::Error::msg)
}

/// Whether `url` may be fetched from: https, or plain http to a loopback address (a test issuer,
/// or an issuer reached through a local tunnel).
pub(crate) fn fetchable(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(name)) => name == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

#[derive(Debug, Default)]
struct Cache {
    keys: Option<Arc<JwkSet>>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// Keys from the issuer's discovery document.
#[derive(Debug)]
pub(crate) struct Discovery {
    issuer: String,
    client: reqwest::Client,
    cache: tokio::sync::Mutex<Cache>,
}

impl Discovery {
    /// A client for `issuer` trusting the CA certificates of `ca_file` (PEM), or the system's CA
    /// bundle. Nothing is fetched yet.
    pub(crate) fn new(issuer: &str, ca_file: Option<&Path>) -> anyhow::Result<Discovery> {
        let mut roots = RootCertStore::empty();
        let bundle = match ca_file {
            Some(path) => Some(path.to_path_buf()),
            None => std::env::var_os("SSL_CERT_FILE")
                .map(PathBuf::from)
                .into_iter()
                .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
                .find(|path| path.is_file()),
        };
        if let Some(path) = &bundle {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("--oidc-ca-file {}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    anyhow::anyhow!("{}: not PEM certificates: {e}", path.display())
                })?;
                // A system bundle may hold certificates webpki cannot use; skip those.
                if roots.add(cert).is_err() && ca_file.is_some() {
                    anyhow::bail!(
                        "--oidc-ca-file {}: a certificate cannot be a trust anchor",
                        path.display()
                    );
                }
            }
        }
        let https = issuer.starts_with("https:");
        if https && roots.is_empty() {
            anyhow::bail!(
                "--oidc-issuer-url {issuer}: no CA certificates to verify the issuer with (give --oidc-ca-file, or --oidc-jwks-file)"
            );
        }
        let tls = if roots.is_empty() {
            None
        } else {
            Some(
                rustls::ClientConfig::builder_with_provider(crate::upstream::tls::provider())
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        };
        let mut builder = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = tls {
            builder = builder.use_preconfigured_tls(tls);
        }
        Ok(Discovery {
            issuer: issuer.to_owned(),
            client: builder.build()?,
            cache: tokio::sync::Mutex::new(Cache::default()),
        })
    }

    async fn keys(&self) -> Result<Arc<JwkSet>, String> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE);
        if let (Some(keys), true) = (&cache.keys, fresh) {
            return Ok(keys.clone());
        }
        let may_try = match (&cache.keys, cache.last_attempt) {
            (_, None) => true,
            (None, Some(at)) => at.elapsed() >= RETRY_WITHOUT_KEYS,
            (Some(_), Some(at)) => at.elapsed() >= UNKNOWN_KID_REFETCH,
        };
        if may_try {
            self.fetch_into(&mut cache).await;
        }
        match &cache.keys {
            Some(keys) => Ok(keys.clone()),
            None => Err(cache
                .last_error
                .clone()
                .unwrap_or_else(|| "not fetched yet".to_owned())),
        }
    }

    async fn refetch_for_unknown_kid(&self) -> Option<Arc<JwkSet>> {
        let mut cache = self.cache.lock().await;
        if cache
            .last_attempt
            .is_some_and(|at| at.elapsed() < UNKNOWN_KID_REFETCH)
        {
            return None;
        }
        if self.fetch_into(&mut cache).await {
            cache.keys.clone()
        } else {
            None
        }
    }

    /// Fetches the keys into `cache`; whether that worked. A failure keeps the old keys.
    async fn fetch_into(&self, cache: &mut Cache) -> bool {
        cache.last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(
                    issuer = self.issuer,
                    keys = keys.len(),
                    "OIDC issuer keys fetched"
                );
                cache.keys = Some(Arc::new(keys));
                cache.fetched_at = Some(Instant::now());
                cache.last_error = None;
                true
            }
            Err(error) => {
                tracing::warn!(
                    issuer = self.issuer,
                    "cannot fetch the OIDC issuer's keys: {error}"
                );
                cache.last_error = Some(error);
                false
            }
        }
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let document: serde_json::Value = serde_json::from_slice(&self.get(&discovery_url).await?)
            .map_err(|e| format!("{discovery_url}: not JSON: {e}"))?;
        match document.get("issuer").and_then(|v| v.as_str()) {
            Some(issuer) if issuer == self.issuer => {}
            other => {
                return Err(format!(
                    "{discovery_url}: the discovery document names issuer {other:?}, not {:?}",
                    self.issuer
                ))
            }
        }
        let jwks_uri = document
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("{discovery_url}: no jwks_uri"))?;
        let parsed = url::Url::parse(jwks_uri)
            .map_err(|e| format!("{discovery_url}: jwks_uri {jwks_uri:?}: {e}"))?;
        if !fetchable(&parsed) {
            return Err(format!(
                "{discovery_url}: jwks_uri {jwks_uri:?} is neither https nor loopback http"
            ));
        }
        JwkSet::parse(&self.get(jwks_uri).await?).map_err(|e| format!("{jwks_uri}: {e}"))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_DOCUMENT as u64)
        {
            return Err(format!("{url}: the document is too large"));
        }
        // Read piece by piece: a body without a length (chunked) is cut off at the limit, not
        // read whole first.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("{url}: the document is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::jwt::tests::Signer;
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        for (url, ok) in [
            ("https://issuer.example", true),
            ("http://127.0.0.1:8080", true),
            ("http://[::1]:8080/x", true),
            ("http://localhost/x", true),
            ("http://issuer.example", false),
            ("http://10.0.0.1", false),
            ("ftp://127.0.0.1", false),
        ] {
            assert_eq!(fetchable(&url::Url::parse(url).unwrap()), ok, "{url}");
        }
    }

    #[test]
    fn the_file_is_reloaded_and_a_broken_one_keeps_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let replace = |text: String| {
            std::fs::write(dir.path().join("new"), text).unwrap();
            std::fs::rename(dir.path().join("new"), &path).unwrap();
        };
        let (one, two) = (Signer::es256("one"), Signer::es256("two"));
        std::fs::write(&path, json!({"keys": [one.jwk()]}).to_string()).unwrap();
        let file = load_jwks_file(path.clone()).unwrap();
        assert_eq!(file.current().len(), 1);
        assert!(!file.reload_if_changed().unwrap());
        replace(json!({"keys": [one.jwk(), two.jwk()]}).to_string());
        assert!(file.reload_if_changed().unwrap());
        assert_eq!(file.current().len(), 2);
        replace("{\"keys\": []}".to_owned());
        assert!(file.reload_if_changed().is_err());
        assert!(!file.reload_if_changed().unwrap());
        assert_eq!(file.current().len(), 2);
        std::fs::write(dir.path().join("bad.json"), "nope").unwrap();
        let error = load_jwks_file(dir.path().join("bad.json"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("--oidc-jwks-file"), "{error}");
    }

    /// A discovery endpoint on loopback http: the document and the key set, counting key fetches.
    async fn issuer(keys: serde_json::Value, fetches: Arc<AtomicUsize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = base.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 4096];
                let n = stream.read(&mut buf).await.unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if request.starts_with("GET /.well-known/openid-configuration") {
                    json!({"issuer": base, "jwks_uri": format!("{base}/keys")}).to_string()
                } else {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    keys.to_string()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
            }
        });
        issuer
    }

    #[tokio::test]
    async fn an_endless_document_without_a_length_is_cut_off_at_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let _ = stream.read(&mut buf).await.unwrap();
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            stream.write_all(head.as_bytes()).await.unwrap();
            // 64 KiB chunks for as long as the client reads: far past the limit.
            let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
            while stream.write_all(chunk.as_bytes()).await.is_ok() {}
        });
        let discovery = Discovery::new(&url, None).unwrap();
        let error = discovery.keys().await.unwrap_err();
        assert!(error.contains("the document is too large"), "{error}");
    }

    #[tokio::test]
    async fn discovery_fetches_once_and_refetches_for_an_unknown_kid_at_most_once_a_minute() {
        let one = Signer::es256("one");
        let fetches = Arc::new(AtomicUsize::new(0));
        let url = issuer(json!({"keys": [one.jwk()]}), fetches.clone()).await;
        let discovery = Discovery::new(&url, None).unwrap();
        assert_eq!(discovery.keys().await.unwrap().len(), 1);
        assert_eq!(discovery.keys().await.unwrap().len(), 1);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Just fetched: an unknown kid does not fetch again.
        assert!(discovery.refetch_for_unknown_kid().await.is_none());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        discovery.cache.lock().await.last_attempt =
            Some(Instant::now() - UNKNOWN_KID_REFETCH - Duration::from_secs(1));
        assert!(discovery.refetch_for_unknown_kid().await.is_some());
        assert!(discovery.refetch_for_unknown_kid().await.is_none());
        assert_eq!(fetches.load(Ordering::SeqCst), 2);

        // A document naming another issuer is refused.
        let wrong = Discovery::new(&format!("{url}/other"), None).unwrap();
        let error = wrong.keys().await.unwrap_err();
        assert!(error.contains("names issuer None"), "{error}");
    }
}
