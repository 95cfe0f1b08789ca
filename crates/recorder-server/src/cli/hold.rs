//! `kube-recorder hold` and `kube-recorder release`

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use recorder_server::Store;

#[derive(Debug, Args)]
pub(crate) struct HoldArgs {
    /// The recording directory (as given to `serve --dir`).
    #[arg(long, env = "KUBE_RECORDER_DIR")]
    dir: PathBuf,
    /// Why the recording is kept (shown in holds.json).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// The recording to keep.
    id: String,
}

#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    /// The recording directory (as given to `serve --dir`).
    #[arg(long, env = "KUBE_RECORDER_DIR")]
    dir: PathBuf,
    /// The recording to let retention remove again.
    id: String,
}

async fn open(dir: &std::path::Path) -> anyhow::Result<Store> {
    Store::open(dir)
        .await
        .with_context(|| format!("--dir {}", dir.display()))
}

pub(crate) async fn hold(args: HoldArgs) -> anyhow::Result<()> {
    let store = open(&args.dir).await?;
    store.hold(&args.id, args.reason).await?;
    println!("held {}", args.id);
    Ok(())
}

pub(crate) async fn release(args: ReleaseArgs) -> anyhow::Result<()> {
    let store = open(&args.dir).await?;
    if store.release(&args.id).await? {
        println!("released {}", args.id);
    } else {
        eprintln!("note: {} was not held", args.id);
    }
    Ok(())
}
