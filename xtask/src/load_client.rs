//! Running `testkit-load` (the workspace's wrk-like load generator) from the benchmarks and
//! reading its one-line JSON report.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};
use serde_json::Value;

/// One `testkit-load` run: what to load and how hard.
#[derive(Debug, Clone)]
pub(crate) struct Load<'a> {
    /// The `testkit-load` binary.
    pub(crate) binary: &'a Path,
    /// The `https://` URL every request GETs.
    pub(crate) url: String,
    /// Keep-alive connections, one request in flight on each.
    pub(crate) connections: u64,
    /// Sent but not measured (`1s`): TLS handshakes, warm caches.
    pub(crate) warmup: &'a str,
    /// Measured (`10s`).
    pub(crate) duration: &'a str,
    /// Extra request headers, `Name: value`.
    pub(crate) headers: Vec<String>,
}

/// What `testkit-load` measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadResult {
    /// Responses per second in the measured window.
    pub(crate) rate: f64,
    /// Median latency.
    pub(crate) p50_ms: f64,
    /// 99th percentile latency.
    pub(crate) p99_ms: f64,
    /// Every request sent, warm-up and cut-off ones included.
    pub(crate) sent: u64,
}

impl Load<'_> {
    /// Runs the load and returns its report; fails unless every measured answer was 2xx.
    /// `label` names the run in messages; its report line is echoed to stderr.
    pub(crate) fn run(&self, label: &str) -> anyhow::Result<LoadResult> {
        let mut command = Command::new(self.binary);
        command
            .arg("--url")
            .arg(&self.url)
            .args(["--connections", &self.connections.to_string()])
            .args(["--warmup", self.warmup, "--duration", self.duration])
            // Every server here has a self-signed or throwaway certificate on loopback.
            .arg("--insecure");
        for header in &self.headers {
            command.arg("--header").arg(header);
        }
        let output = command
            .output()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        eprintln!("{label}: {}", stdout.trim());
        if !output.status.success() {
            bail!(
                "{label}: testkit-load {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: Value = serde_json::from_str(stdout.trim())
            .with_context(|| format!("{label}: testkit-load printed {stdout:?}"))?;
        let number = |name: &str| {
            report[name]
                .as_f64()
                .with_context(|| format!("{label}: no {name} in {report}"))
        };
        let (non_2xx, errors) = (number("non_2xx")?, number("errors")?);
        if non_2xx != 0.0 || errors != 0.0 {
            bail!(
                "{label}: {non_2xx} non-2xx answers and {errors} errors (first: {})",
                report["first_error"]
            );
        }
        Ok(LoadResult {
            rate: number("rate")?,
            p50_ms: number("p50_ms")?,
            p99_ms: number("p99_ms")?,
            sent: number("sent")? as u64,
        })
    }
}
