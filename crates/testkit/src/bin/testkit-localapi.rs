//! `testkit-localapi`: a tailscaled LocalAPI stand-in on a Unix socket (see
//! `testkit::localapi_standin`).
//!
//! Prints exactly one line, `listening on <socket>`, to stdout once the socket accepts
//! connections, so a test can wait for it instead of sleeping; stops on SIGTERM or SIGINT, removing
//! the socket. On SIGHUP it reads the table file again (a grant changed or was revoked) and prints
//! `table reloaded` once the new answers are in force (or `table not reloaded: <why>`, keeping the
//! old table).

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use testkit::localapi_standin::{LocalApiStandIn, StandInOptions, WhoIsTable};
use tokio::signal::unix::{signal, SignalKind};

/// A tailscaled LocalAPI stand-in: whois from a table, self-signed certs, status.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The Unix socket to listen on (a stale socket there is replaced).
    #[arg(long)]
    socket: PathBuf,
    /// The whois table: YAML or JSON map of "ip:port" | "ip" | "*" to an inline WhoIs or the
    /// path of a WhoIs JSON file (relative to the table).
    #[arg(long)]
    table: PathBuf,
    /// This node's MagicDNS name, with the trailing dot.
    #[arg(long, default_value = "proxy.tail1a2b3.ts.net.")]
    dns_name: String,
    /// A name certificates are issued for (repeatable); default: the DNS name without its dot.
    #[arg(long = "cert-domain", value_name = "DOMAIN")]
    cert_domains: Vec<String>,
    /// This node's tailnet address (repeatable); default: 100.100.1.1 and fd7a:115c:a1e0::1.
    #[arg(long = "tailscale-ip", value_name = "IP")]
    tailscale_ips: Vec<IpAddr>,
    /// The socket's accept backlog; small values make bursts of clients meet EAGAIN.
    #[arg(long, default_value_t = 1024)]
    accept_backlog: i32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let table = WhoIsTable::from_file(&args.table)
        .with_context(|| format!("--table {}", args.table.display()))?;
    let defaults = StandInOptions::default();
    let options = StandInOptions {
        cert_domains: if args.cert_domains.is_empty() {
            vec![args.dns_name.trim_end_matches('.').to_owned()]
        } else {
            args.cert_domains
        },
        tailscale_ips: if args.tailscale_ips.is_empty() {
            defaults.tailscale_ips
        } else {
            args.tailscale_ips
        },
        dns_name: args.dns_name,
        accept_backlog: args.accept_backlog,
    };
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

    let standin = LocalApiStandIn::start(&args.socket, table, options)
        .await
        .with_context(|| format!("--socket {}", args.socket.display()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", standin.socket().display())
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    drop(stdout);

    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                let line = match WhoIsTable::from_file(&args.table) {
                    Ok(table) => {
                        standin.replace_table(table);
                        "table reloaded".to_owned()
                    }
                    Err(error) => format!("table not reloaded: {error:#}"),
                };
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{line}")
                    .and_then(|()| stdout.flush())
                    .context("writing to stdout")?;
            }
        }
    }
    standin.shutdown().await;
    Ok(())
}
