//! `kube-recorder verify`

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use recorder_server::seal::{self, PublicKey};

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The recording directory (as given to `serve --dir`).
    #[arg(long, env = "KUBE_RECORDER_DIR")]
    dir: PathBuf,
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
    let key_path = match (&args.public_key, &args.signing_key) {
        (Some(public), _) => public.clone(),
        (None, Some(signing)) => seal::public_key_path(signing),
        (None, None) => {
            let path = seal::public_key_path(&seal::default_key_path(&args.dir));
            eprintln!(
                "note: checking against {}, inside the directory checked; pass --public-key with a copy kept elsewhere to notice a directory re-signed with another key",
                path.display()
            );
            path
        }
    };
    let key = PublicKey::load(&key_path)?;
    let dir = args.dir.clone();
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
