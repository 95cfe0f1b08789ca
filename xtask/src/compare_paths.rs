//! The four ways from kubectl to the apiserver stand-in that the comparison benchmark measures
//! side by side, each with TLS from the client: direct, through nginx, through kube-auth-proxy
//! unrecorded, and through kube-auth-proxy recorded to kube-recorder.

use anyhow::{ensure, Context as _};
use e2e::kubectl::Kubectl;
use e2e::stack::{
    admin_caller, kubeconfig, RecordingGrant, Stack, StackOptions, UpstreamAuth, CALLER_TOKEN,
    PROXY_TOKEN,
};

use crate::exec_session::{Protocol, Watched};
use crate::nginx::{Nginx, Upstream};

/// Which path; also the row of the tables, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    /// kubectl straight to the stand-in.
    Direct,
    /// kubectl to nginx, nginx to the stand-in.
    Nginx,
    /// kubectl to kube-auth-proxy without a recording grant.
    Proxy,
    /// kubectl to kube-auth-proxy with `enforceRecorder`: every session recorded.
    Recorded,
}

impl PathKind {
    /// Every path, in table order; [`PathKind::index`] indexes this.
    pub(crate) const ALL: [PathKind; 4] = [
        PathKind::Direct,
        PathKind::Nginx,
        PathKind::Proxy,
        PathKind::Recorded,
    ];

    /// The position in [`PathKind::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The table's row label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct to the apiserver stand-in (TLS)",
            PathKind::Nginx => {
                "nginx as TLS reverse proxy (upgrades on, buffering off; TLS to the stand-in)"
            }
            PathKind::Proxy => "kube-auth-proxy, unrecorded",
            PathKind::Recorded => {
                "kube-auth-proxy, recorded to kube-recorder on the same machine (fail closed)"
            }
        }
    }
}

/// One path: how kubectl and testkit-load reach the stand-in through it.
#[derive(Debug)]
pub(crate) struct BenchPath {
    /// Which one.
    pub(crate) kind: PathKind,
    /// kubectl configured for it.
    pub(crate) kubectl: Kubectl,
    /// The processes on it whose CPU time sessions are charged with.
    pub(crate) watched: Watched,
    /// The `https://` URL and `Authorization` header of the GET load; `None`: not measured.
    pub(crate) load: Option<(String, String)>,
}

/// Everything the comparison runs against, stopped on drop: two stacks (one with a recorder and
/// an `enforceRecorder` grant), each with its own stand-in serving TLS, and nginx in front of
/// the first stack's stand-in.
#[derive(Debug)]
pub(crate) struct Paths {
    /// The four paths, in [`PathKind::ALL`] order.
    pub(crate) paths: Vec<BenchPath>,
    /// Before the stacks, so that it stops first (fields drop in order): it forwards to
    /// `plain`'s stand-in.
    pub(crate) nginx: Nginx,
    /// Direct, nginx and the unrecorded proxy lead to this stack's stand-in.
    pub(crate) plain: Stack,
    /// The recorded proxy and its own stand-in and recorder.
    pub(crate) recorded: Stack,
}

impl Paths {
    /// Starts the stacks and nginx, describes the four paths and checks that each works.
    pub(crate) fn start() -> anyhow::Result<Paths> {
        let whois = admin_caller()?;
        let options = |recording| {
            let mut options = StackOptions::for_caller(whois.clone());
            // TLS to the stand-in, as to a real apiserver: CA data and a token file, as an
            // in-cluster kubeconfig has them. kubectl's direct path uses the same kubeconfig.
            options.upstream = UpstreamAuth::TlsCaDataTokenFile;
            options.recording = recording;
            // What a deployment logs (the tests' per-request debug lines would be measured too).
            options.proxy_log = "info".into();
            options
        };
        let plain = Stack::start(options(None))?;
        let recorded = Stack::start(options(Some(RecordingGrant::ENFORCED)))?;
        let nginx = Nginx::start(&Upstream {
            addr: plain
                .apiserver_url
                .trim_start_matches("https://")
                .to_owned(),
            ca: plain.dir.join("pki/ca.crt"),
        })?;

        let nginx_kubeconfig = plain.dir.join("nginx.kubeconfig");
        // nginx serves a throwaway self-signed certificate, as the stack's proxy does: kubectl
        // skips verification for both.
        std::fs::write(
            &nginx_kubeconfig,
            kubeconfig(&nginx.url, Some(PROXY_TOKEN), true),
        )
        .with_context(|| format!("writing {}", nginx_kubeconfig.display()))?;
        let own_home = |kubectl: Kubectl, name: &str| Kubectl {
            home: plain.kubectl.home.join(name),
            ..kubectl
        };
        let bearer = |token: &str| format!("Authorization: Bearer {token}");
        let pod = |base: &str| format!("{base}{}", crate::compare_bench::GET_PATH);
        let ends = |stack: &Stack| Watched {
            standin: stack.apiserver.pid(),
            ..Watched::default()
        };
        let paths = vec![
            BenchPath {
                kind: PathKind::Direct,
                kubectl: plain.kubectl.direct(&plain.upstream_kubeconfig),
                watched: ends(&plain),
                load: Some((pod(&plain.apiserver_url), bearer(PROXY_TOKEN))),
            },
            BenchPath {
                kind: PathKind::Nginx,
                kubectl: own_home(plain.kubectl.direct(&nginx_kubeconfig), "nginx"),
                watched: ends(&plain),
                load: Some((pod(&nginx.url), bearer(PROXY_TOKEN))),
            },
            BenchPath {
                kind: PathKind::Proxy,
                kubectl: plain.kubectl.clone(),
                watched: Watched {
                    proxy: plain.proxy.pid().into_iter().collect(),
                    ..ends(&plain)
                },
                // The caller's own token, as kubectl sends it; the proxy drops it.
                load: Some((pod(&plain.proxy_url), bearer(CALLER_TOKEN))),
            },
            BenchPath {
                kind: PathKind::Recorded,
                kubectl: recorded.kubectl.clone(),
                watched: Watched {
                    proxy: recorded.proxy.pid().into_iter().collect(),
                    recorder: recorded.recorder.as_ref().and_then(|r| r.pid()),
                    ..ends(&recorded)
                },
                load: None,
            },
        ];
        let mut paths = Paths {
            paths,
            plain,
            recorded,
            nginx,
        };
        paths.check_reachable()?;
        // nginx's workers are certain to run once it has served kubectl.
        let nginx_pids = paths.nginx.pids()?;
        paths.paths[PathKind::Nginx.index()].watched.proxy = nginx_pids;
        Ok(paths)
    }

    /// The stack whose stand-in a path leads to.
    pub(crate) fn stack_of(&self, kind: PathKind) -> &Stack {
        match kind {
            PathKind::Recorded => &self.recorded,
            _ => &self.plain,
        }
    }

    /// Every process's logs, for failure messages.
    pub(crate) fn logs(&self) -> String {
        let recorder = self
            .recorded
            .recorder
            .as_ref()
            .map(|recorder| recorder.log_text())
            .unwrap_or_default();
        format!(
            "=== stack ===\n{}\n=== recorded stack ===\n{}\n--- recorder ---\n{recorder}\n--- nginx ---\n{}",
            self.plain.logs(),
            self.recorded.logs(),
            self.nginx.logs()
        )
    }

    /// A check before measuring: `kubectl get pod demo` through every path, which also fills
    /// kubectl's discovery cache so the first session does not pay for it.
    fn check_reachable(&self) -> anyhow::Result<()> {
        for path in &self.paths {
            path.kubectl
                .run(&["get", "pod", "demo", "-o", "name"])?
                .expect_success(path.kind.label())
                .map_err(|error| anyhow::anyhow!("{error:#}\n{}", self.logs()))?;
        }
        Ok(())
    }
}

/// Checks in a stand-in's request log that every exec upgrade it received succeeded (101) and
/// that it received `sessions` of each protocol: kubectl falls back from WebSocket to SPDY when
/// an upgrade fails, which would otherwise go unnoticed and measure the wrong protocol.
pub(crate) fn check_upgrades(stack: &Stack, sessions: usize) -> anyhow::Result<()> {
    let requests = stack.upstream_requests()?;
    let exec: Vec<_> = requests
        .iter()
        .filter(|request| {
            request["path"]
                .as_str()
                .is_some_and(|path| path.contains("/exec?"))
        })
        .collect();
    for protocol in Protocol::ALL {
        let upgraded = exec
            .iter()
            .filter(|r| r["method"] == protocol.upgrade_method() && r["status"] == 101)
            .count();
        ensure!(
            upgraded == sessions && exec.len() == 2 * sessions,
            "the stand-in saw {upgraded} {} exec upgrades for {sessions} sessions (every exec \
             request: {})",
            protocol.name(),
            serde_json::to_string(&exec)?
        );
    }
    Ok(())
}
