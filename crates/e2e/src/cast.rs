//! Reading the asciicast v2 recordings the recorder stores: header, events, output text, and
//! whether asciinema itself accepts them.

use std::path::Path;

use anyhow::{anyhow, Context as _};
use serde_json::Value;

/// One event line: `[seconds, code, data]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CastEvent {
    /// Seconds since the session started.
    pub time: f64,
    /// `o`, `i` or `r`.
    pub code: String,
    /// Output text, input text or `COLSxROWS`.
    pub data: String,
}

/// The header line as JSON.
pub fn header_of(cast: &str) -> anyhow::Result<Value> {
    serde_json::from_str(cast.lines().next().unwrap_or_default())
        .context("the recording's first line is not a JSON header")
}

/// Every event line after the header.
pub fn events_of(cast: &str) -> anyhow::Result<Vec<CastEvent>> {
    cast.lines()
        .skip(1)
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .with_context(|| format!("event line is not JSON: {line}"))?;
            let field = |i: usize| event.get(i).ok_or_else(|| anyhow!("short event: {line}"));
            Ok(CastEvent {
                time: field(0)?
                    .as_f64()
                    .ok_or_else(|| anyhow!("bad time: {line}"))?,
                code: field(1)?.as_str().unwrap_or_default().to_owned(),
                data: field(2)?.as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// The concatenated text of the output (`o`) events.
pub fn output_of(cast: &str) -> anyhow::Result<String> {
    Ok(events_of(cast)?
        .into_iter()
        .filter(|e| e.code == "o")
        .map(|e| e.data)
        .collect())
}

/// Runs `asciinema cat` (asciinema 2.4.0, installed by `cargo xtask e2e|ci`) on the cast, written
/// to a file in `dir`; fails unless asciinema replays it.
pub fn asciinema_accepts(dir: &Path, cast: &str) -> anyhow::Result<()> {
    let path = dir.join("check.cast");
    std::fs::write(&path, cast)?;
    // asciinema writes an install ID into its configuration directory on first use; two tests
    // doing so at once in a shared ~/.config race (one fails with "File exists" on a fresh
    // machine), so each run gets a directory of its own beside the cast.
    let output = std::process::Command::new("python3")
        .args(["-m", "asciinema", "cat"])
        .arg(&path)
        .env("ASCIINEMA_CONFIG_HOME", dir.join("asciinema-config"))
        .output()
        .map_err(|e| anyhow!("asciinema not runnable ({e}); `cargo xtask e2e` installs it"))?;
    anyhow::ensure!(
        output.status.success(),
        "asciinema cat refused the recording: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
