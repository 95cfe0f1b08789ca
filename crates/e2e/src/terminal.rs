//! kubectl under a pseudo-terminal, as a user at a terminal runs `kubectl exec -it` or
//! `kubectl attach -it`: what is typed goes to kubectl's terminal, what kubectl shows is read
//! back, and the terminal can be resized (kubectl gets SIGWINCH and sends a resize).

use std::io::{Read as _, Write as _};
use std::process::Child;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::kubectl::Kubectl;

/// kubectl running under a pseudo-terminal; killed when dropped.
pub struct Terminal {
    pty: Arc<pty_process::blocking::Pty>,
    child: Child,
    chunks: mpsc::Receiver<Vec<u8>>,
    /// Everything the terminal showed so far.
    seen: Vec<u8>,
    /// Where the next [`expect`](Self::expect) starts looking.
    from: usize,
}

impl Kubectl {
    /// Starts kubectl with `args` under a new pseudo-terminal of `rows` x `cols`.
    pub fn terminal(&self, args: &[&str], rows: u16, cols: u16) -> anyhow::Result<Terminal> {
        let (pty, pts) = pty_process::blocking::open().context("opening a pseudo-terminal")?;
        pty.resize(pty_process::Size::new(rows, cols))
            .context("sizing the pseudo-terminal")?;
        let mut command = pty_process::blocking::Command::new(&self.path)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.join("cache"))
            .args(args)
            .env("HOME", &self.home)
            .env("TERM", "xterm")
            .env_remove("KUBECONFIG");
        for (key, value) in &self.env {
            command = command.env(key, value);
        }
        let child = command
            .spawn(pts)
            .with_context(|| format!("starting kubectl {args:?} on a terminal"))?;
        let pty = Arc::new(pty);
        let (sender, chunks) = mpsc::channel();
        let reader = Arc::clone(&pty);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends at EIO once kubectl has exited and closed the terminal.
            while let Ok(n @ 1..) = (&*reader).read(&mut buf) {
                if sender.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        Ok(Terminal {
            pty,
            child,
            chunks,
            seen: Vec::new(),
            from: 0,
        })
    }
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("pid", &self.child.id())
            .field("seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// Types `text`.
    pub fn type_text(&mut self, text: &str) -> anyhow::Result<()> {
        (&*self.pty)
            .write_all(text.as_bytes())
            .context("typing on the terminal")
    }

    /// Waits until `needle` shows after what earlier calls consumed; returns the text shown up to
    /// and including it.
    pub fn expect(&mut self, needle: &str, deadline: Duration) -> anyhow::Result<String> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(end) = self.find(needle.as_bytes()) {
                let text = String::from_utf8_lossy(&self.seen[self.from..end]).into_owned();
                self.from = end;
                return Ok(text);
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(_) => bail!(
                    "the terminal never showed {needle:?} within {deadline:?}; it showed {:?}",
                    String::from_utf8_lossy(&self.seen[self.from..])
                ),
            }
        }
    }

    fn find(&self, needle: &[u8]) -> Option<usize> {
        self.seen
            .get(self.from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|at| self.from + at + needle.len())
    }

    /// Changes the terminal's size; kubectl gets SIGWINCH and tells the remote terminal.
    pub fn resize(&self, rows: u16, cols: u16) -> anyhow::Result<()> {
        self.pty
            .resize(pty_process::Size::new(rows, cols))
            .context("resizing the pseudo-terminal")
    }

    /// Waits for kubectl to exit (killing it at the deadline) and returns its exit code.
    pub fn wait(&mut self, deadline: Duration) -> anyhow::Result<Option<i32>> {
        Ok(crate::process::wait_with_deadline(&mut self.child, deadline)?.code())
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
