//! Log output: text or JSON lines on stderr, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, LogFormat};

/// Installs the global subscriber as `--log-format` and `--log-color` say. Text logs are coloured
/// only on a terminal by default, so a log file holds no escape codes.
pub fn init(cli: &Cli) {
    let (format, color) = (cli.log_format, cli.log_color);
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
