//! A closed-loop HTTP/1.1 load generator, like `hey` or `wrk`, for the benchmarks of
//! `cargo xtask bench`: a fixed number of keep-alive connections (RFC 9112 §9.3, persistent
//! connections), each sending the same GET back to back and reading every body to its end before
//! the next request. Requests started during the warm-up are not measured; requests still in
//! flight when the measured window closes are cut off and not counted.
//!
//! [`ServerTrust::AnyCertificate`] skips certificate verification: it exists for benchmarks
//! against a self-signed proxy on the loopback interface and must not be used for anything else.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use http::header::{HeaderMap, HOST};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use serde::Serialize;
use tlsedge::verify::AnyServerCertificate;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use url::Url;

#[cfg(test)]
mod tests;

/// Pause after a failed request before the connection is opened again, so that a server that
/// refuses connections does not turn the generator into a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// What to send, how hard and for how long.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `http://` or `https://` URL of every request (method GET).
    pub url: Url,
    /// Keep-alive connections, each with one request outstanding at a time.
    pub connections: usize,
    /// Length of the warm-up, whose requests are sent but not measured.
    pub warmup: Duration,
    /// Length of the measured window after the warm-up.
    pub duration: Duration,
    /// Extra request headers (`Host` is set from the URL).
    pub headers: HeaderMap,
    /// How the server's certificate is checked for `https://`.
    pub trust: ServerTrust,
}

/// How an `https://` server's certificate is checked.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Verified against these roots.
    Roots(Arc<RootCertStore>),
    /// Any certificate is accepted (handshake signatures are still checked):
    /// [`tlsedge::AnyServerCertificate`]. For benchmarks against a self-signed server only.
    AnyCertificate,
}

/// The outcome of a run, printed as one JSON line by `testkit-load`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// Responses received in the measured window, whatever their status.
    pub requests: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// `requests / seconds`.
    pub rate: f64,
    /// Responses in the measured window with a status outside 2xx.
    pub non_2xx: u64,
    /// Requests in the measured window that got no response (connection refused or reset, bad
    /// TLS, malformed response).
    pub errors: u64,
    /// Median latency of the measured responses, from sending the request to the end of the body.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Every request handed to a connection, warm-up and cut-off ones included: what the server
    /// may have seen.
    pub sent: u64,
    /// The first error in the measured window, for diagnosis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl LoadReport {
    /// Measured responses with a 2xx status.
    pub fn successes(&self) -> u64 {
        self.requests - self.non_2xx
    }
}

/// Runs the load and reports it. Fails only on bad options; request failures are counted.
pub async fn run(options: LoadOptions) -> anyhow::Result<LoadReport> {
    if options.connections == 0 {
        bail!("connections: must be at least 1");
    }
    let target = Arc::new(Target::new(&options)?);
    let measure_from = Instant::now() + options.warmup;
    let window = Window {
        measure_from,
        end: measure_from + options.duration,
    };
    let sent = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..options.connections)
        .map(|_| tokio::spawn(worker(target.clone(), window, sent.clone())))
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        total.merge(worker.await.context("load worker panicked")?);
    }
    let seconds = options.duration.as_secs_f64();
    total.latencies.sort_unstable();
    Ok(LoadReport {
        requests: total.responses,
        seconds,
        rate: if seconds > 0.0 {
            total.responses as f64 / seconds
        } else {
            0.0
        },
        non_2xx: total.non_2xx,
        errors: total.errors,
        p50_ms: percentile_ms(&total.latencies, 0.50),
        p99_ms: percentile_ms(&total.latencies, 0.99),
        sent: sent.load(Ordering::Relaxed),
        first_error: total.first_error,
    })
}

/// The address, TLS settings and request head shared by every connection.
struct Target {
    addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    path_and_query: String,
    headers: HeaderMap,
}

impl Target {
    fn new(options: &LoadOptions) -> anyhow::Result<Self> {
        let url = &options.url;
        let addr = *url
            .socket_addrs(|| None)
            .with_context(|| format!("url: cannot resolve {url}"))?
            .first()
            .ok_or_else(|| anyhow!("url: {url} resolves to no address"))?;
        let tls = match url.scheme() {
            "http" => None,
            "https" => Some((
                TlsConnector::from(Arc::new(client_config(&options.trust)?)),
                server_name(url)?,
            )),
            other => bail!("url: scheme {other:?} is not http or https"),
        };
        let mut headers = options.headers.clone();
        let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
        headers.insert(HOST, authority.parse().context("url: host")?);
        Ok(Self {
            addr,
            tls,
            path_and_query: url[url::Position::BeforePath..url::Position::AfterQuery].to_owned(),
            headers,
        })
    }

    /// Opens a connection (with the TLS handshake for `https://`) and starts its HTTP/1.1 driver.
    async fn connect(&self) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connect {}", self.addr))?;
        // Requests are small and answered before the next one: no reason to wait for Nagle.
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .context("TLS handshake")?;
                handshake(tls).await
            }
        }
    }

    fn request(&self) -> anyhow::Result<Request<Empty<Bytes>>> {
        let mut request = Request::get(self.path_and_query.as_str()).body(Empty::new())?;
        *request.headers_mut() = self.headers.clone();
        Ok(request)
    }
}

async fn handshake<S>(io: S) -> anyhow::Result<SendRequest<Empty<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "load connection ended with an error");
        }
    });
    Ok(sender)
}

/// A TLS client configuration for `trust`, offering only HTTP/1.1 (ALPN). Also used by the
/// end-to-end suite's raw clients, which attack the proxy below kubectl.
pub fn client_config(trust: &ServerTrust) -> anyhow::Result<ClientConfig> {
    // An explicit provider: the process may have more than one compiled in.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut config = match trust {
        ServerTrust::Roots(roots) => builder
            .with_root_certificates(roots.clone())
            .with_no_client_auth(),
        ServerTrust::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate::new(provider)))
            .with_no_client_auth(),
    };
    // HTTP/1.1 only: the load is about one request at a time per connection.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn server_name(url: &Url) -> anyhow::Result<ServerName<'static>> {
    Ok(match url.host() {
        Some(url::Host::Domain(name)) => {
            ServerName::try_from(name.to_owned()).context("url: host is not a DNS name")?
        }
        Some(url::Host::Ipv4(ip)) => ServerName::IpAddress(std::net::IpAddr::V4(ip).into()),
        Some(url::Host::Ipv6(ip)) => ServerName::IpAddress(std::net::IpAddr::V6(ip).into()),
        None => bail!("url: no host"),
    })
}

/// When measuring starts and when everything stops.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
}

/// What one connection measured.
#[derive(Debug, Default)]
struct Tally {
    responses: u64,
    non_2xx: u64,
    errors: u64,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.responses += other.responses;
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        self.latencies.extend(other.latencies);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One connection's loop: a request, its whole body, the next request, until the window ends.
async fn worker(target: Arc<Target>, window: Window, sent: Arc<AtomicU64>) -> Tally {
    let mut tally = Tally::default();
    let mut sender = None;
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        let exchange = one_request(&target, &mut sender, &sent);
        let Ok(outcome) = tokio::time::timeout_at(window.end, exchange).await else {
            break; // cut off by the end of the window
        };
        let measured = started >= window.measure_from;
        match outcome {
            Ok(status) if measured => {
                tally.responses += 1;
                if !status.is_success() {
                    tally.non_2xx += 1;
                }
                tally.latencies.push(started.elapsed());
            }
            Ok(_) => {}
            Err(error) => {
                sender = None;
                if measured {
                    tally.errors += 1;
                    tally
                        .first_error
                        .get_or_insert_with(|| format!("{error:#}"));
                }
                tokio::time::sleep_until((Instant::now() + ERROR_BACKOFF).min(window.end)).await;
            }
        }
    }
    tally
}

/// Sends one request on the connection in `sender` (opened first when there is none, or when the
/// server closed the previous one between requests) and reads the whole response body.
async fn one_request(
    target: &Target,
    sender: &mut Option<SendRequest<Empty<Bytes>>>,
    sent: &AtomicU64,
) -> anyhow::Result<StatusCode> {
    let reusable = match sender {
        Some(open) if !open.is_closed() => open.ready().await.is_ok(),
        _ => false,
    };
    if !reusable {
        *sender = None;
    }
    let open = match sender {
        Some(open) => open,
        None => sender.insert(target.connect().await?),
    };
    open.ready().await.context("connection not ready")?;
    let request = target.request()?;
    sent.fetch_add(1, Ordering::Relaxed);
    let response = open.send_request(request).await.context("request")?;
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .context("response body")?;
    Ok(status)
}

/// Nearest-rank percentile of sorted latencies, in milliseconds; 0 without any.
fn percentile_ms(sorted: &[Duration], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}
