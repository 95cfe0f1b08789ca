//! `testkit-load`: an HTTP/1.1 load generator for the benchmarks, like `hey` or `wrk`.
//!
//! ```text
//! testkit-load --url https://127.0.0.1:PORT/path --connections 16 --duration 10s \
//!     [--warmup 1s] [--insecure | --ca-file CA.pem] [--header 'Authorization: Bearer x' ...]
//! ```
//!
//! It prints one JSON line to stdout (see [`testkit::load::LoadReport`]):
//! `{"requests":..,"seconds":..,"rate":..,"non_2xx":..,"errors":..,"p50_ms":..,"p99_ms":..,"sent":..}`
//! and exits 1 when no measured request got a 2xx answer. `--insecure` accepts any server
//! certificate: for benchmarks against a self-signed server only.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use clap::Parser;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use testkit::load::{LoadOptions, ServerTrust};
use url::Url;

/// Keep-alive connections sending the same GET back to back; one JSON line of results.
#[derive(Debug, Parser)]
#[command(name = "testkit-load", version)]
struct Args {
    /// `http://` or `https://` URL to GET.
    #[arg(long)]
    url: Url,
    /// Concurrent keep-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured time after the warm-up: `500ms`, `10s`, `2m` or seconds.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Time spent sending before measuring starts.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Accept any server certificate (benchmarks against a self-signed server only).
    #[arg(long, conflicts_with = "ca_file")]
    insecure: bool,
    /// PEM file of the CA certificates to verify an `https://` server against.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// An extra request header, `Name: value`; repeatable.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
}

fn main() -> ExitCode {
    match tokio::runtime::Runtime::new()
        .context("tokio runtime")
        .and_then(|runtime| runtime.block_on(load(Args::parse())))
    {
        Ok(code) => code,
        Err(error) => {
            eprintln!("testkit-load: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn load(args: Args) -> anyhow::Result<ExitCode> {
    let trust = match &args.ca_file {
        _ if args.insecure => ServerTrust::AnyCertificate,
        Some(path) => ServerTrust::Roots(Arc::new(roots(path)?)),
        None if args.url.scheme() == "https" => {
            return Err(anyhow!("--url is https: give --ca-file or --insecure"))
        }
        None => ServerTrust::Roots(Arc::new(RootCertStore::empty())),
    };
    let headers: HeaderMap = args.headers.into_iter().collect();
    let report = testkit::load::run(LoadOptions {
        url: args.url,
        connections: args.connections,
        warmup: args.warmup,
        duration: args.duration,
        headers,
        trust,
    })
    .await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
    stdout.flush()?;
    if report.successes() == 0 {
        eprintln!(
            "testkit-load: every request failed ({} non-2xx, {} errors{})",
            report.non_2xx,
            report.errors,
            report
                .first_error
                .as_deref()
                .map(|e| format!("; first: {e}"))
                .unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn roots(path: &PathBuf) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("--ca-file {}", path.display()))?
    {
        let cert = cert.with_context(|| format!("--ca-file {}", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("--ca-file {}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(anyhow!("--ca-file {}: no certificate", path.display()));
    }
    Ok(roots)
}

/// `500ms`, `10s`, `2m`, or a number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 500ms, 10s or 2m");
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, ""), |at| text.split_at(at));
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

/// `Name: value`.
fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not `Name: value`"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|e| format!("{name:?}: {e}"))?;
    let value = HeaderValue::try_from(value.trim()).map_err(|e| format!("header {name}: {e}"))?;
    Ok((name, value))
}
