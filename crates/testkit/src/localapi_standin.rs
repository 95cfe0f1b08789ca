//! A stand-in for tailscaled's LocalAPI: `whois` answered from a table, `cert` with self-signed
//! certificates, and `status`, on a Unix socket.
//!
//! It answers like tailscaled does (`ipn/localapi/localapi.go` and `ipn/localapi/cert.go` in
//! tailscale/tailscale): the same paths, the same status codes, the same `text/plain` error texts
//! (`http.Error` style, with a trailing newline) and the same refusal of requests that carry an
//! `Origin` or `Referer` header or a foreign `Host` (403 `invalid localapi request`).
//!
//! | Request | Answer |
//! |---|---|
//! | `GET /localapi/v0/whois?addr=<ip[:port]>` | 200 the table's JSON; 400 `missing 'addr' parameter` / `invalid 'addr' parameter`; 404 `no match for IP:port` |
//! | `GET /localapi/v0/cert/<domain>?type=pair` | 200 key PEM then certificate PEM (`type=key`/`cert` give one of them); 500 when `domain` is not a cert domain; 400 on an unknown `type` |
//! | `GET /localapi/v0/status` | 200 JSON with `Self.DNSName`, `Self.TailscaleIPs`, `CertDomains`, `BackendState: "Running"` |

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize as _;
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// The whois answers the stand-in gives, by caller address.
///
/// Keys are `"ip:port"` (IPv6 as `"[ip]:port"`), `"ip"`, or `"*"`; a lookup tries the exact
/// address, then the IP, then `"*"`. Values are served as they are (pretty-printed with tabs, like
/// tailscaled's `json.MarshalIndent`), so a test controls exactly what the client gets, including
/// values that are not a valid WhoIs at all.
#[derive(Clone, Debug, Default)]
pub struct WhoIsTable {
    entries: HashMap<String, Value>,
}

impl WhoIsTable {
    /// An empty table: every lookup answers 404.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the answer for `key` (`"ip:port"`, `"ip"` or `"*"`).
    ///
    /// Addresses are normalised (`"[FD7A::1]:443"` is `"[fd7a::1]:443"`); a key that is no address
    /// is kept as given and never matches.
    pub fn insert(&mut self, key: impl Into<String>, whois: Value) {
        let key = key.into();
        self.entries
            .insert(normalize_key(&key).unwrap_or(key), whois);
    }

    /// Reads a table from a YAML or JSON file (JSON when the name ends in `.json`): a map from key
    /// to either an inline WhoIs object or a string, the path of a JSON file holding the WhoIs
    /// (relative paths are relative to the table file's directory).
    ///
    /// In YAML, quote `"*"` (a bare `*` is an alias) and IPv6 keys (a bare `[` starts a list).
    pub fn from_file(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading whois table {}", path.display()))?;
        let raw: BTreeMap<String, Value> = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        } else {
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut table = Self::new();
        for (key, value) in raw {
            let normalized = normalize_key(&key).with_context(|| {
                format!(
                    "{}: key {key:?} is not \"ip:port\", \"ip\" or \"*\"",
                    path.display()
                )
            })?;
            let whois = match value {
                Value::String(file) => {
                    let file = dir.join(file);
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("reading whois for {key:?}"))?;
                    serde_json::from_slice(&bytes)
                        .with_context(|| format!("parsing {} for {key:?}", file.display()))?
                }
                inline => inline,
            };
            table.entries.insert(normalized, whois);
        }
        Ok(table)
    }

    /// The answer for a caller at `addr` (port 0 means "by IP only", as in tailscaled).
    pub fn lookup(&self, addr: SocketAddr) -> Option<&Value> {
        let exact = (addr.port() != 0)
            .then(|| self.entries.get(&addr.to_string()))
            .flatten();
        exact
            .or_else(|| self.entries.get(&addr.ip().to_string()))
            .or_else(|| self.entries.get("*"))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn normalize_key(key: &str) -> Option<String> {
    if key == "*" {
        return Some(key.to_owned());
    }
    key.parse::<SocketAddr>()
        .map(|a| a.to_string())
        .or_else(|_| key.parse::<IpAddr>().map(|ip| ip.to_string()))
        .ok()
}

/// What the stand-in says about its own node.
#[derive(Clone, Debug)]
pub struct StandInOptions {
    /// The node's MagicDNS name with the trailing dot (`Self.DNSName`).
    pub dns_name: String,
    /// The names `cert` issues certificates for (`CertDomains`); empty answers like a tailnet
    /// without HTTPS certificates.
    pub cert_domains: Vec<String>,
    /// The node's addresses (`TailscaleIPs`).
    pub tailscale_ips: Vec<IpAddr>,
}

impl Default for StandInOptions {
    /// `proxy.tail1a2b3.ts.net.`, with a certificate for `proxy.tail1a2b3.ts.net`, at
    /// `100.100.1.1` and `fd7a:115c:a1e0::1`.
    fn default() -> Self {
        Self {
            dns_name: "proxy.tail1a2b3.ts.net.".to_owned(),
            cert_domains: vec!["proxy.tail1a2b3.ts.net".to_owned()],
            tailscale_ips: vec![
                IpAddr::from([100, 100, 1, 1]),
                IpAddr::from([0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 1]),
            ],
        }
    }
}

/// A running stand-in. Stops on [`LocalApiStandIn::shutdown`] or when dropped, removing its socket.
#[derive(Debug)]
pub struct LocalApiStandIn {
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl LocalApiStandIn {
    /// Listens on `socket` (replacing a stale socket file there) and serves until shut down.
    /// Connections are accepted as soon as this returns.
    pub async fn start(
        socket: &Path,
        table: WhoIsTable,
        options: StandInOptions,
    ) -> anyhow::Result<LocalApiStandIn> {
        match std::fs::symlink_metadata(socket) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(socket)
                .with_context(|| format!("removing stale socket {}", socket.display()))?,
            Ok(_) => anyhow::bail!("{} exists and is not a socket", socket.display()),
            Err(_) => {}
        }
        let listener = UnixListener::bind(socket)
            .with_context(|| format!("listening on {}", socket.display()))?;
        let state = Arc::new(State {
            table,
            options,
            certs: Mutex::new(HashMap::new()),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, state, stopped));
        Ok(Self {
            socket: socket.to_path_buf(),
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The socket path it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops accepting, closes open connections and removes the socket file.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for LocalApiStandIn {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

async fn serve(listener: UnixListener, state: Arc<State>, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "localapi stand-in: accept failed");
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                let service = service_fn(move |req| {
                    let response = state.handle(&req);
                    async move { Ok::<_, Infallible>(response) }
                });
                connections.spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "localapi stand-in: connection ended");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// A key PEM and a certificate PEM.
type KeyAndCert = Arc<(String, String)>;

struct State {
    table: WhoIsTable,
    options: StandInOptions,
    certs: Mutex<HashMap<String, KeyAndCert>>,
}

impl State {
    /// Routes like tailscaled's `Handler.ServeHTTP`: origin checks first, then the path.
    fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let headers = req.headers();
        let host = headers
            .get(header::HOST)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if headers.get(header::REFERER).is_some_and(|r| !r.is_empty())
            || headers.contains_key(header::ORIGIN)
            || !valid_host(host)
        {
            return text_error(StatusCode::FORBIDDEN, "invalid localapi request");
        }
        let query = req.uri().query().unwrap_or_default();
        let path = req.uri().path();
        if path == "/localapi/v0/whois" {
            self.whois(query)
        } else if path == "/localapi/v0/status" {
            self.status(query)
        } else if let Some(domain) = path.strip_prefix("/localapi/v0/cert/") {
            match percent_decode(domain) {
                Some(domain) => self.cert(&domain, query),
                None => text_error(StatusCode::BAD_REQUEST, "invalid URL escape"),
            }
        } else {
            text_error(StatusCode::NOT_FOUND, "404 page not found")
        }
    }

    /// `serveWhoIs`: an IP alone means port 0.
    fn whois(&self, query: &str) -> Response<Full<Bytes>> {
        let addr = match form_value(query, "addr") {
            None => return text_error(StatusCode::BAD_REQUEST, "missing 'addr' parameter"),
            Some(v) => match v.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, 0),
                Err(_) => match v.parse::<SocketAddr>() {
                    Ok(addr) => addr,
                    Err(_) => {
                        return text_error(StatusCode::BAD_REQUEST, "invalid 'addr' parameter")
                    }
                },
            },
        };
        match self.table.lookup(addr) {
            Some(whois) => json_response(whois, false),
            None => text_error(StatusCode::NOT_FOUND, "no match for IP:port"),
        }
    }

    /// `serveStatus`: `ipnstate.Status` of a running node with no peers.
    fn status(&self, query: &str) -> Response<Full<Bytes>> {
        let options = &self.options;
        let peers = form_value(query, "peers").is_none_or(|v| v != "false" && v != "0");
        let suffix = options
            .dns_name
            .trim_end_matches('.')
            .split_once('.')
            .map_or("", |(_, s)| s);
        let host_name = options.dns_name.split('.').next().unwrap_or_default();
        let addresses: Vec<String> = options
            .tailscale_ips
            .iter()
            .map(|ip| format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }))
            .collect();
        let status = json!({
            "Version": "1.80.0-testkit",
            "TUN": true,
            "BackendState": "Running",
            "HaveNodeKey": true,
            "AuthURL": "",
            "TailscaleIPs": options.tailscale_ips,
            "Self": {
                "ID": "nSTANDIN1CNTRL",
                "PublicKey": "nodekey:0000000000000000000000000000000000000000000000000000000000000001",
                "HostName": host_name,
                "DNSName": options.dns_name,
                "OS": "linux",
                "UserID": 1,
                "TailscaleIPs": options.tailscale_ips,
                "AllowedIPs": addresses,
                "Online": true,
                "Active": false,
            },
            "Health": [],
            "MagicDNSSuffix": suffix,
            "CurrentTailnet": {"Name": "example.com", "MagicDNSSuffix": suffix, "MagicDNSEnabled": true},
            "CertDomains": (!options.cert_domains.is_empty()).then_some(&options.cert_domains),
            "Peer": peers.then(|| json!({})),
            "User": {"1": {"ID": 1, "LoginName": "proxy@example.com", "DisplayName": "Proxy"}},
        });
        json_response(&status, true)
    }

    /// `serveCert` and `serveKeyPair`: the domain is checked (tailscaled's `checkCertDomain`,
    /// answered with 500) before the `type`.
    fn cert(&self, domain: &str, query: &str) -> Response<Full<Bytes>> {
        let domains = &self.options.cert_domains;
        if domain.is_empty() {
            return text_error(StatusCode::INTERNAL_SERVER_ERROR, "missing domain name");
        }
        if domains.is_empty() {
            return text_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "your Tailscale account does not support getting TLS certs",
            );
        }
        if !domains.iter().any(|d| d == domain) {
            // Go's `%q` of a []string: `["a" "b"]`.
            let quoted: Vec<String> = domains.iter().map(|d| format!("{d:?}")).collect();
            return text_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!(
                    "invalid domain {domain:?}; must be one of [{}]",
                    quoted.join(" ")
                ),
            );
        }
        let pair = match self.key_and_cert(domain) {
            Ok(pair) => pair,
            Err(e) => return text_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
        let (key, cert) = (&pair.0, &pair.1);
        let body = match form_value(query, "type").as_deref().unwrap_or_default() {
            "" | "crt" | "cert" => cert.clone(),
            "key" => key.clone(),
            "pair" => format!("{key}{cert}"),
            _ => {
                return text_error(
                    StatusCode::BAD_REQUEST,
                    r#"invalid type; want "cert" (default), "key", or "pair""#,
                )
            }
        };
        respond(StatusCode::OK, "text/plain", body.into_bytes())
    }

    /// A self-signed certificate for `domain`, made once and kept.
    fn key_and_cert(&self, domain: &str) -> Result<KeyAndCert, rcgen::Error> {
        let mut certs = self.certs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pair) = certs.get(domain) {
            return Ok(Arc::clone(pair));
        }
        let issued = rcgen::generate_simple_self_signed(vec![domain.to_owned()])?;
        let pair = Arc::new((issued.key_pair.serialize_pem(), issued.cert.pem()));
        certs.insert(domain.to_owned(), Arc::clone(&pair));
        Ok(pair)
    }
}

/// tailscaled's `validHost`: no Host, the LocalAPI name, or localhost with a port.
fn valid_host(host: &[u8]) -> bool {
    if host.is_empty() || host == b"local-tailscaled.sock" {
        return true;
    }
    let Some((name, port)) = std::str::from_utf8(host)
        .ok()
        .and_then(|h| h.rsplit_once(':'))
    else {
        return false;
    };
    port.parse::<u16>().is_ok() && matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// The first value of `name` in a query string, as Go's `FormValue` reads it.
fn form_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Decodes `%XX` escapes in a path; `None` on a bad escape or non-UTF-8 result.
fn percent_decode(path: &str) -> Option<String> {
    let mut out = Vec::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// JSON indented with tabs, as Go's `json.MarshalIndent(v, "", "\t")`; `newline` adds the line end
/// `json.Encoder` writes.
fn json_response(value: &Value, newline: bool) -> Response<Full<Bytes>> {
    let mut body = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(
        &mut body,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    if let Err(e) = value.serialize(&mut serializer) {
        return text_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    }
    if newline {
        body.push(b'\n');
    }
    respond(StatusCode::OK, "application/json", body)
}

/// Go's `http.Error`.
fn text_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = respond(status, "text/plain; charset=utf-8", format!("{message}\n"));
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lookup_prefers_exact_then_ip_then_fallback() {
        let mut table = WhoIsTable::new();
        table.insert("100.64.0.1:443", json!("exact"));
        table.insert("100.64.0.1", json!("ip"));
        table.insert("[FD7A::1]:443", json!("v6"));
        table.insert("*", json!("any"));
        let get = |a: &str| table.lookup(a.parse().unwrap()).cloned().unwrap();
        assert_eq!(get("100.64.0.1:443"), json!("exact"));
        assert_eq!(get("100.64.0.1:80"), json!("ip"));
        assert_eq!(get("100.64.0.1:0"), json!("ip"));
        assert_eq!(get("[fd7a::1]:443"), json!("v6"));
        assert_eq!(get("100.64.0.2:443"), json!("any"));
    }

    #[test]
    fn from_file_reads_yaml_with_inline_and_file_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alice.json"), r#"{"Node":{"ID":1}}"#).unwrap();
        let table_path = dir.path().join("table.yaml");
        std::fs::write(
            &table_path,
            "100.64.0.1:443: alice.json\n\"[fd7a::2]:80\": {Node: {ID: 2}}\n\"*\": alice.json\n",
        )
        .unwrap();
        let table = WhoIsTable::from_file(&table_path).unwrap();
        assert_eq!(table.len(), 3);
        assert_eq!(
            table.lookup("100.64.0.1:443".parse().unwrap()),
            Some(&json!({"Node": {"ID": 1}}))
        );
        assert_eq!(
            table.lookup("[fd7a::2]:80".parse().unwrap()),
            Some(&json!({"Node": {"ID": 2}}))
        );

        std::fs::write(&table_path, "not-an-address: {}\n").unwrap();
        assert!(WhoIsTable::from_file(&table_path).is_err());
    }

    #[test]
    fn host_checks_match_tailscaled() {
        assert!(valid_host(b""));
        assert!(valid_host(b"local-tailscaled.sock"));
        assert!(valid_host(b"localhost:41112"));
        assert!(valid_host(b"[::1]:41112"));
        assert!(!valid_host(b"localhost"));
        assert!(!valid_host(b"evil.example:80"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("a%2Fb.ts.net").as_deref(),
            Some("a/b.ts.net")
        );
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("a%zz"), None);
    }
}
