//! `kube-recorder serve`

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use recorder_server::{RecorderServer, ServerOptions};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (HTTP/1.1 and h2c); port 0 picks a free port.
    #[arg(long, env = "KUBE_RECORDER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Recording directory; created if missing.
    #[arg(long, env = "KUBE_RECORDER_DIR")]
    dir: PathBuf,
    /// Recordings streaming in at once; more are refused with 503.
    #[arg(long, default_value_t = 1024)]
    max_uploads: usize,
    /// Connections served at once.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Largest API event accepted, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_event_bytes: usize,
    /// Largest recording, in bytes; uploads beyond it are cut and marked incomplete.
    #[arg(long)]
    max_recording_bytes: Option<u64>,
    /// Serve only protocol v1 (`/record`): `/v2/record` answers 404, as on recorders before v2.
    /// For checking clients' fallback.
    #[arg(long)]
    v1_only: bool,
    /// Do not accept API events: `HEAD` and `POST /v2/event` answer 404, as on recorders without
    /// event support (clients then warn and go on without events). For checking clients.
    #[arg(long)]
    no_events: bool,
    /// Seconds in-flight uploads get on SIGTERM/SIGINT before they are cut.
    #[arg(long, default_value_t = 10.0)]
    shutdown_grace: f64,
    /// Ed25519 key (PKCS#8 PEM) recordings are sealed with; created (mode 0600, with FILE.pub
    /// beside it) when missing. Default DIR/signing-key.pem; keep it outside DIR in production.
    #[arg(long, env = "KUBE_RECORDER_SIGNING_KEY", value_name = "FILE")]
    signing_key: Option<PathBuf>,
}

impl ServeArgs {
    fn options(&self) -> anyhow::Result<ServerOptions> {
        let grace = Duration::try_from_secs_f64(self.shutdown_grace).map_err(|_| {
            anyhow::anyhow!(
                "--shutdown-grace {}: expected seconds >= 0",
                self.shutdown_grace
            )
        })?;
        for (flag, value) in [
            ("--max-uploads", self.max_uploads),
            ("--max-connections", self.max_connections),
            ("--max-event-bytes", self.max_event_bytes),
        ] {
            anyhow::ensure!(value > 0, "{flag} {value}: must be at least 1");
        }
        let mut options = ServerOptions::new(self.listen, &self.dir);
        options.max_uploads = self.max_uploads;
        options.max_connections = self.max_connections;
        options.max_event_bytes = self.max_event_bytes;
        options.max_recording_bytes = self.max_recording_bytes;
        options.shutdown_grace = grace;
        options.v2 = !self.v1_only;
        options.events = !self.no_events;
        Ok(options)
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    recorder_server::seal::set_signing_key(args.signing_key.clone());
    let server = RecorderServer::start(options)
        .await
        .context("starting the recorder")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{}", server.addr())?;
        stdout.flush()?;
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    server.shutdown().await;
    Ok(())
}
