//! `kube-recorder verify`

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use recorder_server::s3::S3Archive;
use recorder_server::seal::{self, PublicKey};

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The recording directory (as given to `serve --dir`). With --s3-bucket: the bucket is
    /// checked instead, copied first into a temporary directory (or into this one, which must
    /// then be empty or missing, to keep the copy).
    #[arg(long, env = "KUBE_RECORDER_DIR", required_unless_present = "s3_bucket")]
    dir: Option<PathBuf>,
    /// Check what `serve --storage s3` shipped to this bucket (needs --public-key).
    #[command(flatten)]
    s3: super::storage_args::S3LocationArgs,
    /// The recorder's public key (PEM), best a copy kept away from the recorder. Default: the
    /// `.pub` beside --signing-key, else DIR/signing-key.pem.pub.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// The recorder's signing key (`serve --signing-key`): its FILE.pub is the public key.
    #[arg(long, value_name = "FILE", conflicts_with = "public_key")]
    signing_key: Option<PathBuf>,
    /// Recordings to check; default all.
    ids: Vec<String>,
}

pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    // A bucket is copied into a directory first, then checked as one.
    let (dir, _copy) = match (&args.s3.s3_bucket, &args.dir) {
        (Some(_), dir) => {
            anyhow::ensure!(
                args.public_key.is_some() || args.signing_key.is_some(),
                "verifying a bucket needs --public-key (the key is never in the bucket)"
            );
            let (dir, temporary) = match dir {
                Some(dir) => (dir.clone(), None),
                None => {
                    let temporary = tempfile::tempdir().context("a temporary directory")?;
                    (temporary.path().to_owned(), Some(temporary))
                }
            };
            download(&args.s3, &dir).await?;
            (dir, temporary)
        }
        (None, Some(dir)) => (dir.clone(), None),
        (None, None) => anyhow::bail!("--dir or --s3-bucket is needed"),
    };
    let key_path = match (&args.public_key, &args.signing_key) {
        (Some(public), _) => public.clone(),
        (None, Some(signing)) => seal::public_key_path(signing),
        (None, None) => {
            let path = seal::public_key_path(&seal::default_key_path(&dir));
            eprintln!(
                "note: checking against {}, inside the directory checked; pass --public-key with a copy kept elsewhere to notice a directory re-signed with another key",
                path.display()
            );
            path
        }
    };
    let key = PublicKey::load(&key_path)?;
    let ids = args.ids.clone();
    let report = tokio::task::spawn_blocking(move || seal::verify(&dir, &key, &ids))
        .await
        .context("verify")??;
    let mut out = std::io::stdout().lock();
    for problem in &report.problems {
        writeln!(out, "{problem}")?;
    }
    out.flush()?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for removed in &report.removed {
        eprintln!("removed: {removed}");
    }
    if !report.in_bucket.is_empty() {
        eprintln!(
            "note: {} recording{} kept only in the S3 bucket (serve --s3-keep-local-days): their seals check out here, their bytes are checked by `verify --s3-bucket`",
            report.in_bucket.len(),
            if report.in_bucket.len() == 1 { " is" } else { "s are" }
        );
    }
    let removed = match report.removed.len() {
        0 => String::new(),
        n => format!(", {n} removed on purpose (retention)"),
    };
    eprintln!(
        "{} recordings verified{removed}, chain of {} entries, head {}",
        report.verified, report.entries, report.head
    );
    let problems = report.problems.len();
    anyhow::ensure!(
        report.is_clean(),
        "{problems} problem{} found",
        if problems == 1 { "" } else { "s" }
    );
    Ok(())
}

/// Copies the bucket's recordings and chain into `dir` (missing or empty).
async fn download(s3: &super::storage_args::S3LocationArgs, dir: &Path) -> anyhow::Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty: the bucket is copied into an empty directory",
            dir.display()
        );
    }
    let options = s3.options()?;
    let archive = S3Archive::new(&options)?;
    let report = archive
        .download_recordings(dir)
        .await
        .with_context(|| format!("copying bucket {} into {}", options.bucket, dir.display()))?;
    eprintln!(
        "copied {} objects ({} bytes) from bucket {} into {}",
        report.objects,
        report.bytes,
        options.bucket,
        dir.display()
    );
    Ok(())
}
