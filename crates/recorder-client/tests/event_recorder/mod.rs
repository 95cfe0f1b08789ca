//! A small in-test recorder for API events that counts what it sees (connections, probes, posts)
//! and answers as told, reachable over real TCP or over an in-memory network ([`MemNet`]) whose
//! dialer lets time-based cases run on Tokio's paused clock.
#![allow(dead_code, unreachable_pub, unused_imports)]

mod mem_net;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt as _, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use recorder_client::{
    ApiRequestEvent, EventDelivery, EventDestination, EventRequest, EventSendError, EventSender,
    EventSource,
};
use requestinfo::RequestInfo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use mem_net::{MemNet, Route};

/// An answer: whole, or a body that never ends.
type AnswerBody = Either<Full<Bytes>, Channel<Bytes>>;

/// Sends `count` events (ids `e-0`, `e-1`, ...) to `addr` at once, each from its own task, and
/// returns what each send came to, in id order.
pub async fn send_concurrently(
    sender: &EventSender,
    addr: SocketAddr,
    count: usize,
) -> Vec<Result<EventDelivery, EventSendError>> {
    let sends: Vec<_> = (0..count)
        .map(|i| {
            let sender = sender.clone();
            tokio::spawn(async move {
                sender
                    .send(&[addr], &request_event(&format!("e-{i}")))
                    .await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(count);
    for send in sends {
        results.push(send.await.expect("send task"));
    }
    results
}

/// A request event as the proxy sends it for `kubectl get pods`, with `id`.
pub fn request_event(id: &str) -> ApiRequestEvent {
    ApiRequestEvent {
        id: id.into(),
        timestamp: 1_714_564_800,
        user_agent: "kubectl/v1.32.0".into(),
        request: EventRequest {
            method: "GET".into(),
            path: "/api/v1/namespaces/default/pods?limit=500".into(),
            body: Some(Bytes::new()),
            query_parameters: BTreeMap::from([("limit".to_owned(), vec!["500".to_owned()])]),
            body_truncated: false,
            body_size: None,
        },
        kubernetes: RequestInfo {
            is_resource_request: true,
            path: "/api/v1/namespaces/default/pods".into(),
            verb: "list".into(),
            api_prefix: "api".into(),
            api_version: "v1".into(),
            namespace: "default".into(),
            resource: "pods".into(),
            parts: vec!["pods".into()],
            ..RequestInfo::default()
        },
        source: EventSource {
            node: "laptop.tail-scale.ts.net".into(),
            node_id: "nLaptop1CNTRL".into(),
            node_tags: Vec::new(),
            node_user_id: 12345,
            node_user: "alice@example.com".into(),
        },
        destination: EventDestination {
            node: "kube-proxy.tail-scale.ts.net".into(),
            node_id: "nProxyCNTRL".into(),
        },
    }
}

/// The ids of received request events, in order.
pub fn ids(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| {
            serde_json::from_slice::<ApiRequestEvent>(&r.body)
                .expect("event")
                .id
        })
        .collect()
}

/// The body of a refused `POST`: longer than the client keeps of it.
pub fn refusal_body() -> String {
    format!(r#"{{"error":"told to refuse {}"}}"#, "x".repeat(300))
}

/// One event as the recorder received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub content_type: Option<String>,
    pub host: Option<String>,
    pub body: Bytes,
}

#[derive(Debug)]
struct State {
    probe_status: AtomicU16,
    post_status: AtomicU16,
    /// Answer no `POST` (a recorder that hangs).
    hang_posts: AtomicBool,
    /// Drop the connection when this many `POST`s have arrived (0: never).
    drop_connection_at_post: AtomicUsize,
    /// Read and store the `POST` when this many have arrived, then drop the connection without
    /// answering (0: never).
    close_after_storing_post: AtomicUsize,
    /// Answer a stored event's `POST` with 200 and a body that never ends.
    hang_answer_bodies: AtomicBool,
    /// The senders of bodies that never end, kept so that they do not end.
    hung_bodies: Mutex<Vec<Sender<Bytes>>>,
    connections: AtomicUsize,
    open_connections: AtomicUsize,
    max_open_connections: AtomicUsize,
    heads: AtomicUsize,
    posts: AtomicUsize,
    received: Mutex<Vec<Received>>,
    /// Answer `HEAD /v2/events` with 200 and take `POST /v2/events` (else 404, as Tailscale's
    /// recorder does).
    offer_batches: AtomicBool,
    /// Announce this many events per batch at most in the probe's answer (0: no header, a 200
    /// that offers nothing).
    announce_max_batch_events: AtomicUsize,
    /// `HEAD /v2/events` seen, answered 200 or 404.
    batch_probes: AtomicUsize,
    /// The events of every `POST /v2/events`, as they arrived.
    batches: Mutex<Vec<Vec<Bytes>>>,
    /// A batch that arrived waits while this is true.
    hold_batches: tokio::sync::watch::Sender<bool>,
    /// Told each time a batch arrives.
    batch_arrived: tokio::sync::Notify,
    /// Ids of events to refuse in a batch (the others are stored).
    reject_ids: Mutex<Vec<String>>,
    /// Store each batch, then drop its connection without answering (a recorder that dies
    /// between its sync and its answer).
    die_after_storing_batches: AtomicBool,
}

/// A recorder that answers `HEAD /v2/event` and `POST /v2/event` with the statuses it is told
/// (200 and 200 at first) and counts.
#[derive(Clone, Debug)]
pub struct CountingRecorder {
    state: Arc<State>,
}

impl Default for CountingRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl CountingRecorder {
    pub fn new() -> Self {
        CountingRecorder {
            state: Arc::new(State {
                probe_status: AtomicU16::new(200),
                post_status: AtomicU16::new(200),
                hang_posts: AtomicBool::new(false),
                drop_connection_at_post: AtomicUsize::new(0),
                close_after_storing_post: AtomicUsize::new(0),
                hang_answer_bodies: AtomicBool::new(false),
                hung_bodies: Mutex::new(Vec::new()),
                connections: AtomicUsize::new(0),
                open_connections: AtomicUsize::new(0),
                max_open_connections: AtomicUsize::new(0),
                heads: AtomicUsize::new(0),
                posts: AtomicUsize::new(0),
                received: Mutex::new(Vec::new()),
                offer_batches: AtomicBool::new(false),
                announce_max_batch_events: AtomicUsize::new(0),
                batch_probes: AtomicUsize::new(0),
                batches: Mutex::new(Vec::new()),
                hold_batches: tokio::sync::watch::Sender::new(false),
                batch_arrived: tokio::sync::Notify::new(),
                reject_ids: Mutex::new(Vec::new()),
                die_after_storing_batches: AtomicBool::new(false),
            }),
        }
    }

    pub fn answer_probe(&self, status: StatusCode) {
        self.state
            .probe_status
            .store(status.as_u16(), Ordering::SeqCst);
    }

    pub fn answer_post(&self, status: StatusCode) {
        self.state
            .post_status
            .store(status.as_u16(), Ordering::SeqCst);
    }

    pub fn hang_posts(&self) {
        self.state.hang_posts.store(true, Ordering::SeqCst);
    }

    /// Drops the connection, unanswered, when the `n`-th `POST` arrives.
    pub fn drop_connection_at_post(&self, n: usize) {
        self.state
            .drop_connection_at_post
            .store(n, Ordering::SeqCst);
    }

    /// Stores the `n`-th `POST` (read whole), then drops the connection without answering: the
    /// event is stored, the client cannot know it.
    pub fn close_after_storing_post(&self, n: usize) {
        self.state
            .close_after_storing_post
            .store(n, Ordering::SeqCst);
    }

    /// Answers stored events with 200 and a body that never ends.
    pub fn hang_answer_bodies(&self, hang: bool) {
        self.state.hang_answer_bodies.store(hang, Ordering::SeqCst);
    }

    /// Takes batches (`/v2/events`), as kube-recorder does, announcing at most `max_events`
    /// events per batch (1024 when not given).
    pub fn offer_batches(&self, max_events: Option<usize>) {
        self.state.offer_batches.store(true, Ordering::SeqCst);
        self.state
            .announce_max_batch_events
            .store(max_events.unwrap_or(1024), Ordering::SeqCst);
    }

    /// Answers `HEAD /v2/events` with a bare 200 (no limits announced), as a server that answers
    /// 200 to any path would, and takes no batches.
    pub fn answer_batch_probe_without_offer(&self) {
        self.state.offer_batches.store(true, Ordering::SeqCst);
        self.state
            .announce_max_batch_events
            .store(0, Ordering::SeqCst);
    }

    /// Batches that arrive wait (`true`) until told otherwise.
    pub fn hold_batches(&self, hold: bool) {
        self.state.hold_batches.send_replace(hold);
    }

    /// Waits until a batch arrives (or one did since the last wait).
    pub async fn batch_arrived(&self) {
        self.state.batch_arrived.notified().await;
    }

    /// Refuses the event with id `id` when it comes in a batch.
    pub fn reject_in_batches(&self, id: &str) {
        self.state
            .reject_ids
            .lock()
            .expect("reject ids")
            .push(id.to_owned());
    }

    /// Stores every batch, then drops its connection unanswered.
    pub fn die_after_storing_batches(&self) {
        self.state
            .die_after_storing_batches
            .store(true, Ordering::SeqCst);
    }

    /// `HEAD /v2/events` probes seen.
    pub fn batch_probes(&self) -> usize {
        self.state.batch_probes.load(Ordering::SeqCst)
    }

    /// The number of events in each batch, in order of arrival.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.state
            .batches
            .lock()
            .expect("batches")
            .iter()
            .map(Vec::len)
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn max_open_connections(&self) -> usize {
        self.state.max_open_connections.load(Ordering::SeqCst)
    }

    pub fn heads(&self) -> usize {
        self.state.heads.load(Ordering::SeqCst)
    }

    pub fn posts(&self) -> usize {
        self.state.posts.load(Ordering::SeqCst)
    }

    /// The events answered 200.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("received").clone()
    }

    /// Listens on 127.0.0.1 and serves every connection; returns the address.
    pub async fn listen(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let this = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(this.clone().serve(stream));
            }
        });
        addr
    }

    /// Serves one HTTP/1.1 connection (keep-alive).
    pub async fn serve<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, io: I) {
        let state = Arc::clone(&self.state);
        state.connections.fetch_add(1, Ordering::SeqCst);
        let open = state.open_connections.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_open_connections.fetch_max(open, Ordering::SeqCst);
        let (kill_tx, mut kill_rx) = mpsc::unbounded_channel::<()>();
        let service = service_fn(move |request| {
            let this = self.clone();
            let kill = kill_tx.clone();
            async move { Ok::<_, Infallible>(this.handle(request, kill).await) }
        });
        let connection =
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
        tokio::select! {
            _ = connection => {}
            _ = kill_rx.recv() => {}
        }
        state.open_connections.fetch_sub(1, Ordering::SeqCst);
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
        kill: mpsc::UnboundedSender<()>,
    ) -> Response<AnswerBody> {
        let answer = |status: u16, body: String| {
            let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
            *response.status_mut() = StatusCode::from_u16(status).expect("status");
            response
        };
        let state = &self.state;
        match (request.method(), request.uri().path()) {
            (&Method::HEAD, "/v2/event") => {
                state.heads.fetch_add(1, Ordering::SeqCst);
                answer(state.probe_status.load(Ordering::SeqCst), String::new())
            }
            (&Method::POST, "/v2/event") => {
                let n = state.posts.fetch_add(1, Ordering::SeqCst) + 1;
                if state.drop_connection_at_post.load(Ordering::SeqCst) == n {
                    let _ = kill.send(());
                    std::future::pending::<()>().await;
                }
                if state.hang_posts.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                let header = |name: http::header::HeaderName| {
                    request
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let content_type = header(http::header::CONTENT_TYPE);
                let host = header(http::header::HOST);
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .expect("event body")
                    .to_bytes();
                let status = state.post_status.load(Ordering::SeqCst);
                if status != 200 {
                    return answer(status, refusal_body());
                }
                state.received.lock().expect("received").push(Received {
                    content_type,
                    host,
                    body,
                });
                if state.close_after_storing_post.load(Ordering::SeqCst) == n {
                    let _ = kill.send(());
                    std::future::pending::<()>().await;
                }
                if state.hang_answer_bodies.load(Ordering::SeqCst) {
                    let (sender, body) = Channel::new(1);
                    state.hung_bodies.lock().expect("hung bodies").push(sender);
                    return Response::new(Either::Right(body));
                }
                answer(200, String::new())
            }
            (&Method::HEAD, "/v2/events") => {
                state.batch_probes.fetch_add(1, Ordering::SeqCst);
                if !state.offer_batches.load(Ordering::SeqCst) {
                    return answer(404, String::new());
                }
                let mut response = answer(200, String::new());
                let max = state.announce_max_batch_events.load(Ordering::SeqCst);
                if max > 0 {
                    response
                        .headers_mut()
                        .insert("kap-max-batch-events", max.into());
                }
                response
            }
            (&Method::POST, "/v2/events")
                if state.offer_batches.load(Ordering::SeqCst)
                    && state.announce_max_batch_events.load(Ordering::SeqCst) > 0 =>
            {
                self.handle_batch(request, kill).await
            }
            _ => answer(404, String::new()),
        }
    }

    /// `POST /v2/events`: records the batch, waits while batches are held, stores the events not
    /// to be refused and answers as kube-recorder does.
    async fn handle_batch(
        &self,
        request: Request<Incoming>,
        kill: mpsc::UnboundedSender<()>,
    ) -> Response<AnswerBody> {
        let state = &self.state;
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = request
            .into_body()
            .collect()
            .await
            .expect("batch body")
            .to_bytes();
        let lines: Vec<Bytes> = body
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(Bytes::copy_from_slice)
            .collect();
        state.batches.lock().expect("batches").push(lines.clone());
        state.batch_arrived.notify_one();
        let mut held = state.hold_batches.subscribe();
        let _ = held.wait_for(|hold| !hold).await;
        let reject = state.reject_ids.lock().expect("reject ids").clone();
        let mut answer = castfmt::protocol::EventBatchAnswer::default();
        for (index, line) in lines.into_iter().enumerate() {
            let id = serde_json::from_slice::<ApiRequestEvent>(&line)
                .map(|e| e.id)
                .unwrap_or_default();
            if reject.contains(&id) {
                answer.rejected.push(castfmt::protocol::RejectedEvent {
                    index,
                    error: format!("told to refuse {id}"),
                });
                continue;
            }
            answer.stored += 1;
            state.received.lock().expect("received").push(Received {
                content_type: content_type.clone(),
                host: None,
                body: line,
            });
        }
        if state.die_after_storing_batches.load(Ordering::SeqCst) {
            let _ = kill.send(());
            std::future::pending::<()>().await;
        }
        Response::new(Either::Left(Full::new(Bytes::from(answer.encode()))))
    }
}
