//! The whole stack: apiserver stand-in, LocalAPI stand-in and the proxy, each a real process.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, Context as _};
use serde_json::{json, Value};

use crate::binaries::{binary, kubectl_path, workspace_root};
use crate::http;
use crate::kubectl::Kubectl;
use crate::process::{listening_address, Service};

/// The token the proxy uses upstream; the stand-in lets it impersonate.
pub const PROXY_TOKEN: &str = "proxy-token";
/// The user the stand-in maps [`PROXY_TOKEN`] to.
pub const PROXY_USER: &str = "system:serviceaccount:tailscale:kube-auth-proxy";
/// The caller's own token, written into the caller's kubeconfig: in auth mode it must never reach
/// upstream; in noauth mode it is what upstream authenticates.
pub const CALLER_TOKEN: &str = "caller-own-token";
/// The user the stand-in maps [`CALLER_TOKEN`] to.
pub const CALLER_TOKEN_USER: &str = "caller-own-token-user";
/// The viewer token of the stack's `kube-recorder` (every namespace): reading its API needs it.
/// `kube-recorder ls|play|events|capture --server` take it as `KUBE_RECORDER_TOKEN`.
pub const RECORDER_VIEWER_TOKEN: &str = "e2e-recorder-viewer-token";

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// `auth` or `noauth`.
    pub mode: String,
    /// The LocalAPI stand-in's table: key (`ip:port`, `ip` or `*`) to WhoIs JSON.
    pub whois: Value,
    /// The apiserver stand-in's YAML config.
    pub apiserver_config: String,
    /// Extra proxy flags.
    pub proxy_args: Vec<String>,
    /// Keep the files here instead of a temporary directory (the demo).
    pub dir: Option<PathBuf>,
    /// Where the proxy's serving certificate comes from.
    pub tls: ServingTls,
    /// How the proxy reaches and authenticates to the apiserver stand-in.
    pub upstream: UpstreamAuth,
    /// Start a `kube-recorder` and grant the caller recording to it.
    pub recording: Option<RecordingGrant>,
    /// Extra `kube-recorder serve` flags (with [`recording`](Self::recording)).
    pub recorder_args: Vec<String>,
    /// Point the proxy at this `http://` URL instead of the apiserver stand-in (which still
    /// starts): for upstreams that misbehave in ways the stand-in does not.
    pub upstream_override: Option<String>,
    /// The proxy's `RUST_LOG`. Tests log the proxy's debug lines (one per request, kept for
    /// failure messages); benchmarks use the default a deployment has, `info`.
    pub proxy_log: String,
}

/// A recording grant added to the caller's capabilities, naming the stack's `kube-recorder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingGrant {
    /// `enforceRecorder`: fail closed.
    pub enforce: bool,
    /// List an address where nothing listens before the live recorder.
    pub dead_recorder_first: bool,
    /// Start no recorder at all: every listed address is dead.
    pub all_dead: bool,
    /// The recorder serves only protocol v1 (`kube-recorder serve --v1-only`).
    pub v1_only: bool,
    /// `enableEvents`: every API request is recorded as an event.
    pub events: bool,
    /// The recorder does not support events (`kube-recorder serve --no-events`: 404 to the probe).
    pub recorder_without_events: bool,
    /// `recordInput`: stdin is recorded (`i` events; in a tty session what the terminal echoes).
    pub record_input: bool,
    /// `recordPortForwardData`: the bytes of each port-forward connection are stored as a capture.
    pub record_port_forward_data: bool,
}

impl RecordingGrant {
    /// One live recorder, recording enforced (fail closed), no events: the base the other grants
    /// are written against (`RecordingGrant { events: true, ..RecordingGrant::ENFORCED }`).
    pub const ENFORCED: RecordingGrant = RecordingGrant {
        enforce: true,
        dead_recorder_first: false,
        all_dead: false,
        v1_only: false,
        events: false,
        recorder_without_events: false,
        record_input: false,
        record_port_forward_data: false,
    };
}

/// The upstream kubeconfig the proxy gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// `http://` with an inline bearer token.
    HttpToken,
    /// `https://` with `certificate-authority` and `client-certificate`/`client-key` files.
    TlsClientCertFiles,
    /// `https://` with `certificate-authority-data` and a `tokenFile` ([`Stack::token_file`]).
    TlsCaDataTokenFile,
    /// `https://` to a stand-in serving a self-signed `CA:TRUE` certificate (as
    /// `openssl req -x509` makes), trusted as `certificate-authority`, with a token.
    TlsSelfSignedCa,
    /// The same server, but the kubeconfig trusts a different self-signed certificate.
    TlsForeignSelfSignedCa,
}

/// A second token the stand-in accepts for the proxy, to show token file rotation.
pub const ROTATED_PROXY_TOKEN: &str = "rotated-proxy-token";
/// The user of [`ROTATED_PROXY_TOKEN`].
pub const ROTATED_PROXY_USER: &str = "system:serviceaccount:tailscale:kube-auth-proxy-rotated";
/// The harness's own token for the stand-in's test hooks.
pub const HARNESS_TOKEN: &str = "e2e-harness-token";
/// The user of the proxy's client certificate.
pub const PROXY_CERT_USER: &str = "kube-auth-proxy-cert";

/// The proxy's certificate source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingTls {
    /// `--tls-self-signed`; kubectl skips verification.
    SelfSigned,
    /// `--tls-from-tailscale`; kubectl verifies against the certificate the LocalAPI stand-in issued
    /// for [`TAILNET_NAME`].
    FromTailscale,
}

/// The proxy's name in the stand-in tailnet (the LocalAPI stand-in's default certificate domain).
pub const TAILNET_NAME: &str = "proxy.tail1a2b3.ts.net";

impl StackOptions {
    /// Auth mode with `whois` answering every caller.
    pub fn for_caller(whois: Value) -> StackOptions {
        StackOptions {
            mode: "auth".into(),
            whois: json!({ "*": whois }),
            apiserver_config: default_apiserver_config(0),
            proxy_args: Vec::new(),
            dir: None,
            tls: ServingTls::SelfSigned,
            upstream: UpstreamAuth::HttpToken,
            recording: None,
            recorder_args: Vec::new(),
            upstream_override: None,
            proxy_log: "info,kube_auth_proxy=debug".into(),
        }
    }
}

/// The stand-in apiserver's configuration: the proxy's and the caller's tokens, a `demo` pod, and
/// `bulk_pods` generated pods in namespace `bulk`.
pub fn default_apiserver_config(bulk_pods: usize) -> String {
    format!(
        r#"version: v1.32.4
tokens:
  - token: {PROXY_TOKEN}
    user: "{PROXY_USER}"
    groups: ["system:serviceaccounts", "system:serviceaccounts:tailscale"]
    impersonate: true
  - token: {CALLER_TOKEN}
    user: {CALLER_TOKEN_USER}
    groups: [callers]
  - token: {HARNESS_TOKEN}
    user: e2e-harness
  - token: {ROTATED_PROXY_TOKEN}
    user: "{ROTATED_PROXY_USER}"
    impersonate: true
clientCerts:
  - name: proxy
    user: {PROXY_CERT_USER}
    groups: [proxies]
    impersonate: true
namespaces: [default, bulk]
pods:
  - namespace: default
    name: demo
    containers: [main]
    phase: Running
    labels: {{app: demo}}
generatedPods:
  - namespace: bulk
    prefix: pod-
    count: {bulk_pods}
"#
    )
}

/// The value of the sample `name` (labels included, e.g. `x{reason="y"}`) in Prometheus text, 0
/// when it is absent.
pub fn metric_value(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// The `user-node` fixture caller (alice@example.com) with one plain rule, impersonation as
/// `system:masters`: the caller of the recording tests and benchmarks, which add their own
/// recording grant ([`StackOptions::recording`]) naming the stack's recorder.
pub fn admin_caller() -> anyhow::Result<Value> {
    let mut whois = fixture_whois("user-node")?;
    whois["CapMap"] = json!({
        "tailscale.com/cap/kubernetes": [{"impersonate": {"groups": ["system:masters"]}}]
    });
    Ok(whois)
}

/// A fixture caller for tests about identity and forwarding, not recording: the fixture's WhoIs
/// with the recording keys (`recorder`, `recorderAddrs`, `enforceRecorder`, `enableEvents`) taken
/// out of its rules. The fixtures name tailnet recorders no test machine reaches, and with
/// `enforceRecorder` and `enableEvents` every request would rightly be refused.
pub fn fixture_caller(name: &str) -> anyhow::Result<Value> {
    let mut whois = fixture_whois(name)?;
    for rules in whois["CapMap"]
        .as_object_mut()
        .into_iter()
        .flat_map(|caps| caps.values_mut())
        .filter_map(Value::as_array_mut)
    {
        for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
            for key in [
                "recorder",
                "recorderAddrs",
                "enforceRecorder",
                "enableEvents",
            ] {
                rule.remove(key);
            }
        }
    }
    Ok(whois)
}

/// A WhoIs document from `testdata/whois/NAME.json` in the repository.
pub fn fixture_whois(name: &str) -> anyhow::Result<Value> {
    let path = workspace_root()
        .join("testdata/whois")
        .join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("fixture {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// A running stack.
#[derive(Debug)]
pub struct Stack {
    _temp: Option<tempfile::TempDir>,
    /// Where its files are.
    pub dir: PathBuf,
    /// The token file of [`UpstreamAuth::TlsCaDataTokenFile`].
    pub token_file: PathBuf,
    /// The proxy's kubeconfig for the stand-in.
    pub upstream_kubeconfig: PathBuf,
    /// The harness's kubeconfig for the stand-in's test hooks over TLS.
    hooks_kubeconfig: PathBuf,
    /// `http://127.0.0.1:PORT` of the apiserver stand-in.
    pub apiserver_url: String,
    /// `https://127.0.0.1:PORT` of the proxy.
    pub proxy_url: String,
    /// `http://127.0.0.1:PORT` of the proxy's metrics listener.
    pub metrics_url: String,
    /// kubectl configured for the proxy.
    pub kubectl: Kubectl,
    /// The processes, stopped on drop (proxy first).
    pub proxy: Service,
    /// The session recorder, when recording was granted.
    pub recorder: Option<Service>,
    /// Its address (`127.0.0.1:PORT`).
    pub recorder_addr: Option<String>,
    /// The LocalAPI stand-in.
    pub localapi: Service,
    /// The apiserver stand-in.
    pub apiserver: Service,
}

impl Stack {
    /// Starts everything and waits until each process listens.
    pub fn start(options: StackOptions) -> anyhow::Result<Stack> {
        let (temp, dir) = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (None, dir.clone())
            }
            None => {
                let temp = tempfile::Builder::new().prefix("kap-e2e-").tempdir()?;
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        let apiserver_config = write(&dir, "apiserver.yaml", options.apiserver_config.as_bytes())?;
        let pki = dir.join("pki");
        let mut command = Command::new(binary("testkit-apiserver")?);
        command
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&apiserver_config)
            // The stand-in's pods' directory goes inside the stack's, which is removed with the
            // stack: the stand-in is killed, so its own clean-up never runs.
            .env("TMPDIR", &dir);
        if options.upstream != UpstreamAuth::HttpToken {
            command.arg("--tls").arg("--pki-dir").arg(&pki);
        }
        if matches!(
            options.upstream,
            UpstreamAuth::TlsSelfSignedCa | UpstreamAuth::TlsForeignSelfSignedCa
        ) {
            command.arg("--self-signed-ca");
        }
        let (apiserver, lines) =
            Service::start("testkit-apiserver", command, &dir.join("apiserver.log"), 1)?;
        let apiserver_url = listening_address(&lines[0])?;

        let (recorder, recorder_addr) = match options.recording {
            Some(grant) if !grant.all_dead => {
                // Both surfaces on one port: the proxy uploads from loopback (allowed by
                // default), the harness reads with the viewer token.
                let viewers = write(
                    &dir,
                    "recorder-viewers",
                    format!("{RECORDER_VIEWER_TOKEN} e2e *\n").as_bytes(),
                )?;
                let mut command = Command::new(binary("kube-recorder")?);
                command
                    .args(["serve", "--listen", "127.0.0.1:0", "--viewer-tokens"])
                    .arg(&viewers)
                    .arg("--dir")
                    .arg(dir.join("recordings"));
                if grant.v1_only {
                    command.arg("--v1-only");
                }
                if grant.recorder_without_events {
                    command.arg("--no-events");
                }
                command.args(&options.recorder_args);
                let (service, lines) =
                    Service::start("kube-recorder", command, &dir.join("recorder.log"), 1)?;
                let url = listening_address(&lines[0])?;
                let addr = url.trim_start_matches("http://").to_string();
                (Some(service), Some(addr))
            }
            _ => (None, None),
        };
        let mut whois = options.whois.clone();
        if let Some(grant) = options.recording {
            let mut addrs = Vec::new();
            if grant.dead_recorder_first || grant.all_dead {
                addrs.push(dead_address()?);
            }
            addrs.extend(recorder_addr.clone());
            let mut rule = json!({
                "recorderAddrs": addrs,
                "enforceRecorder": grant.enforce,
                "enableEvents": grant.events,
            });
            if grant.record_input {
                rule["recordInput"] = json!(true);
            }
            if grant.record_port_forward_data {
                rule["recordPortForwardData"] = json!(true);
            }
            if let Some(entries) = whois.as_object_mut() {
                for entry in entries.values_mut() {
                    let caps = &mut entry["CapMap"];
                    if !caps.is_object() {
                        *caps = json!({});
                    }
                    let rules = &mut caps["tailscale.com/cap/kubernetes"];
                    if !rules.is_array() {
                        *rules = json!([]);
                    }
                    if let Some(rules) = rules.as_array_mut() {
                        rules.push(rule.clone());
                    }
                }
            }
        }
        let table = write(
            &dir,
            "whois.json",
            serde_json::to_vec_pretty(&whois)?.as_slice(),
        )?;
        let socket = dir.join("tailscaled.sock");
        let mut command = Command::new(binary("testkit-localapi")?);
        command
            .arg("--socket")
            .arg(&socket)
            .arg("--table")
            .arg(&table);
        let (localapi, _) =
            Service::start("testkit-localapi", command, &dir.join("localapi.log"), 1)?;

        let token_file = dir.join("proxy.token");
        std::fs::write(&token_file, PROXY_TOKEN)?;
        let upstream_kubeconfig = match options.upstream {
            UpstreamAuth::HttpToken => kubeconfig(
                options
                    .upstream_override
                    .as_deref()
                    .unwrap_or(&apiserver_url),
                Some(PROXY_TOKEN),
                false,
            ),
            UpstreamAuth::TlsClientCertFiles => tls_kubeconfig(
                &apiserver_url,
                &format!("certificate-authority: {}", pki.join("ca.crt").display()),
                &format!(
                    "client-certificate: {}\n    client-key: {}",
                    pki.join("proxy.crt").display(),
                    pki.join("proxy.key").display()
                ),
            ),
            UpstreamAuth::TlsCaDataTokenFile => {
                use base64::Engine as _;
                let ca = std::fs::read(pki.join("ca.crt")).context("stand-in CA")?;
                tls_kubeconfig(
                    &apiserver_url,
                    &format!(
                        "certificate-authority-data: {}",
                        base64::engine::general_purpose::STANDARD.encode(ca)
                    ),
                    &format!("tokenFile: {}", token_file.display()),
                )
            }
            UpstreamAuth::TlsSelfSignedCa => tls_kubeconfig(
                &apiserver_url,
                &format!("certificate-authority: {}", pki.join("ca.crt").display()),
                &format!("token: {PROXY_TOKEN}"),
            ),
            UpstreamAuth::TlsForeignSelfSignedCa => {
                let foreign = write(
                    &dir,
                    "foreign-ca.crt",
                    testkit::apiserver::foreign_self_signed_ca_pem()?.as_bytes(),
                )?;
                tls_kubeconfig(
                    &apiserver_url,
                    &format!("certificate-authority: {}", foreign.display()),
                    &format!("token: {PROXY_TOKEN}"),
                )
            }
        };
        let upstream_kubeconfig =
            write(&dir, "upstream.kubeconfig", upstream_kubeconfig.as_bytes())?;
        // The harness's own way to the stand-in's test hooks, with a token of its own so nothing the
        // harness sends can be mistaken for the proxy's requests.
        let hooks_kubeconfig = write(
            &dir,
            "hooks.kubeconfig",
            tls_kubeconfig(
                &apiserver_url,
                &format!("certificate-authority: {}", pki.join("ca.crt").display()),
                &format!("token: {HARNESS_TOKEN}"),
            )
            .as_bytes(),
        )?;
        let mut command = Command::new(binary("kube-auth-proxy")?);
        command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                match options.tls {
                    ServingTls::SelfSigned => "--tls-self-signed",
                    ServingTls::FromTailscale => "--tls-from-tailscale",
                },
                "--mode",
                &options.mode,
            ])
            .arg("--upstream-kubeconfig")
            .arg(&upstream_kubeconfig)
            .arg("--localapi-socket")
            .arg(&socket)
            .args(&options.proxy_args)
            .env("RUST_LOG", &options.proxy_log)
            .env_remove("APISERVER_PROXY")
            .env_remove("AUTH_PROXY")
            .env_remove("KUBERNETES_SERVICE_HOST");
        let (proxy, lines) = Service::start("kube-auth-proxy", command, &dir.join("proxy.log"), 2)?;
        let proxy_url = listening_address(&lines[0])?;
        let metrics_url = listening_address(&lines[1])?;

        let user_kubeconfig = match options.tls {
            ServingTls::SelfSigned => kubeconfig(&proxy_url, Some(CALLER_TOKEN), true),
            ServingTls::FromTailscale => {
                let ca = write(
                    &dir,
                    "served.crt",
                    served_certificate_pem(&socket)?.as_bytes(),
                )?;
                kubeconfig(&proxy_url, Some(CALLER_TOKEN), false).replace(
                    "insecure-skip-tls-verify: false",
                    &format!(
                        "certificate-authority: {}\n    tls-server-name: {TAILNET_NAME}",
                        ca.display()
                    ),
                )
            }
        };
        let user_kubeconfig = write(&dir, "kubeconfig", user_kubeconfig.as_bytes())?;
        let home = dir.join("home");
        std::fs::create_dir_all(&home)?;
        Ok(Stack {
            _temp: temp,
            token_file,
            upstream_kubeconfig,
            hooks_kubeconfig,
            kubectl: Kubectl {
                path: kubectl_path()?,
                kubeconfig: user_kubeconfig,
                home,
                env: Vec::new(),
            },
            dir,
            apiserver_url,
            proxy_url,
            metrics_url,
            proxy,
            recorder,
            recorder_addr,
            localapi,
            apiserver,
        })
    }

    /// GET on a test hook of the apiserver stand-in: plain HTTP directly, or over TLS through kubectl
    /// with the harness's own token (the harness has no TLS client of its own).
    fn hook_get(&self, path: &str) -> anyhow::Result<Value> {
        if self.apiserver_url.starts_with("http://") {
            return http::request("GET", &format!("{}{path}", self.apiserver_url), None)?.json();
        }
        let output = self
            .kubectl
            .direct(&self.hooks_kubeconfig)
            .run(&["get", "--raw", path])?
            .expect_success("stand-in test hook")?;
        output.json()
    }

    /// Every request the apiserver stand-in received, as it recorded them.
    pub fn upstream_requests(&self) -> anyhow::Result<Vec<Value>> {
        match self.hook_get("/testkit/requests")? {
            Value::Array(items) => Ok(items),
            other => Err(anyhow!("unexpected /testkit/requests answer: {other}")),
        }
    }

    /// The LocalAPI stand-in's whois table as it answers now (key to WhoIs).
    pub fn whois_table(&self) -> anyhow::Result<Value> {
        let text = std::fs::read(self.dir.join("whois.json")).context("whois table")?;
        Ok(serde_json::from_slice(&text)?)
    }

    /// Replaces the LocalAPI stand-in's whois table (a grant changed or was revoked in the
    /// tailnet) and returns once the stand-in answers from the new one.
    pub fn set_whois_table(&self, table: &Value) -> anyhow::Result<()> {
        let path = self.dir.join("whois.json");
        let staged = self.dir.join("whois.json.new");
        std::fs::write(&staged, serde_json::to_vec_pretty(table)?)?;
        std::fs::rename(&staged, &path)?;
        self.localapi.signal("HUP")?;
        let line = self
            .localapi
            .wait_for_line("table", std::time::Duration::from_secs(30))?;
        anyhow::ensure!(line.contains("table reloaded"), "{line}");
        Ok(())
    }

    /// Creates a pod directly in the stand-in (not through the proxy), firing watch events.
    pub fn add_pod(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": "Running"}
        });
        let response = http::request(
            "POST",
            &format!("{}/testkit/pods", self.apiserver_url),
            Some(serde_json::to_vec(&pod)?.as_slice()),
        )?;
        if !(200..300).contains(&response.status) {
            anyhow::bail!("adding pod failed: {} {}", response.status, response.text());
        }
        Ok(())
    }

    /// GET `path` on the recorder's read API with the viewer token.
    pub fn recorder_get(&self, path: &str) -> anyhow::Result<http::HttpResponse> {
        let addr = self
            .recorder_addr
            .as_deref()
            .ok_or_else(|| anyhow!("no recorder in this stack"))?;
        recorder_get(addr, path, Some(RECORDER_VIEWER_TOKEN))
    }

    /// The recorder's index of recordings, newest first.
    pub fn recordings(&self) -> anyhow::Result<Vec<Value>> {
        let response = self.recorder_get("/api/recordings")?;
        anyhow::ensure!(
            response.status == 200,
            "/api/recordings: {}",
            response.text()
        );
        match response.json()? {
            Value::Array(items) => Ok(items),
            other => Err(anyhow!("unexpected /api/recordings answer: {other}")),
        }
    }

    /// Waits until the recorder lists at least `count` finished recordings (any outcome but
    /// `recording`), returning the index newest first.
    pub fn finished_recordings(&self, count: usize) -> anyhow::Result<Vec<Value>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let recordings = self.recordings()?;
            let finished = recordings
                .iter()
                .filter(|r| r["outcome"] != "recording")
                .count();
            if finished >= count {
                return Ok(recordings);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{finished} of {count} recordings finished: {recordings:?}\n{}",
                self.logs()
            );
            // The recorder marks a recording finished after the proxy ends the upload. This is a
            // poll of an observable condition under a deadline; the pause only spares the CPU.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The recorder's API events matching `query` (e.g. `type=kubernetes-api-request`), oldest
    /// first.
    pub fn events(&self, query: &str) -> anyhow::Result<Vec<Value>> {
        let response = self.recorder_get(&format!("/api/events?{query}"))?;
        anyhow::ensure!(response.status == 200, "/api/events: {}", response.text());
        match response.json()? {
            Value::Array(items) => Ok(items),
            other => Err(anyhow!("unexpected /api/events answer: {other}")),
        }
    }

    /// One recording's asciicast text.
    pub fn recording_cast(&self, id: &str) -> anyhow::Result<String> {
        let response = self.recorder_get(&format!("/api/recordings/{id}"))?;
        anyhow::ensure!(
            response.status == 200,
            "recording {id}: {}",
            response.status
        );
        Ok(response.text())
    }

    /// The proxy's Prometheus metrics text.
    pub fn metrics(&self) -> anyhow::Result<String> {
        Ok(http::request("GET", &format!("{}/metrics", self.metrics_url), None)?.text())
    }

    /// GET on the proxy's metrics listener (e.g. `/readyz`).
    pub fn ops(&self, path: &str) -> anyhow::Result<http::HttpResponse> {
        http::request("GET", &format!("{}{path}", self.metrics_url), None)
    }

    /// Everything the processes logged, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- proxy ---\n{}\n--- localapi ---\n{}\n--- apiserver ---\n{}",
            self.proxy.log_text(),
            self.localapi.log_text(),
            self.apiserver.log_text()
        )
    }

    /// Polls `check` until it holds, for what the proxy picks up on its own time (a file it
    /// re-reads, a grant it reloads); fails after 30 s with the logs.
    pub fn wait_until(
        &self,
        what: &str,
        mut check: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if check()? {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{what}: not within 30s\n{}",
                self.logs()
            );
            // A poll of an observable condition under a deadline; the pause only spares the CPU.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// GET `path` from a `kube-recorder` at `addr` (`127.0.0.1:PORT`), with a viewer token or without.
/// HTTP/1.0, so the answer (a cast may be streamed) ends when the connection closes.
pub fn recorder_get(
    addr: &str,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<http::HttpResponse> {
    use std::io::{Read as _, Write as _};
    let mut stream =
        std::net::TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{authorization}\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP head in the recorder's answer to {path}"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line from the recorder: {head}"))?;
    Ok(http::HttpResponse {
        status,
        body: raw[split + 4..].to_vec(),
    })
}

/// The certificate the LocalAPI stand-in issues for [`TAILNET_NAME`], asked over its socket as the
/// proxy does (it issues one per domain and keeps it).
pub fn served_certificate_pem(socket: &Path) -> anyhow::Result<String> {
    let response = http::request_unix(
        socket,
        &format!("/localapi/v0/cert/{TAILNET_NAME}?type=pair"),
    )?;
    anyhow::ensure!(
        response.status == 200,
        "cert pair: {} {}",
        response.status,
        response.text()
    );
    let text = response.text();
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or_else(|| anyhow!("no certificate in the pair"))?;
    Ok(text[start..].to_string())
}

/// A kubeconfig for one server and token. `insecure` is for the proxy's self-signed certificate.
pub fn kubeconfig(server: &str, token: Option<&str>, insecure: bool) -> String {
    let user = match token {
        Some(token) => format!("\n    token: {token}"),
        None => " {}".to_string(),
    };
    format!(
        r#"apiVersion: v1
kind: Config
current-context: target
clusters:
- name: target
  cluster:
    server: {server}
    insecure-skip-tls-verify: {insecure}
users:
- name: user
  user:{user}
contexts:
- name: target
  context:
    cluster: target
    user: user
    namespace: default
"#
    )
}

/// A loopback address where nothing listens (bound, then released).
pub fn dead_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// A kubeconfig for an https upstream with the given cluster TLS and user lines.
fn tls_kubeconfig(server: &str, cluster_tls: &str, user: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Config
current-context: target
clusters:
- name: target
  cluster:
    server: {server}
    {cluster_tls}
users:
- name: user
  user:
    {user}
contexts:
- name: target
  context:
    cluster: target
    user: user
"#
    )
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
