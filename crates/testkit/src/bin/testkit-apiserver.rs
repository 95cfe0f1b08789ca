//! `testkit-apiserver`: the kube-apiserver stand-in as a process.
//!
//! ```text
//! testkit-apiserver --listen 127.0.0.1:0 --config FILE [--tls --pki-dir DIR]
//! ```
//!
//! Once listening it prints exactly one line to stdout, `listening on http(s)://ADDR`, so a test
//! can read the address instead of sleeping. Logs go to stderr (`RUST_LOG`, default `info`). It
//! exits on SIGTERM or SIGINT.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use testkit::apiserver::{ApiServer, ApiServerConfig, ServeOptions};

/// A kube-apiserver stand-in for tests, faithful enough for the real kubectl.
#[derive(Debug, Parser)]
#[command(name = "testkit-apiserver", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// YAML configuration (version, tokens, clientCerts, namespaces, pods, generatedPods);
    /// without it, a demo configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve HTTPS with a generated CA; client certificates are verified against it but optional.
    #[arg(long)]
    tls: bool,
    /// Write ca.crt and the configured client certificates (NAME.crt, NAME.key) here.
    #[arg(long, requires = "tls")]
    pki_dir: Option<PathBuf>,
    /// Serve a self-signed CA:TRUE certificate (as `openssl req -x509` makes) instead of one
    /// signed by the generated CA; ca.crt is then that certificate.
    #[arg(long, requires = "tls")]
    self_signed_ca: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => {
            ApiServerConfig::from_yaml_file(path).map_err(|e| anyhow::anyhow!("--config: {e}"))?
        }
        None => ApiServerConfig::default(),
    };
    let options = ServeOptions {
        listen: args.listen,
        tls: args.tls,
        pki_dir: args.pki_dir,
        self_signed_ca: args.self_signed_ca,
    };
    let server = ApiServer::start(config, options).await?;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", server.url())?;
    stdout.flush()?;
    drop(stdout);

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        result = tokio::signal::ctrl_c() => {
            result?;
            tracing::info!("SIGINT: shutting down");
        }
    }
    server.shutdown().await;
    Ok(())
}
