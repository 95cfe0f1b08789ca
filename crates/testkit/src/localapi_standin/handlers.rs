//! Request handling, as tailscaled's `ipn/localapi` does it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize as _;
use serde_json::{json, Value};

use super::table::WhoIsTable;
use super::StandInOptions;

/// A key PEM and a certificate PEM.
type KeyAndCert = Arc<(String, String)>;

pub(super) struct State {
    /// Replaced whole by [`State::replace_table`] (tailscaled's answers change when grants do).
    table: RwLock<WhoIsTable>,
    options: StandInOptions,
    certs: Mutex<HashMap<String, KeyAndCert>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl State {
    /// The stand-in's state: its table, what it says about its node, no certificates yet.
    pub(super) fn new(table: WhoIsTable, options: StandInOptions) -> State {
        State {
            table: RwLock::new(table),
            options,
            certs: Mutex::new(HashMap::new()),
        }
    }
}

impl State {
    /// Answers from `table` from now on.
    pub(super) fn replace_table(&self, table: WhoIsTable) {
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = table;
    }

    /// Routes like tailscaled's `Handler.ServeHTTP`: origin checks first, then the path.
    pub(super) fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
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
        let table = self.table.read().unwrap_or_else(PoisonError::into_inner);
        match table.lookup(addr) {
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
pub(super) fn valid_host(host: &[u8]) -> bool {
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
pub(super) fn percent_decode(path: &str) -> Option<String> {
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
