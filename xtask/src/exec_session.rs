//! One measured `kubectl exec` session: a command in the stand-in's pod writes N bytes of stdout,
//! kubectl's stdout is read to its end and its size checked, and the CPU time of the processes
//! on the path (the proxy, the recorder) and at its ends (kubectl, the stand-in and the command
//! it ran) is read before and after.

use std::io::Read as _;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{ensure, Context as _};
use e2e::kubectl::Kubectl;

use crate::proc_stats::{
    cpu_seconds, cpu_seconds_with_children, total_cpu_seconds, waited_children_cpu_seconds,
};

/// kubectl's transport for exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// WebSocket (`v5.channel.k8s.io`), kubectl's default since 1.31.
    WebSocket,
    /// SPDY/3.1, what kubectl used before and still uses with
    /// `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`.
    Spdy,
}

impl Protocol {
    /// Both, in the order the benchmark runs and prints them.
    pub(crate) const ALL: [Protocol; 2] = [Protocol::WebSocket, Protocol::Spdy];

    /// The name in tables and messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Protocol::WebSocket => "WebSocket",
            Protocol::Spdy => "SPDY",
        }
    }

    /// The method of the upgrade request kubectl sends (WebSocket upgrades are GETs, SPDY
    /// upgrades POSTs), by which the stand-in's request log tells which one arrived.
    pub(crate) fn upgrade_method(self) -> &'static str {
        match self {
            Protocol::WebSocket => "GET",
            Protocol::Spdy => "POST",
        }
    }

    /// `kubectl` choosing this transport: set either way, so that a value in the caller's
    /// environment cannot pick the other one.
    fn kubectl(self, kubectl: &Kubectl) -> Kubectl {
        let mut kubectl = kubectl.clone();
        let websockets = match self {
            Protocol::WebSocket => "true",
            Protocol::Spdy => "false",
        };
        kubectl.env.push((
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS".into(),
            websockets.into(),
        ));
        kubectl
    }
}

/// Processes whose CPU time a session is charged with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Watched {
    /// The processes of the proxy on the path (nginx: master and workers); none on the direct
    /// path.
    pub(crate) proxy: Vec<u32>,
    /// The recorder the session is recorded to, if any.
    pub(crate) recorder: Option<u32>,
    /// The apiserver stand-in the session ends at; its exec'd command is counted with it.
    pub(crate) standin: Option<u32>,
}

/// What one session measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExecSample {
    /// From starting kubectl to its exit with all of stdout read.
    pub(crate) seconds: f64,
    /// CPU seconds the proxy used during the session.
    pub(crate) proxy_cpu: Option<f64>,
    /// CPU seconds the recorder used during the session (until the recording was finished).
    pub(crate) recorder_cpu: Option<f64>,
    /// CPU seconds kubectl used.
    pub(crate) kubectl_cpu: Option<f64>,
    /// CPU seconds the stand-in and the command it ran for the session used.
    pub(crate) standin_cpu: Option<f64>,
}

/// Runs `kubectl exec demo -- sh -c 'head -c BYTES /dev/zero | tr "\000" x'` over `protocol`,
/// reads all of stdout and checks its size. `settle` runs after kubectl exits and before the
/// CPU times are read again: for a recorded session it waits until the recording is finished,
/// so that the recorder's (and the proxy's) work on the session's tail is counted.
pub(crate) fn exec_session(
    kubectl: &Kubectl,
    protocol: Protocol,
    bytes: u64,
    watched: &Watched,
    settle: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<ExecSample> {
    let script = format!("head -c {bytes} /dev/zero | tr '\\000' x");
    let cpu_before = (
        total_cpu_seconds(&watched.proxy),
        watched.recorder.and_then(cpu_seconds),
        waited_children_cpu_seconds(),
        watched.standin.and_then(cpu_seconds_with_children),
    );
    let started = Instant::now();
    let mut child = protocol
        .kubectl(kubectl)
        .command(&["exec", "demo", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting kubectl exec")?;
    let mut stdout = child.stdout.take().context("kubectl exec: no stdout")?;
    // Large reads, so that reading costs the benchmark as little CPU as the pipe allows.
    let mut buffer = vec![0u8; 1 << 20];
    let mut received = 0u64;
    loop {
        let n = stdout
            .read(&mut buffer)
            .context("reading kubectl exec's stdout")?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    let output = child
        .wait_with_output()
        .context("waiting for kubectl exec")?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        output.status.success() && received == bytes,
        "kubectl exec over {}: {} after {received} of {bytes} bytes: {}",
        protocol.name(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    settle()?;
    let used = |now: Option<f64>, before: Option<f64>| Some(now? - before?);
    Ok(ExecSample {
        seconds,
        proxy_cpu: used(total_cpu_seconds(&watched.proxy), cpu_before.0),
        recorder_cpu: used(watched.recorder.and_then(cpu_seconds), cpu_before.1),
        kubectl_cpu: used(waited_children_cpu_seconds(), cpu_before.2),
        standin_cpu: used(
            watched.standin.and_then(cpu_seconds_with_children),
            cpu_before.3,
        ),
    })
}
