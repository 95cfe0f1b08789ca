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

mod handlers;
mod table;

use handlers::State;
pub use table::WhoIsTable;

use std::convert::Infallible;
use std::net::IpAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

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
    /// The socket's accept backlog (`listen(2)`): small values make a burst of clients meet
    /// `EAGAIN`, as a busy tailscaled's socket can.
    pub accept_backlog: i32,
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
            accept_backlog: 1024,
        }
    }
}

/// A Unix socket listener at `path` with the given accept backlog (tokio's own `bind` fixes it).
fn listen(path: &Path, backlog: i32) -> std::io::Result<UnixListener> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    UnixListener::from_std(std::os::unix::net::UnixListener::from(
        std::os::fd::OwnedFd::from(socket),
    ))
}

/// A running stand-in. Stops on [`LocalApiStandIn::shutdown`] or when dropped, removing its socket.
#[derive(Debug)]
pub struct LocalApiStandIn {
    socket: PathBuf,
    state: Arc<State>,
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
        let listener = listen(socket, options.accept_backlog)
            .with_context(|| format!("listening on {}", socket.display()))?;
        let state = Arc::new(State::new(table, options));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, state.clone(), stopped));
        Ok(Self {
            socket: socket.to_path_buf(),
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Answers whois from `table` from now on, as tailscaled does when the tailnet's grants change.
    pub fn replace_table(&self, table: WhoIsTable) {
        self.state.replace_table(table);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::handlers::{percent_decode, valid_host};
    use super::*;
    use serde_json::json;

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
