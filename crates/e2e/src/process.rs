//! A child process that announces readiness on stdout, killed when dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

/// How long a process gets to announce itself.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running child process whose stderr is kept in a log file.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    log: std::path::PathBuf,
}

impl Service {
    /// Starts `command`, logging stderr to `log`, and waits until it has printed `ready_lines` lines on
    /// stdout, which are returned.
    pub fn start(
        name: &str,
        mut command: Command,
        log: &Path,
        ready_lines: usize,
    ) -> anyhow::Result<(Service, Vec<String>)> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("{name}: no stdout"))?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || forward_lines(stdout, sender));
        let mut service = Service {
            name: name.to_string(),
            child: Some(child),
            lines,
            log: log.to_path_buf(),
        };
        let mut ready = Vec::new();
        while ready.len() < ready_lines {
            match service.lines.recv_timeout(START_DEADLINE) {
                Ok(line) => ready.push(line),
                Err(_) => {
                    let status = service
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    bail!(
                        "{name} did not become ready (exit status: {status:?}); its log:\n{}",
                        service.log_text()
                    );
                }
            }
        }
        Ok((service, ready))
    }

    /// What the process wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for the process to exit, returning whether it exited successfully.
    pub fn terminate(&mut self) -> anyhow::Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(false);
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("kill -TERM")?;
        if !status.success() {
            let _ = child.kill();
        }
        Ok(child.wait()?.success())
    }

    /// Waits for the process to exit on its own (killing it at the deadline), returning whether
    /// it exited successfully.
    pub fn wait_exit(&mut self, deadline: std::time::Duration) -> anyhow::Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(false);
        };
        Ok(wait_with_deadline(&mut child, deadline)?.success())
    }

    /// Kills the process at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

fn forward_lines(stdout: impl Read, sender: mpsc::Sender<String>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        if sender.send(line).is_err() {
            return;
        }
    }
}

/// Extracts the address from a `listening on <url>` line.
pub fn listening_address(line: &str) -> anyhow::Result<String> {
    line.rsplit_once("listening on ")
        .map(|(_, addr)| addr.trim().to_string())
        .ok_or_else(|| anyhow!("unexpected start-up line {line:?}"))
}

impl Service {
    /// Sends SIGTERM without waiting.
    pub fn signal_terminate(&self) -> anyhow::Result<()> {
        self.signal("TERM")
    }

    /// Sends signal `name` (`TERM`, `HUP`, ...) without waiting.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("{} is not running", self.name))?;
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .with_context(|| format!("kill -{name}"))?;
        if !status.success() {
            bail!("kill -{name} {pid} failed");
        }
        Ok(())
    }

    /// Waits for a stdout line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, deadline: Duration) -> anyhow::Result<String> {
        let until = std::time::Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => continue,
                Err(_) => bail!(
                    "{} printed no line containing {needle:?} within {deadline:?}",
                    self.name
                ),
            }
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        match self.child.as_mut() {
            Some(child) => Ok(child.wait()?),
            None => bail!("{} is not running", self.name),
        }
    }
}

/// Waits for `child` to exit, killing it (and failing) when `deadline` passes first.
pub fn wait_with_deadline(
    child: &mut Child,
    deadline: Duration,
) -> anyhow::Result<std::process::ExitStatus> {
    let until = std::time::Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if std::time::Instant::now() >= until {
            let _ = child.kill();
            bail!("the command did not exit within {deadline:?}");
        }
        // Polling the child's exit under a deadline; the pause only spares the CPU.
        std::thread::sleep(Duration::from_millis(20));
    }
}
