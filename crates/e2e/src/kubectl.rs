//! Running the real kubectl against the proxy: one-shot commands with a deadline, and long-running
//! commands (watches) read line by line.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

/// A kubectl invocation's result.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    /// Whether it exited 0.
    pub success: bool,
    /// Exit code, if it exited normally.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl KubectlOutput {
    /// Fails with both streams unless kubectl succeeded.
    pub fn expect_success(self, what: &str) -> anyhow::Result<KubectlOutput> {
        if !self.success {
            bail!(
                "{what}: kubectl failed ({:?})\nstdout: {}\nstderr: {}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("kubectl output is not JSON: {}", self.stdout))
    }
}

/// How kubectl is run: binary, kubeconfig, isolated home and cache.
#[derive(Debug, Clone)]
pub struct Kubectl {
    /// The binary.
    pub path: PathBuf,
    /// The kubeconfig pointing at the proxy.
    pub kubeconfig: PathBuf,
    /// A private home and cache directory, so discovery caches never leak between stacks.
    pub home: PathBuf,
    /// Extra environment (e.g. KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false).
    pub env: Vec<(String, String)>,
}

/// How long a one-shot kubectl command may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

impl Kubectl {
    /// The same kubectl with another kubeconfig (e.g. straight to the stand-in).
    pub fn direct(&self, kubeconfig: &std::path::Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            home: self.home.join("direct"),
            ..self.clone()
        }
    }

    /// The command with the stack's kubeconfig and private cache.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.path);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.join("cache"))
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Runs a command to completion (killed after [`COMMAND_DEADLINE`]).
    pub fn run(&self, args: &[&str]) -> anyhow::Result<KubectlOutput> {
        let mut command = self.command(args);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = command
            .spawn()
            .with_context(|| format!("starting kubectl {args:?}"))?;
        let pid = child.id();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        let output = match receiver.recv_timeout(COMMAND_DEADLINE) {
            Ok(output) => output?,
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                bail!("kubectl {args:?} did not finish within {COMMAND_DEADLINE:?}");
            }
        };
        Ok(KubectlOutput {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Starts a long-running command whose stdout is read line by line.
    pub fn spawn_lines(&self, args: &[&str]) -> anyhow::Result<LineStream> {
        self.spawn_lines_with(args, Stdio::null())
            .map(|(stream, _)| stream)
    }

    /// Like [`spawn_lines`](Self::spawn_lines), with a pipe to the command's stdin.
    pub fn spawn_interactive(
        &self,
        args: &[&str],
    ) -> anyhow::Result<(LineStream, std::process::ChildStdin)> {
        let (stream, stdin) = self.spawn_lines_with(args, Stdio::piped())?;
        Ok((stream, stdin.ok_or_else(|| anyhow!("no stdin"))?))
    }

    fn spawn_lines_with(
        &self,
        args: &[&str],
        stdin: Stdio,
    ) -> anyhow::Result<(LineStream, Option<std::process::ChildStdin>)> {
        let mut command = self.command(args);
        command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting kubectl {args:?}"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let stdin = child.stdin.take();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Ok((
            LineStream {
                child,
                lines,
                seen: Vec::new(),
            },
            stdin,
        ))
    }
}

/// A running command's stdout, line by line; the command is killed when this is dropped.
#[derive(Debug)]
pub struct LineStream {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LineStream {
    /// Waits until a line containing `needle` arrives, returning it.
    pub fn wait_for(&mut self, needle: &str, deadline: Duration) -> anyhow::Result<String> {
        let until = Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let stderr = self
                        .child
                        .stderr
                        .take()
                        .map(|mut e| {
                            let mut text = String::new();
                            let _ = std::io::Read::read_to_string(&mut e, &mut text);
                            text
                        })
                        .unwrap_or_default();
                    bail!(
                        "no line containing {needle:?} within {deadline:?}; lines so far: {:?}; stderr: {stderr}",
                        self.seen
                    );
                }
            }
        }
    }
}

impl LineStream {
    /// Whether the command has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Types `more` lines into `stdin` at a typing pace until kubectl goes away (a write fails
    /// or it exited), at most `lines` of them: for sessions that must end on their own (recording
    /// enforced and the recorder gone), where closing stdin would let the command end them
    /// first. The bound only keeps a hung session from hanging the suite.
    pub fn type_until_exit(&mut self, stdin: &mut std::process::ChildStdin, lines: usize) {
        use std::io::Write as _;
        for _ in 0..lines {
            if stdin
                .write_all(b"more\n")
                .and_then(|()| stdin.flush())
                .is_err()
                || self.has_exited()
            {
                return;
            }
            // Typing pace; the loop ends on an observed condition, not on time.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the command to exit (killing it at the deadline), returning whether it succeeded
    /// and its stderr.
    pub fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<(bool, String)> {
        let status = crate::process::wait_with_deadline(&mut self.child, deadline)?;
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        Ok((status.success(), stderr))
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
