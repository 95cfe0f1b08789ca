//! Log output: text or JSON lines on stderr, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::cli::{LogColor, LogFormat};

/// Installs the global subscriber. Text logs are coloured only as `color` says (by default only
/// on a terminal, so a log file holds no escape codes).
pub(crate) fn init(format: LogFormat, color: LogColor) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color.enabled())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
