//! The listener: accepts connections (TLS or plain), records the client certificate of each, and
//! serves HTTP/1.1 (with upgrades) through the router until shut down.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::config::{ApiServerConfig, PodConfig};
use super::pki::{ClientCertPem, Pki};
use super::pods::object::manifest_from_config;
use super::pods::StoreError;
use super::request_log::RecordedRequest;
use super::router::router;
use super::state::{AppState, ConnectionInfo, SharedState};
use super::x509_subject::cert_subject;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head that takes longer than this to arrive ends the connection.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated CA (and verify optional client certificates against it).
    pub tls: bool,
    /// With `tls`, write `ca.crt` and the client certificates (`NAME.crt`, `NAME.key`) here.
    pub pki_dir: Option<PathBuf>,
    /// With `tls`, serve a self-signed `CA:TRUE` certificate (as `openssl req -x509` makes)
    /// instead of one signed by the generated CA; `ca.crt` is then that certificate.
    pub self_signed_ca: bool,
}

impl Default for ServeOptions {
    /// Plain HTTP on a free port of 127.0.0.1.
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            pki_dir: None,
            self_signed_ca: false,
        }
    }
}

impl ServeOptions {
    /// HTTPS on a free port of 127.0.0.1, PKI kept in memory.
    pub fn tls() -> Self {
        ServeOptions {
            tls: true,
            ..ServeOptions::default()
        }
    }
}

/// A running stand-in apiserver. Dropping it stops the server too; [`ApiServer::shutdown`] also
/// waits for it.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    tls: bool,
    ca_pem: Option<String>,
    client_certs: BTreeMap<String, ClientCertPem>,
    state: SharedState,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Validates `config`, binds, and starts serving in the background.
    pub async fn start(
        config: ApiServerConfig,
        options: ServeOptions,
    ) -> anyhow::Result<ApiServer> {
        if options.pki_dir.is_some() && !options.tls {
            anyhow::bail!("pki_dir (--pki-dir) is only used with tls (--tls)");
        }
        let state = Arc::new(AppState::new(&config)?);
        let (acceptor, ca_pem, client_certs) = if options.tls {
            let pki = Pki::generate(&config.client_certs, options.self_signed_ca)?;
            if let Some(dir) = &options.pki_dir {
                pki.write_to(dir)?;
            }
            let acceptor = TlsAcceptor::from(super::tls::server_config(&pki)?);
            (
                Some(acceptor),
                Some(pki.trust_pem.clone()),
                pki.client_certs.into_iter().collect(),
            )
        } else {
            (None, None, BTreeMap::new())
        };
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|e| anyhow::anyhow!("--listen {}: {e}", options.listen))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            router(state.clone()),
            acceptor,
            stopped,
        ));
        tracing::info!(%addr, tls = options.tls, "testkit apiserver listening");
        Ok(ApiServer {
            addr,
            tls: options.tls,
            ca_pem,
            client_certs,
            state,
            stop,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA certificate (PEM) that signed the server and client certificates, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A configured client certificate (`clientCerts[].name`), when serving TLS.
    pub fn client_cert(&self, name: &str) -> Option<&ClientCertPem> {
        self.client_certs.get(name)
    }

    /// Every request received so far (the last 10,000), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.log.snapshot()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.state.log.clear();
    }

    /// Adds a pod (creating its namespace if needed) and fires `ADDED` to watchers.
    pub fn add_pod(&self, pod: &PodConfig) -> Result<Value, StoreError> {
        super::hooks::add_pod(&self.state, manifest_from_config(pod))
    }

    /// Adds a pod from a pod object, as `POST /testkit/pods` does.
    pub fn add_pod_object(&self, pod: Value) -> Result<Value, StoreError> {
        super::hooks::add_pod(&self.state, pod)
    }

    /// Deletes a pod and fires `DELETED` to watchers.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> Result<Value, StoreError> {
        Ok(self.state.store.delete_pod(namespace, name)?.object.clone())
    }

    /// Stops accepting, closes every connection (watches and exec/attach sessions included),
    /// ends every process it started, and waits for all that.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.state.remote.shutdown().await;
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // Ends the accept loop, which aborts the connections, and the exec/attach sessions,
        // which kills their processes.
        let _ = self.stop.send(true);
        self.state.remote.abort_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(handle_connection(stream, router.clone(), tls.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn handle_connection(stream: TcpStream, router: Router, tls: Option<TlsAcceptor>) {
    let local_addr = stream.local_addr().ok();
    let peer_addr = stream.peer_addr().ok();
    // Watch events are small writes that must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = tls else {
        serve_http(
            stream,
            ConnectionInfo {
                client_cert: None,
                local_addr,
                peer_addr,
            },
            router,
        )
        .await;
        return;
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let client_cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|c| cert_subject(c));
    serve_http(
        stream,
        ConnectionInfo {
            client_cert,
            local_addr,
            peer_addr,
        },
        router,
    )
    .await;
}

async fn serve_http<I>(io: I, info: ConnectionInfo, router: Router)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(info.clone());
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
