//! The proxy in-process (`kube_auth_proxy::start`) in front of testkit's stand-ins (an apiserver
//! running real processes for exec, a tailscaled LocalAPI) and an in-process `kube-recorder`,
//! with a raw TLS client: what only the proxy's own code decides, tested without kubectl.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use recorder_server::{RecorderServer, RecordingMeta, ServerOptions};
use serde_json::{json, Value};
use sessiontap::{ExitStatus, OwnedSessionEvent, Protocol, SessionTap, TapLimits};
use testkit::apiserver::{ApiServer, ApiServerConfig, ServeOptions};
use testkit::localapi_standin::{LocalApiStandIn, StandInOptions, WhoIsTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long any one wait in these tests may take before it fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// What the caller's grant says about recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// No recording rule.
    Unrecorded,
    /// Sessions recorded to the harness's recorder, failing closed.
    Enforced,
    /// Sessions and API events recorded, failing closed.
    EnforcedWithEvents,
}

/// Everything running, stopped on drop.
pub(crate) struct Harness {
    pub(crate) proxy: Option<kube_auth_proxy::RunningProxy>,
    pub(crate) apiserver: ApiServer,
    pub(crate) localapi: LocalApiStandIn,
    pub(crate) recorder: Option<RecorderServer>,
    pub(crate) recordings: PathBuf,
    _dir: tempfile::TempDir,
}

/// The WhoIs fixture `testdata/whois/NAME.json` of the repository.
pub(crate) fn whois(name: &str) -> Value {
    let path = format!(
        "{}/../../testdata/whois/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

impl Harness {
    /// The stack for a caller with `whois` (None: the caller is unknown) and `grant`.
    pub(crate) async fn start(whois: Option<Value>, grant: Grant) -> Harness {
        Harness::start_with(whois, grant, StandInOptions::default()).await
    }

    /// The same, with the LocalAPI stand-in configured by `localapi_options`.
    pub(crate) async fn start_with(
        whois: Option<Value>,
        grant: Grant,
        localapi_options: StandInOptions,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config =
            ApiServerConfig::from_yaml_str(include_str!("../fixtures/apiserver.yaml")).unwrap();
        let apiserver = ApiServer::start(config, ServeOptions::default())
            .await
            .unwrap();
        let recordings = dir.path().join("recordings");
        let recorder = match grant {
            Grant::Unrecorded => None,
            Grant::Enforced | Grant::EnforcedWithEvents => {
                let mut options = ServerOptions::new(([127, 0, 0, 1], 0).into(), &recordings);
                // Stopping it cuts uploads at once: the tests stop it to lose the recording.
                options.shutdown_grace = Duration::ZERO;
                Some(RecorderServer::start(options).await.unwrap())
            }
        };
        let mut table = WhoIsTable::new();
        if let Some(mut whois) = whois {
            if let Some(recorder) = &recorder {
                let rule = json!({
                    "recorderAddrs": [recorder.addr().to_string()],
                    "enforceRecorder": true,
                    "enableEvents": grant == Grant::EnforcedWithEvents,
                });
                whois["CapMap"]["tailscale.com/cap/kubernetes"] = json!([rule]);
            } else {
                whois["CapMap"] = json!({});
            }
            table.insert("*", whois);
        }
        let socket = dir.path().join("tailscaled.sock");
        let localapi = LocalApiStandIn::start(&socket, table, localapi_options)
            .await
            .unwrap();
        let kubeconfig = dir.path().join("upstream.kubeconfig");
        std::fs::write(&kubeconfig, upstream_kubeconfig(&apiserver.url())).unwrap();
        let cli = kube_auth_proxy::Cli::try_parse_from([
            "kube-auth-proxy",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            "--mode",
            "auth",
            "--upstream-kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--localapi-socket",
            socket.to_str().unwrap(),
        ])
        .unwrap();
        let proxy = kube_auth_proxy::start(cli).await.unwrap();
        Harness {
            proxy: Some(proxy),
            apiserver,
            localapi,
            recorder,
            recordings,
            _dir: dir,
        }
    }

    /// A TLS connection to the proxy.
    pub(crate) async fn connect(&self) -> TlsStream<TcpStream> {
        let addr = self.proxy.as_ref().unwrap().listen();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let config =
            testkit::load::client_config(&testkit::load::ServerTrust::AnyCertificate).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap()
    }

    /// The recordings the recorder finished, waiting (up to [`DEADLINE`]) for `count`.
    pub(crate) async fn finished_recordings(&self, count: usize) -> Vec<RecordingMeta> {
        let store = self.recorder.as_ref().unwrap().store();
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            let done: Vec<_> = store
                .list()
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.finished_at.is_some())
                .collect();
            if done.len() >= count || tokio::time::Instant::now() > until {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The requests upstream received whose path starts with `prefix`.
    pub(crate) fn upstream_paths(&self, prefix: &str) -> Vec<String> {
        self.apiserver
            .requests()
            .into_iter()
            .map(|r| r.path)
            .filter(|p| p.starts_with(prefix))
            .collect()
    }
}

fn upstream_kubeconfig(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
         users:\n- name: u\n  user:\n    token: proxy-token\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n"
    )
}

/// An HTTP/1.1 request head (and body) as bytes.
pub(crate) fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads a response head; returns its status, its text and the bytes read after it.
pub(crate) async fn read_head(stream: &mut TlsStream<TcpStream>) -> (u16, String, Vec<u8>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..at]).into_owned();
            let status = head.split(' ').nth(1).unwrap().parse().unwrap();
            return (status, head, buffer[at + 4..].to_vec());
        }
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed before a response head: {buffer:?}");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Reads a whole response with a `Content-Length` body.
pub(crate) async fn read_response(stream: &mut TlsStream<TcpStream>) -> (u16, String, Vec<u8>) {
    let (status, head, mut body) = read_head(stream).await;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut chunk = [0u8; 16 * 1024];
    while body.len() < length {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    (status, head, body)
}

/// What the client of a session saw, read with a session tap of its own.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// stdout and stderr, concatenated in order.
    pub(crate) output: Vec<u8>,
    /// The exit status, when one came.
    pub(crate) exit: Option<ExitStatus>,
}

/// Follows a session as its client: `client_setup` (already sent) and every server byte from
/// `first` on, until the exit status arrives or the server closes. `on_output` is called after
/// each read that brought output, with everything seen so far.
pub(crate) async fn follow_session(
    stream: &mut TlsStream<TcpStream>,
    protocol: Protocol,
    client_setup: &[u8],
    first: Vec<u8>,
    mut on_output: impl FnMut(&Seen),
) -> Seen {
    let mut tap = SessionTap::new(protocol, TapLimits::default());
    let mut seen = Seen::default();
    let record = |event: sessiontap::SessionEvent<'_>, seen: &mut Seen| match event.to_owned_event()
    {
        OwnedSessionEvent::Output { bytes, .. } => seen.output.extend(bytes),
        OwnedSessionEvent::Exit { status } => seen.exit = Some(status),
        _ => {}
    };
    tap.client_bytes(client_setup, &mut |e| record(e, &mut seen))
        .unwrap();
    tap.server_bytes(&first, &mut |e| record(e, &mut seen))
        .unwrap();
    let mut chunk = vec![0u8; 64 * 1024];
    while seen.exit.is_none() {
        let before = seen.output.len();
        let n = match tokio::time::timeout(DEADLINE, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0,
            Err(_) => panic!("the session neither ended nor sent anything for {DEADLINE:?}"),
        };
        if n == 0 {
            tap.finish(&mut |e| record(e, &mut seen));
            break;
        }
        tap.server_bytes(&chunk[..n], &mut |e| record(e, &mut seen))
            .unwrap_or_else(|error| panic!("the client could not read the session: {error}"));
        if seen.output.len() > before {
            on_output(&seen);
        }
    }
    let _ = stream.shutdown().await;
    seen
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The runtime may already be gone; what is left is stopped by dropping it.
        drop(self.proxy.take());
    }
}
