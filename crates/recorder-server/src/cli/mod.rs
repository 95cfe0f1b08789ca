//! Command line of `kube-recorder`: one typed struct per subcommand, validated once.

mod archive;
mod capture;
mod events;
mod hold;
mod ls;
mod play;
mod serve;
mod storage_args;
mod verify;

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

/// A session recorder for kubectl exec/attach sessions and Kubernetes API events.
#[derive(Debug, Parser)]
#[command(name = "kube-recorder", version, about)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    /// Colour in logs: auto (only when stderr is a terminal), always or never.
    #[arg(long, global = true, env = "KUBE_RECORDER_LOG_COLOR", value_enum, default_value_t = LogColor::Auto)]
    log_color: LogColor,
}

/// `--log-color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogColor {
    /// Colour only when stderr is a terminal (never in a file or a pipe).
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the recorder: uploads (/v2/record, /record, /v2/event) and the read API, on one port
    /// (--listen) or two (--ingest-listen, --read-listen), HTTP/1.1 and h2c.
    Serve(Box<serve::ServeArgs>),
    /// List recordings, newest first.
    Ls(ls::LsArgs),
    /// Play a recording's output in the terminal.
    Play(play::PlayArgs),
    /// Print stored API events, oldest first.
    ///
    /// One line per event: TIME  USER  VERB  NAMESPACE  RESOURCE, then `request  METHOD PATH`
    /// for a request event, or `response  METHOD PATH  STATUS  DURATION  BYTES bytes` for a
    /// response event (and `error: ...` when the response broke off). A response shows the
    /// method and path of the request event with the same id; when that request event is not
    /// found the line says so. `-o json` prints the events exactly as stored instead, one JSON
    /// object per line.
    Events(events::EventsArgs),
    /// Write the bytes of one direction of a port-forward capture to stdout.
    ///
    /// `--direction c`: what the client sent to the pod; `--direction s`: what the pod sent
    /// back. For example `kube-recorder capture ID --direction s --dir DIR > out.bin`.
    Capture(capture::CaptureArgs),
    /// Check the recordings' seals: signatures, contents and the chain.
    ///
    /// Prints one line per problem, `ID: reason` (a cast changed or truncated, a recording
    /// deleted, chain entries reordered, ...), and exits non-zero when there is any.
    Verify(verify::VerifyArgs),
    /// Keep a recording regardless of retention (`serve --retain-days`) until released.
    ///
    /// Held IDs are stored in DIR/holds.json; `ls --dir` marks them `held`.
    Hold(hold::HoldArgs),
    /// Release a hold: retention may remove the recording again once it is old enough.
    Release(hold::ReleaseArgs),
}

/// Where to read recordings and events from.
#[derive(Debug, Clone, ClapArgs)]
pub(crate) struct SourceArgs {
    /// A running recorder, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "KUBE_RECORDER_SERVER", conflicts_with = "dir")]
    server: Option<String>,
    /// A recording directory (as given to `serve --dir`).
    #[arg(long, env = "KUBE_RECORDER_DIR")]
    dir: Option<PathBuf>,
    /// A viewer token for --server (a line of the recorder's --viewer-tokens file).
    #[arg(
        long,
        env = "KUBE_RECORDER_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// A file holding the viewer token for --server.
    #[arg(long, env = "KUBE_RECORDER_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// With --dir: the bucket `serve --storage s3` ships to, where recordings no longer kept in
    /// the directory (`--s3-keep-local-days`) are read from.
    #[command(flatten)]
    s3: storage_args::S3LocationArgs,
}

impl SourceArgs {
    /// The viewer token to send, if one was given.
    pub(crate) fn token(&self) -> anyhow::Result<Option<String>> {
        if let Some(token) = &self.token {
            return Ok(Some(token.trim().to_owned()));
        }
        match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--token-file {}: {e}", path.display()))?;
                Ok(Some(text.trim().to_owned()))
            }
            None => Ok(None),
        }
    }
}

/// Runs the chosen subcommand.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let serving = matches!(args.command, Command::Serve(_));
    let color = match args.log_color {
        LogColor::Auto => {
            use std::io::IsTerminal as _;
            std::io::stderr().is_terminal()
        }
        LogColor::Always => true,
        LogColor::Never => false,
    };
    init_logging(if serving { "info" } else { "warn" }, color);
    match args.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Ls(args) => ls::run(args).await,
        Command::Play(args) => play::run(args).await,
        Command::Events(args) => events::run(args).await,
        Command::Capture(args) => capture::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Hold(args) => hold::hold(args).await,
        Command::Release(args) => hold::release(args).await,
    }
}

fn init_logging(default: &str, color: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color)
        .with_writer(std::io::stderr)
        .init();
}
