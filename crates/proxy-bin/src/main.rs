//! `kube-auth-proxy`: an authenticating, session-recording proxy for the Kubernetes API.
//!
//! A thin binary over the `kube_auth_proxy` library: flags, logging, signals, and the start-up
//! lines on stdout that scripts wait for.

use std::io::Write as _;

use clap::Parser as _;
use kube_auth_proxy::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    kube_auth_proxy::init_logging(&cli);
    // A recorded session holds three connections: the usual soft limit of 1,024 open files
    // would refuse connections at a few hundred sessions.
    match tlsedge::raise_open_file_limit() {
        Ok(limit) => tracing::debug!(?limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
    // Client connections run on their own worker threads (--worker-threads); this runtime
    // accepts them and runs what is shared (metrics, reloads, identity refreshes).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // Once, through the log (text or JSON, as configured).
            tracing::error!("kube-auth-proxy cannot run: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let proxy = kube_auth_proxy::start(cli).await?;
    // Machine-readable start-up lines on stdout: tests and scripts wait for these instead of polling.
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on https://{}", proxy.listen())?;
        writeln!(
            stdout,
            "metrics listening on http://{}",
            proxy.metrics_listen()
        )?;
        stdout.flush()?;
    }
    wait_for_signal().await;
    tracing::info!("shutdown requested");
    // Also on stdout, beside the start-up lines, for supervisors and tests.
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "shutting down").and_then(|()| stdout.flush());
    }
    proxy.shutdown().await;
    Ok(())
}

/// SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
