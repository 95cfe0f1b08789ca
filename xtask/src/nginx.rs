//! nginx as a TLS reverse proxy in front of the apiserver stand-in: the comparator of the
//! comparison benchmark (`cargo xtask bench --compare-only`). Debian's `nginx-light` is installed
//! when missing, then started as a child process with a generated configuration in a fresh
//! temporary directory, and stopped when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::tools::fresh_temp_dir;

/// Where Debian's nginx packages put the binary.
const NGINX: &str = "/usr/sbin/nginx";
/// The Debian package installed when [`NGINX`] is missing: the smallest build, which still has
/// the proxy, upstream keepalive and SSL modules the benchmark uses.
const PACKAGE: &str = "nginx-light";
/// How long nginx gets to start listening, and to exit after SIGTERM.
const DEADLINE: Duration = Duration::from_secs(30);

/// Installs `nginx-light` with apt-get unless `/usr/sbin/nginx` is already there (idempotent).
pub(crate) fn ensure_nginx() -> anyhow::Result<()> {
    crate::apt::ensure_debian_packages(&[NGINX], &[PACKAGE])
}

/// `nginx/1.22.1`: the version of the installed nginx, for the benchmark's report.
pub(crate) fn version() -> anyhow::Result<String> {
    let output = Command::new(NGINX)
        .arg("-v")
        .output()
        .with_context(|| format!("running {NGINX} -v"))?;
    // `nginx version: nginx/1.22.1` on stderr.
    let text = String::from_utf8_lossy(&output.stderr);
    Ok(text
        .trim()
        .trim_start_matches("nginx version:")
        .trim()
        .to_owned())
}

/// Where nginx forwards to: the apiserver stand-in over TLS, verified against its CA.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    /// `127.0.0.1:PORT` of the stand-in.
    pub(crate) addr: String,
    /// The stand-in's CA certificate (PEM), which its serving certificate for `localhost` is
    /// checked against.
    pub(crate) ca: PathBuf,
}

/// A running nginx master process (with its workers), stopped on drop.
#[derive(Debug)]
pub(crate) struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
    /// `https://127.0.0.1:PORT` where nginx listens.
    pub(crate) url: String,
}

impl Nginx {
    /// Writes a self-signed serving certificate and the configuration into a fresh temporary
    /// directory, starts nginx in the foreground there and waits until it accepts connections.
    pub(crate) fn start(upstream: &Upstream) -> anyhow::Result<Nginx> {
        ensure_nginx()?;
        let dir = fresh_temp_dir("nginx")?;
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .context("generating nginx's serving certificate")?;
        write(&dir.join("tls.crt"), &certified.cert.pem())?;
        write(&dir.join("tls.key"), &certified.key_pair.serialize_pem())?;
        std::fs::create_dir(dir.join("tmp")).context("creating nginx's temp directory")?;
        // A port that was free a moment ago; nginx fails to start (and we say so) in the rare case
        // that something took it in between.
        let listen = e2e::stack::dead_address()?;
        write(
            &dir.join("nginx.conf"),
            &crate::nginx_conf::config(&dir, &listen, upstream),
        )?;
        let log =
            std::fs::File::create(dir.join("stderr.log")).context("creating nginx's stderr log")?;
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            // The error log before the configuration is read (otherwise /var/log/nginx).
            .arg("-e")
            .arg(dir.join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {NGINX}"))?;
        let mut nginx = Nginx {
            child: Some(child),
            dir,
            url: format!("https://{listen}"),
        };
        nginx.wait_listening(&listen)?;
        Ok(nginx)
    }

    /// The master's and the workers' process ids. The workers are the master's children as
    /// `/proc` lists them now: call this once nginx has served a request, when they are surely
    /// running.
    pub(crate) fn pids(&self) -> anyhow::Result<Vec<u32>> {
        let Some(master) = self.child.as_ref().map(Child::id) else {
            return Ok(Vec::new());
        };
        let path = format!("/proc/{master}/task/{master}/children");
        let children = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let mut pids = vec![master];
        for pid in children.split_whitespace() {
            pids.push(pid.parse().with_context(|| format!("{path}: {pid:?}"))?);
        }
        Ok(pids)
    }

    /// Polls until nginx accepts a TCP connection on `listen`, failing with its error log when it
    /// exits or the deadline passes first.
    fn wait_listening(&mut self, listen: &str) -> anyhow::Result<()> {
        let until = Instant::now() + DEADLINE;
        loop {
            if TcpStream::connect(listen).is_ok() {
                return Ok(());
            }
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait().context("waiting for nginx")?,
                None => None,
            };
            if exited.is_some() || Instant::now() >= until {
                bail!(
                    "nginx did not start listening on {listen} ({}):\n{}",
                    exited.map_or_else(|| "timed out".into(), |status| status.to_string()),
                    self.logs()
                );
            }
            // Polling an observable condition under a deadline; the pause only spares the CPU.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// nginx's stderr and error log, for failure messages.
    pub(crate) fn logs(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("")
    }
}

impl Drop for Nginx {
    /// SIGTERM to the master (a fast shutdown that also ends the workers, which SIGKILL to the
    /// master would leave running), SIGKILL if it has not exited by the deadline, then the
    /// directory is removed.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let terminated = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .is_ok_and(|status| status.success());
            let until = Instant::now() + DEADLINE;
            while terminated && Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
