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
    /// Address for both surfaces on one port (HTTP/1.1 and h2c): uploads and the read API;
    /// port 0 picks a free port. Default 127.0.0.1:8080 unless --ingest-listen and
    /// --read-listen are given.
    #[arg(long, env = "KUBE_RECORDER_LISTEN", conflicts_with_all = ["ingest_listen", "read_listen"])]
    listen: Option<SocketAddr>,
    /// Address of the ingest surface alone: /record, /v2/record, /v2/event (recordings, port-forward
    /// captures, API events). Needs --read-listen.
    #[arg(long, requires = "read_listen")]
    ingest_listen: Option<SocketAddr>,
    /// Address of the read surface alone: the read API. Needs --ingest-listen.
    #[arg(long, requires = "ingest_listen")]
    read_listen: Option<SocketAddr>,
    /// Addresses allowed to upload (CIDRs or addresses, repeatable or space-separated); others
    /// need a tailnet grant with "write": true (--localapi-socket), else get 403.
    #[arg(long, num_args = 1.., value_name = "CIDR", default_values_t = ["127.0.0.0/8".to_owned(), "::1/128".to_owned()])]
    ingest_allow: Vec<String>,
    /// tailscaled's LocalAPI socket: tailnet callers are identified by whois, and the capability
    /// tailscale.com/cap/kube-recorder says who may write ({"write": true}) and what each may
    /// view ({"view": {"namespaces": [...], "users": [...]}}, "*" = all).
    #[arg(long, value_name = "PATH")]
    localapi_socket: Option<PathBuf>,
    /// Seconds a whois answer is reused for the same caller address.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    whois_ttl: f64,
    /// Viewer bearer tokens, one per line: TOKEN NAME NAMESPACES (NAMESPACES `*` or a,b,c; `#`
    /// comments); read again when the file changes.
    #[arg(long, value_name = "FILE")]
    viewer_tokens: Option<PathBuf>,
    /// Let anyone who reaches the read surface read everything, unauthenticated. For demos only.
    #[arg(long)]
    read_anonymous: bool,
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
    /// Remove finished recordings (casts and captures) that ended more than N days ago, unless
    /// held (`kube-recorder hold`); each removal is recorded in the chain first, so `verify`
    /// tells it from a deletion. Swept at start and then hourly. Default: keep everything.
    #[arg(long, env = "KUBE_RECORDER_RETAIN_DAYS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    retain_days: Option<u32>,
    /// Store recordings encrypted to this age X25519 public key (`age1...`, from `age-keygen`),
    /// as `<id>.cast.age` / `<id>.pfcap.age`: the recorder host keeps only ciphertext, the index
    /// entries (who, pod, times, sizes) stay plaintext. Repeatable: any of the keys decrypts.
    /// Read back with `kube-recorder play --identity FILE` or `age -d -i FILE`.
    #[arg(long, value_name = "RECIPIENT")]
    encrypt_to: Vec<String>,
    /// A file of age recipients to encrypt to, one `age1...` per line (`#` comments), like
    /// `age -R`. Repeatable; adds to --encrypt-to.
    #[arg(long, value_name = "FILE")]
    encrypt_to_file: Vec<PathBuf>,
    #[command(flatten)]
    storage: super::storage_args::StorageArgs,
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
        let whois_ttl = Duration::try_from_secs_f64(self.whois_ttl).map_err(|_| {
            anyhow::anyhow!("--whois-ttl {}: expected seconds >= 0", self.whois_ttl)
        })?;
        let default_listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        let (listen, read_listen) = match (self.listen, self.ingest_listen, self.read_listen) {
            (_, Some(ingest), Some(read)) => (ingest, Some(read)),
            (listen, _, _) => (listen.unwrap_or(default_listen), None),
        };
        let mut options = ServerOptions::new(listen, &self.dir);
        options.read_listen = read_listen;
        options.access.ingest_allow = self
            .ingest_allow
            .iter()
            .flat_map(|list| list.split([',', ' ']))
            .filter(|cidr| !cidr.is_empty())
            .map(|cidr| cidr.parse())
            .collect::<Result<_, _>>()
            .context("--ingest-allow")?;
        options.access.localapi_socket = self.localapi_socket.clone();
        options.access.whois_ttl = whois_ttl;
        options.access.viewer_tokens = self.viewer_tokens.clone();
        options.access.read_anonymous = self.read_anonymous;
        options.max_uploads = self.max_uploads;
        options.max_connections = self.max_connections;
        options.max_event_bytes = self.max_event_bytes;
        options.max_recording_bytes = self.max_recording_bytes;
        options.shutdown_grace = grace;
        options.v2 = !self.v1_only;
        options.events = !self.no_events;
        options.signing_key = self.signing_key.clone();
        options.retain_days = self.retain_days;
        options.encrypt_to =
            recorder_server::crypt::Recipients::parse(&self.encrypt_to, &self.encrypt_to_file)?;
        Ok(options)
    }
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    // Each upload holds a connection and a file: the usual soft limit of 1,024 would refuse
    // uploads at a few hundred sessions.
    if let Err(error) = tlsedge::raise_open_file_limit() {
        tracing::warn!(%error, "cannot raise the open-file limit");
    }
    let read_listen = options.read_listen.is_some();
    // The bucket is checked before anything is served.
    let shipper = args.storage.shipper(&args.dir).await?;
    let key_path = args
        .signing_key
        .clone()
        .unwrap_or_else(|| recorder_server::seal::default_key_path(&args.dir));
    let mut options = options;
    if let Some(shipper) = &shipper {
        restore_from_bucket(shipper.archive(), &args.dir, &key_path).await?;
        // Recordings kept only in the bucket are read from it.
        options.storage_backend = Some(std::sync::Arc::new(shipper.archive().clone()));
    }
    let server = RecorderServer::start(options)
        .await
        .context("starting the recorder")?;
    {
        let mut stdout = std::io::stdout().lock();
        if read_listen {
            writeln!(stdout, "ingest listening on http://{}", server.addr())?;
            writeln!(stdout, "read listening on http://{}", server.read_addr())?;
        } else {
            writeln!(stdout, "listening on http://{}", server.addr())?;
        }
        stdout.flush()?;
    }
    // Started once the server has recovered what an earlier run left open, so that ships too.
    let shipper = match shipper {
        Some(mut shipper) => {
            // The store has its sealer by now: removals it signs are carried out in the bucket,
            // and evictions are recorded in its chain.
            let sealer = server
                .store()
                .shared_sealer()
                .context("the recorder does not seal")?;
            shipper.record_evictions_with(sealer);
            Some(shipper.spawn())
        }
        None => None,
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    server.shutdown().await;
    if let Some(shipper) = shipper {
        shipper.stop(super::storage_args::LAST_PASS_GRACE).await;
    }
    Ok(())
}

/// Brings a new directory (no chain yet) in step with the bucket before the recorder starts: on a
/// new host (or an emptied volume) the chain, index entries and seals come back from the bucket,
/// and the event log too, so the recorder serves everything the bucket holds. Checked against the recorder's
/// key (created here when missing, as the recorder would): a bucket sealed by another key is
/// refused.
async fn restore_from_bucket(
    archive: &recorder_server::s3::S3Archive,
    dir: &std::path::Path,
    key_path: &std::path::Path,
) -> anyhow::Result<()> {
    let key_file = key_path.to_owned();
    let key = tokio::task::spawn_blocking(move || {
        recorder_server::seal::SigningKey::load_or_create(&key_file)
    })
    .await
    .context("loading the signing key")?
    .with_context(|| format!("signing key {}", key_path.display()))?;
    let report = archive
        .restore_index(dir, key.public())
        .await
        .with_context(|| {
            format!(
                "restoring {} from bucket {}",
                dir.display(),
                archive.bucket()
            )
        })?;
    // The restored recordings' files are only in the bucket (restore saw each there at its
    // sealed size): the chain says so before anything reads it, so `verify --dir` and the seal
    // status tell them from deleted ones.
    if !report.recordings.is_empty() {
        let (dir, key_path, location) = (
            dir.to_owned(),
            key_path.to_owned(),
            recorder_server::RecordingStorage::location(archive),
        );
        let ids = report.recordings.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let sealer = recorder_server::seal::Sealer::open(&dir, &key_path)?;
            for id in &ids {
                sealer.record_eviction(id, &location)?;
            }
            Ok(())
        })
        .await
        .context("recording the restored recordings as kept in S3")??;
    }
    if report.restored && (report.chain_bytes > 0 || report.event_days > 0) {
        tracing::info!(
            chain_bytes = report.chain_bytes,
            recordings = report.recordings.len(),
            skipped = report.skipped.len(),
            event_days = report.event_days,
            "a new directory: restored the index and the event log from S3"
        );
    }
    Ok(())
}
