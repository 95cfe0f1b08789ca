//! Shared by the exec/attach tests: a stand-in apiserver with a private kubectl environment, the
//! two transports kubectl can use, kubectl under a pseudo-terminal, deadline-bounded reads, and
//! (in [`raw`]) a raw client for the upgrade.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use testkit::apiserver::{ApiServer, ApiServerConfig, RecordedRequest, ServeOptions};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

pub(crate) mod raw;

pub(crate) const KUBECTL: &str = "/usr/bin/kubectl";
/// Bounds every wait, so that a hang fails the test instead of stalling the suite.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// How kubectl talks to exec/attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// kubectl 1.32's default: `GET` with `Upgrade: websocket`.
    WebSocket,
    /// `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`: `POST` with `Upgrade: SPDY/3.1`.
    Spdy,
}

impl Transport {
    pub(crate) const BOTH: [Transport; 2] = [Transport::WebSocket, Transport::Spdy];

    /// `KUBECTL_REMOTE_COMMAND_WEBSOCKETS`.
    pub(crate) fn env(self) -> &'static str {
        match self {
            Transport::WebSocket => "true",
            Transport::Spdy => "false",
        }
    }

    /// The method of the upgrade request.
    pub(crate) fn method(self) -> &'static str {
        match self {
            Transport::WebSocket => "GET",
            Transport::Spdy => "POST",
        }
    }
}

/// A server plus a private kubectl environment for it.
pub(crate) struct Kubectl {
    pub(crate) server: ApiServer,
    pub(crate) dir: tempfile::TempDir,
}

impl Kubectl {
    /// Serves `config_yaml` (over TLS when `tls`, where kubectl sends `token`).
    pub(crate) async fn start(config_yaml: &str, tls: bool, token: &str) -> Kubectl {
        assert!(
            Path::new(KUBECTL).exists(),
            "{KUBECTL} is missing: these tests need the real kubectl (v1.32 dispatcher) installed"
        );
        let config = ApiServerConfig::from_yaml_str(config_yaml).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let options = ServeOptions {
            tls,
            pki_dir: tls.then(|| pki.clone()),
            ..ServeOptions::default()
        };
        let server = ApiServer::start(config, options).await.unwrap();
        let ca_line = if tls {
            format!(
                "    certificate-authority: {}\n",
                pki.join("ca.crt").display()
            )
        } else {
            String::new()
        };
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\n{ca_line}\
             users:\n- name: caller\n  user:\n    token: {token}\n\
             contexts:\n- name: standin\n  context: {{cluster: standin, user: caller, namespace: default}}\n\
             current-context: standin\n",
            server.url()
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Kubectl { server, dir }
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec![
            "--kubeconfig".to_owned(),
            self.path("kubeconfig").display().to_string(),
            "--cache-dir".to_owned(),
            self.path("cache").display().to_string(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all
    }

    fn env(&self, transport: Transport) -> Vec<(&'static str, String)> {
        vec![
            (
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            ("HOME", self.path("home").display().to_string()),
            ("KUBECACHEDIR", self.path("cache").display().to_string()),
            ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", transport.env().into()),
        ]
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// kubectl with `args`, stdin from /dev/null, killed when dropped.
    pub(crate) fn command(&self, transport: Transport, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.args(self.args(args))
            .env_clear()
            .envs(self.env(transport))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl to its end and returns what it did.
    pub(crate) async fn run(&self, transport: Transport, args: &[&str]) -> Output {
        self.run_with(self.command(transport, args)).await
    }

    /// Runs a prepared kubectl command to its end.
    pub(crate) async fn run_with(&self, mut cmd: Command) -> Output {
        let output = tokio::time::timeout(PATIENCE, cmd.output())
            .await
            .expect("kubectl finished in time")
            .unwrap();
        eprintln!(
            "kubectl exited {:?}; stderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// kubectl under a new pseudo-terminal of `rows` x `cols`, as a user at a terminal runs it.
    pub(crate) fn terminal(
        &self,
        transport: Transport,
        args: &[&str],
        rows: u16,
        cols: u16,
    ) -> Terminal {
        let (pty, pts) = pty_process::open().unwrap();
        pty.resize(pty_process::Size::new(rows, cols)).unwrap();
        let child = pty_process::Command::new(KUBECTL)
            .args(self.args(args))
            .env_clear()
            .envs(self.env(transport))
            .env("TERM", "xterm")
            .kill_on_drop(true)
            .spawn(pts)
            .unwrap();
        Terminal {
            pty,
            child,
            seen: Vec::new(),
            from: 0,
        }
    }

    /// The exec/attach requests the server received.
    pub(crate) fn sessions(&self) -> Vec<RecordedRequest> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| {
                let path = r.path.split('?').next().unwrap_or_default();
                path.ends_with("/exec") || path.ends_with("/attach")
            })
            .collect()
    }

    /// Asserts that every exec/attach request used `transport` and was upgraded (no fallback),
    /// and returns how many there were.
    pub(crate) fn assert_sessions_used(&self, transport: Transport) -> usize {
        let sessions = self.sessions();
        for r in &sessions {
            assert_eq!(
                (r.method.as_str(), r.status),
                (transport.method(), 101),
                "{r:?}"
            );
        }
        sessions.len()
    }
}

/// kubectl running under a pseudo-terminal.
pub(crate) struct Terminal {
    pub(crate) pty: pty_process::Pty,
    pub(crate) child: tokio::process::Child,
    /// Everything read from the terminal so far.
    pub(crate) seen: Vec<u8>,
    /// Where the next `expect` starts looking.
    from: usize,
}

impl Terminal {
    /// Types `text`.
    pub(crate) async fn type_text(&mut self, text: &str) {
        self.pty.write_all(text.as_bytes()).await.unwrap();
    }

    /// Reads until `needle` appears after what earlier calls consumed; returns the text up to
    /// and including it.
    pub(crate) async fn expect(&mut self, needle: &str) -> String {
        let found = read_until(&mut self.pty, &mut self.seen, self.from, needle.as_bytes()).await;
        let Some(end) = found else {
            panic!(
                "terminal never showed {needle:?}; it showed {:?}",
                String::from_utf8_lossy(&self.seen[self.from..])
            );
        };
        let text = String::from_utf8_lossy(&self.seen[self.from..end]).into_owned();
        self.from = end;
        text
    }

    /// Changes the terminal's size (kubectl gets SIGWINCH).
    pub(crate) fn resize(&self, rows: u16, cols: u16) {
        self.pty.resize(pty_process::Size::new(rows, cols)).unwrap();
    }

    /// Waits for kubectl to exit and returns its exit code.
    pub(crate) async fn wait(&mut self) -> Option<i32> {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("kubectl exited in time")
            .unwrap()
            .code()
    }
}

/// Reads `source` into `seen` until `needle` occurs at or after `from`, or the source ends, or
/// [`PATIENCE`] runs out. Returns the end of the match.
pub(crate) async fn read_until<R: AsyncRead + Unpin>(
    source: &mut R,
    seen: &mut Vec<u8>,
    from: usize,
    needle: &[u8],
) -> Option<usize> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let find = |seen: &[u8]| {
        seen.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|at| from + at + needle.len())
    };
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = find(seen) {
            return Some(end);
        }
        match tokio::time::timeout_at(deadline, source.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            // End of file, EIO from a terminal whose process has gone, or the deadline.
            _ => return None,
        }
    }
}

/// `len` bytes that do not repeat in any short period (xorshift), for byte-exact copies.
pub(crate) fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}
