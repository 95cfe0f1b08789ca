//! The per-client upstream connections ("lanes", `upstream/lane.rs`): the proxy in-process in
//! front of upstreams this file controls (a recording hyper server, or raw TCP servers that
//! misbehave on cue), driven by raw TLS clients: no request sent twice, no smuggling, no hang,
//! TCP keep-alive as the pool has, and at most `--max-upstream-connections` of them.

#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser as _;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use support::{read_head, read_response, request, whois, DEADLINE};
use testkit::localapi_standin::{LocalApiStandIn, StandInOptions, WhoIsTable};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

const POD: &str = "/api/v1/namespaces/default/pods/demo";

/// A caller the LocalAPI stand-in knows, with no recording rule.
fn caller(name: &str) -> Value {
    let mut whois = whois(name);
    whois["CapMap"] = json!({});
    whois
}

struct Proxy {
    running: Option<kube_auth_proxy::RunningProxy>,
    localapi: LocalApiStandIn,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// The proxy in auth mode for `user-node`, upstream `upstream` (plain http), with `extra` flags.
    async fn start(upstream: &str, extra: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let mut table = WhoIsTable::new();
        table.insert("*", caller("user-node"));
        let socket = dir.path().join("tailscaled.sock");
        let localapi = LocalApiStandIn::start(&socket, table, StandInOptions::default())
            .await
            .unwrap();
        let kubeconfig = dir.path().join("upstream.kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: {upstream}\n\
                 users:\n- name: u\n  user:\n    token: proxy-token\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n"
            ),
        )
        .unwrap();
        let mut args = vec![
            "kube-auth-proxy".to_owned(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
            "--tls-self-signed".into(),
            "--mode".into(),
            "auth".into(),
            "--upstream-kubeconfig".into(),
            kubeconfig.to_str().unwrap().into(),
            "--localapi-socket".into(),
            socket.to_str().unwrap().into(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let cli = kube_auth_proxy::Cli::try_parse_from(args).unwrap();
        let running = kube_auth_proxy::start(cli).await.unwrap();
        Proxy {
            running: Some(running),
            localapi,
            _dir: dir,
        }
    }

    async fn connect(&self) -> TlsStream<TcpStream> {
        let addr = self.running.as_ref().unwrap().listen();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let config =
            testkit::load::client_config(&testkit::load::ServerTrust::AnyCertificate).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap()
    }
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    peer: SocketAddr,
    #[allow(dead_code)]
    method: String,
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
}

/// A well-behaved upstream (hyper, keep-alive) recording every request with its connection's
/// peer. `/slow` answers after 500 ms, `/watch` streams forever, `HEAD` gets a Content-Length
/// and no body.
struct Upstream {
    url: String,
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

struct OpenGuard(Arc<AtomicUsize>);
impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (s, a, o) = (seen.clone(), accepted.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let guard = OpenGuard(o.clone());
                let s = s.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let s = s.clone();
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                s.lock().unwrap().push(Seen {
                                    peer,
                                    method: parts.method.to_string(),
                                    path: parts.uri.to_string(),
                                    headers: parts.headers.clone(),
                                    body,
                                });
                                let path = parts.uri.path().to_owned();
                                if path == "/slow" {
                                    tokio::time::sleep(Duration::from_millis(500)).await;
                                }
                                let response: http::Response<
                                    http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>,
                                > = if path == "/watch" {
                                    let stream = futures_util::stream::unfold((), |()| async {
                                        tokio::time::sleep(Duration::from_millis(100)).await;
                                        Some((
                                            Ok::<_, Infallible>(hyper::body::Frame::data(
                                                Bytes::from_static(b"{}\n"),
                                            )),
                                            (),
                                        ))
                                    });
                                    http::Response::new(
                                        http_body_util::StreamBody::new(stream).boxed_unsync(),
                                    )
                                } else if parts.method == http::Method::HEAD {
                                    let mut r =
                                        http::Response::new(Full::new(Bytes::new()).boxed_unsync());
                                    r.headers_mut().insert(
                                        http::header::CONTENT_LENGTH,
                                        "1234".parse().unwrap(),
                                    );
                                    r
                                } else {
                                    http::Response::new(
                                        Full::new(Bytes::from(format!(
                                            "{{\"path\":{:?}}}",
                                            parts.uri.to_string()
                                        )))
                                        .boxed_unsync(),
                                    )
                                };
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            url: format!("http://{addr}"),
            port: addr.port(),
            seen,
            accepted,
            open,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn get(client: &mut TlsStream<TcpStream>, path: &str) -> (u16, String, Vec<u8>) {
    client
        .write_all(&request("GET", path, &[], b""))
        .await
        .unwrap();
    read_response(client).await
}

/// The `tr` (timer) field of every ESTABLISHED socket in this process's network namespace whose
/// remote port is `port`: the proxy's upstream connections. 2 = `sk_timer` pending, which for an
/// established TCP socket is the keep-alive timer; 0 = no timer.
fn upstream_socket_timers(port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let wanted = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (remote, state, timer) = (fields[2], fields[3], fields[5]);
            (remote.ends_with(&wanted) && state == "01")
                .then(|| timer.split(':').next().unwrap().to_owned())
        })
        .collect()
}

async fn timers_after_one_request(mode: &str) -> Vec<String> {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream.url, &["--upstream-connections", mode]).await;
    let mut client = proxy.connect().await;
    let (status, head, _) = get(&mut client, POD).await;
    assert_eq!(status, 200, "{head}");
    upstream_socket_timers(upstream.port)
}

/// Control: the pooled client's upstream sockets have TCP keep-alive (reqwest `tcp_keepalive(30s)`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_upstream_sockets_have_tcp_keepalive() {
    let timers = timers_after_one_request("pooled").await;
    assert!(!timers.is_empty());
    assert!(timers.iter().all(|t| t == "02"), "{timers:?}");
}

/// A lane's upstream socket has TCP keep-alive, as the pool's: a watch or `logs -f` across a
/// silently dead upstream (node gone, NAT/conntrack entry dropped) fails instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lane_upstream_sockets_have_tcp_keepalive_like_the_pool() {
    let timers = timers_after_one_request("per-client").await;
    assert!(!timers.is_empty());
    assert!(
        timers.iter().all(|t| t == "02"),
        "lane sockets have no keep-alive timer: {timers:?}"
    );
}

/// Each idle client connection holds an upstream connection of its own, up to
/// `--max-upstream-connections`; client connections beyond it forward through the shared pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_beyond_max_upstream_connections_use_the_pool() {
    const CLIENTS: usize = 12;
    for (args, expected) in [
        (&["--upstream-connections", "per-client"][..], CLIENTS),
        (&["--max-upstream-connections", "4"][..], 4 + 1),
        (&["--upstream-connections", "pooled"][..], 1),
    ] {
        let upstream = Upstream::start().await;
        let proxy = Proxy::start(&upstream.url, args).await;
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let mut client = proxy.connect().await;
            let (status, head, _) = get(&mut client, POD).await;
            assert_eq!(status, 200, "{head}");
            clients.push(client);
        }
        assert_eq!(
            upstream.accepted.load(Ordering::SeqCst),
            expected,
            "{args:?}"
        );
    }
}

/// A raw upstream: answers the first request of its first connection (keep-alive), then, for
/// every later request head it reads, counts it and closes the connection without an answer
/// (the request was written: the proxy must not send it again).
async fn dying_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let later = Arc::new(AtomicUsize::new(0));
    let counter = later.clone();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer_one = std::mem::take(&mut first);
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut answered = !answer_one;
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        buffer.drain(..at + 4);
                        if answered {
                            counter.fetch_add(1, Ordering::SeqCst);
                            return; // closes without an answer
                        }
                        answered = true;
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                            .await;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (url, later)
}

/// A POST the upstream read but never answered is not sent again; the client gets a Status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_was_written_is_never_sent_twice() {
    let (url, posts) = dying_upstream().await;
    let proxy = Proxy::start(&url, &[]).await;
    let mut client = proxy.connect().await;
    let (status, head, _) = get(&mut client, POD).await;
    assert_eq!(status, 200, "{head}");
    client
        .write_all(&request(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &[("Content-Type", "application/json")],
            b"{}",
        ))
        .await
        .unwrap();
    let (status, head, body) = read_response(&mut client).await;
    assert_eq!(status, 502, "{head}");
    let status_json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status_json["kind"], "Status", "{status_json}");
    // A resend would have happened before the answer: the lane answers once it gave up.
    assert_eq!(
        posts.load(Ordering::SeqCst),
        1,
        "the POST reached upstream more than once"
    );
}

/// An upstream that closes a kept-alive connection while it is idle: the lane's next request
/// (a POST) goes on a new connection, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_upstream_closed_is_replaced() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let posts = Arc::new(AtomicUsize::new(0));
    let counter = posts.clone();
    let closed = Arc::new(tokio::sync::Notify::new());
    let closing = closed.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            let closing = closing.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
                if buffer.starts_with(b"POST") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                // Keep-alive by the headers, then gone 50 ms later (an idle timeout).
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(stream);
                closing.notify_one();
            });
        }
    });
    let proxy = Proxy::start(&url, &[]).await;
    let mut client = proxy.connect().await;
    let (status, head, _) = get(&mut client, POD).await;
    assert_eq!(status, 200, "{head}");
    tokio::time::timeout(DEADLINE, closed.notified())
        .await
        .unwrap();
    client
        .write_all(&request(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            &[],
            b"{}",
        ))
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut client).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(posts.load(Ordering::SeqCst), 1);
}

/// `Content-Length` with `Transfer-Encoding: chunked`, and a GET whose chunked body holds a
/// request: upstream sees one well-framed request each, never the embedded one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_conflicts_are_not_smuggled_upstream() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream.url, &[]).await;
    let mut client = proxy.connect().await;
    client
        .write_all(
            b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
              Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut client).await;
    assert_eq!(status, 200, "{head}");
    // hyper closes a connection whose request had both (RFC 9112 §6.1); a new one.
    assert!(head.contains("connection: close"), "{head}");
    let mut client = proxy.connect().await;
    let (status, head, _) = get(&mut client, POD).await;
    assert_eq!(status, 200, "{head}");
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut bytes = format!(
        "GET {POD}?second HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        smuggled.len()
    )
    .into_bytes();
    bytes.extend_from_slice(smuggled);
    bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    client.write_all(&bytes).await.unwrap();
    let (status, head, _) = read_response(&mut client).await;
    assert_eq!(status, 200, "{head}");
    // The upstream records a request before it answers it.
    let seen = upstream.seen();
    let paths: Vec<_> = seen.iter().map(|s| s.path.as_str()).collect();
    assert!(!paths.iter().any(|p| p.contains("smuggled")), "{paths:?}");
    assert_eq!(seen.len(), 3, "{paths:?}");
    assert_eq!(&seen[0].body[..], b"hello");
    assert!(seen[0].headers.get(http::header::CONTENT_LENGTH).is_none());
    assert!(seen
        .iter()
        .all(|s| s.headers.get(http::header::AUTHORIZATION).unwrap() == "Bearer proxy-token"));
    assert!(seen.iter().all(
        |s| s.headers.get(http::header::HOST).unwrap().to_str().unwrap()
            == upstream.url.trim_start_matches("http://")
    ));
}

/// HEAD and GET pipelined in one write, and `Expect: 100-continue`: answered in order, no hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_head_and_expect_continue_do_not_hang() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream.url, &[]).await;
    let mut client = proxy.connect().await;
    let mut both = request("HEAD", POD, &[], b"");
    both.extend(request("GET", &format!("{POD}?after-head"), &[], b""));
    client.write_all(&both).await.unwrap();
    let (status, head, rest) = read_head(&mut client).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 1234"),
        "{head}"
    );
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1"),
        "HEAD got a body: {rest:?}"
    );
    // The GET's answer (possibly already partly in `rest`).
    let mut text = rest;
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&text).contains("after-head") {
        let n = tokio::time::timeout(DEADLINE, client.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        text.extend_from_slice(&chunk[..n]);
    }
    // Expect: 100-continue, the body sent only after the 100.
    client
        .write_all(
            b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\n\
              Expect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        )
        .await
        .unwrap();
    let (status, head, _) = read_head(&mut client).await;
    assert_eq!(status, 100, "{head}");
    client.write_all(b"{}").await.unwrap();
    let (status, head, _) = read_response(&mut client).await;
    assert_eq!(status, 200, "{head}");
    let seen = upstream.seen();
    assert!(
        seen.iter().all(|s| s.peer == seen[0].peer),
        "one lane: {seen:?}"
    );
}

/// A watch the client leaves closes its upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_the_client_leaves_closes_its_upstream_connection() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream.url, &[]).await;
    let mut client = proxy.connect().await;
    client
        .write_all(&request("GET", "/watch", &[], b""))
        .await
        .unwrap();
    let (status, head, _) = read_head(&mut client).await;
    assert_eq!(status, 200, "{head}");
    let mut chunk = [0u8; 256];
    let _ = client.read(&mut chunk).await.unwrap();
    assert_eq!(upstream.open.load(Ordering::SeqCst), 1);
    drop(client);
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while upstream.open.load(Ordering::SeqCst) != 0 {
        assert!(
            tokio::time::Instant::now() < until,
            "upstream connection left open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Graceful shutdown while a lane request waits for its answer: the answer still arrives (the
/// lane's driver is polled while the client connection drains).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_request_finishes_during_graceful_shutdown() {
    let upstream = Upstream::start().await;
    let mut proxy = Proxy::start(&upstream.url, &[]).await;
    let mut client = proxy.connect().await;
    client
        .write_all(&request("GET", "/slow", &[], b""))
        .await
        .unwrap();
    // Shut down once the request is upstream, waiting for its answer.
    let until = tokio::time::Instant::now() + DEADLINE;
    while upstream.seen().is_empty() {
        assert!(
            tokio::time::Instant::now() < until,
            "the request never reached upstream"
        );
        tokio::task::yield_now().await;
    }
    let running = proxy.running.take().unwrap();
    let shutdown = tokio::spawn(running.shutdown());
    let (status, head, body) = read_response(&mut client).await;
    assert_eq!(status, 200, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("/slow"));
    tokio::time::timeout(DEADLINE, shutdown)
        .await
        .unwrap()
        .unwrap();
}

/// Identity is per request, also on a lane: when the connection's caller changes (a whois answer
/// after --identity-ttl), the next request carries the new caller's impersonation, on the same
/// upstream connection (the API server authenticates every request on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_caller_reuses_the_lane_with_its_own_impersonation() {
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&upstream.url, &["--identity-ttl", "10ms"]).await;
    let mut client = proxy.connect().await;
    let (status, head, _) = get(&mut client, POD).await;
    assert_eq!(status, 200, "{head}");
    let mut table = WhoIsTable::new();
    table.insert("*", caller("legacy-cap"));
    proxy.localapi.replace_table(table);
    // Past --identity-ttl: the next request asks again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, head, _) = get(&mut client, POD).await;
    assert_eq!(status, 200, "{head}");
    let seen = upstream.seen();
    let users: Vec<_> = seen
        .iter()
        .map(|s| {
            s.headers
                .get("impersonate-user")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].peer, seen[1].peer, "same upstream connection");
    assert_ne!(users[0], users[1], "{users:?}");
}
