//! `kube-recorder play`

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use recorder_server::crypt::{self, DecryptError, DecryptedChunks, Identities};
use recorder_server::{
    is_valid_id, CastEvent, Line, LineSplitter, Playback, PlaybackOptions, PlaybackStep,
};

use super::archive::{Archive, CastReader, Expected};
use super::SourceArgs;

/// Longest event line played; longer lines are skipped.
const MAX_LINE: usize = 64 * 1024 * 1024;

#[derive(Debug, Args)]
pub(crate) struct PlayArgs {
    /// The recording's ID (see `kube-recorder ls`), read from --dir or --server; or the path of
    /// a recording's file (`<id>.cast`, or `<id>.cast.age` with --identity).
    #[arg(value_name = "ID|FILE")]
    recording: String,
    #[command(flatten)]
    source: SourceArgs,
    /// Play this many times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Longest pause between two outputs, in seconds (after --speed); 0 plays without pauses.
    #[arg(long, default_value_t = 2.0)]
    max_wait: f64,
    /// An age identity file (`AGE-SECRET-KEY-1...` lines and `#` comments, as `age-keygen`
    /// writes it) that decrypts a recording stored encrypted (`serve --encrypt-to`).
    #[arg(long, short = 'i', value_name = "FILE", env = "KUBE_RECORDER_IDENTITY")]
    identity: Option<PathBuf>,
}

impl PlayArgs {
    fn options(&self) -> anyhow::Result<PlaybackOptions> {
        anyhow::ensure!(
            self.speed.is_finite() && self.speed > 0.0,
            "--speed {}: expected a number greater than 0",
            self.speed
        );
        let max_wait = Duration::try_from_secs_f64(self.max_wait)
            .map_err(|_| anyhow::anyhow!("--max-wait {}: expected seconds >= 0", self.max_wait))?;
        Ok(PlaybackOptions {
            speed: self.speed,
            max_wait: Some(max_wait),
        })
    }

    /// Whether the argument names a file rather than a recording of --dir or --server: it is
    /// not an ID, or no source is given and the file exists.
    fn is_file(&self) -> bool {
        let no_source = self.source.server.is_none() && self.source.dir.is_none();
        !is_valid_id(&self.recording) || (no_source && Path::new(&self.recording).is_file())
    }
}

pub(crate) async fn run(args: PlayArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    // The key is checked before anything is read, so a bad identity file fails at once.
    let identities = args
        .identity
        .as_deref()
        .map(Identities::read)
        .transpose()?
        .map(Arc::new);
    let what = format!("recording {}", args.recording);
    let (mut reader, expected) = if args.is_file() {
        let file = tokio::fs::File::open(&args.recording)
            .await
            .with_context(|| format!("cannot open {}", args.recording))?;
        (CastReader::Local(Box::pin(file)), Expected::default())
    } else {
        Archive::open(&args.source)
            .await?
            .cast(&args.recording)
            .await
            .with_context(|| what.clone())?
    };
    // Enough of the start to tell an age file (a download may arrive in small pieces).
    let mut first: Option<Bytes> = None;
    while first.as_ref().map_or(0, Bytes::len) < crypt::AGE_MAGIC.len() {
        match reader.next_chunk().await.with_context(|| what.clone())? {
            Some(piece) => {
                first = Some(match first.take() {
                    Some(start) => [start, piece].concat().into(),
                    None => piece,
                })
            }
            None => break,
        }
    }
    let encrypted = first.as_deref().is_some_and(crypt::is_age);
    anyhow::ensure!(
        encrypted || !expected.encrypted,
        "{what}: its index entry says it is encrypted, but its file is not an age file: it was \
         replaced or changed (`kube-recorder verify` names what is wrong)"
    );
    let mut source = match (encrypted, identities) {
        (false, _) => Source::Plain {
            reader,
            first: first.filter(|chunk| !chunk.is_empty()),
        },
        (true, None) => anyhow::bail!(
            "{what} is encrypted at rest (an age file): give the auditor's identity with \
             --identity FILE"
        ),
        (true, Some(identities)) => Source::Decrypted(start_decrypting(identities, reader, first)),
    };

    let mut player = Player::new(options);
    loop {
        match source.next().await {
            Ok(Some(chunk)) => player.push(&chunk).await?,
            Ok(None) => {
                player.finish().await?;
                return Ok(());
            }
            Err(Failure::Decrypt(DecryptError::CutOff { at })) => {
                // Everything before the cut is authentic and has been played.
                player.finish().await?;
                // A recording that ended complete was cut afterwards: that is tampering, not a
                // recorder that stopped mid-upload.
                anyhow::ensure!(
                    !expected.complete,
                    "{what} was cut off after {at} bytes, but its upload ended complete: the \
                     file was truncated afterwards (`kube-recorder verify` names what is wrong)"
                );
                eprintln!(
                    "kube-recorder: {what} was cut off after {at} bytes: the encrypted file ends \
                     without age's final chunk (the recorder stopped mid-upload, or the file was \
                     truncated; `kube-recorder verify` tells which)"
                );
                return Ok(());
            }
            Err(Failure::Decrypt(error)) => {
                player.finish().await?;
                return Err(anyhow::anyhow!("cannot decrypt {what}: {error}"));
            }
            Err(Failure::Read(error)) => return Err(error.context(what)),
        }
    }
}

/// Why the recording cannot be read further.
enum Failure {
    Decrypt(DecryptError),
    Read(anyhow::Error),
}

/// Where the cast's bytes come from.
enum Source {
    /// A cast as stored; `first` is the piece already read.
    Plain {
        reader: CastReader,
        first: Option<Bytes>,
    },
    /// An age file, decrypted on the blocking pool.
    Decrypted(DecryptedChunks),
}

impl Source {
    async fn next(&mut self) -> Result<Option<Bytes>, Failure> {
        match self {
            Source::Plain { reader, first } => match first.take() {
                Some(chunk) => Ok(Some(chunk)),
                None => reader.next_chunk().await.map_err(Failure::Read),
            },
            Source::Decrypted(chunks) => match chunks.next().await {
                None => Ok(None),
                Some(Ok(chunk)) => Ok(Some(chunk)),
                Some(Err(DecryptError::Io(error))) => Err(Failure::Read(error.into())),
                Some(Err(error)) => Err(Failure::Decrypt(error)),
            },
        }
    }
}

/// Sends the ciphertext, starting with `first`, to a decryption on the blocking pool.
fn start_decrypting(
    identities: Arc<Identities>,
    mut reader: CastReader,
    first: Option<Bytes>,
) -> DecryptedChunks {
    let (input, chunks) = crypt::decrypt_stream(identities);
    tokio::spawn(async move {
        if let Some(first) = first {
            if input.send(Ok(first)).await.is_err() {
                return;
            }
        }
        loop {
            let piece = match reader.next_chunk().await {
                Ok(Some(piece)) => Ok(piece),
                Ok(None) => return,
                Err(error) => Err(std::io::Error::other(format!("{error:#}"))),
            };
            let failed = piece.is_err();
            if input.send(piece).await.is_err() || failed {
                return;
            }
        }
    });
    chunks
}

/// Plays cast bytes as they come: lines, events, timing, output.
struct Player {
    playback: Playback,
    splitter: LineSplitter,
    lines: LineCount,
    events: Vec<CastEvent>,
}

impl Player {
    fn new(options: PlaybackOptions) -> Self {
        Self {
            playback: Playback::new(options),
            splitter: LineSplitter::new(MAX_LINE),
            lines: LineCount::default(),
            events: Vec::new(),
        }
    }

    async fn push(&mut self, chunk: &[u8]) -> anyhow::Result<()> {
        let (lines, events) = (&mut self.lines, &mut self.events);
        self.splitter.push(chunk, |line| lines.read(line, events));
        self.show().await
    }

    /// Plays the last line (one without a line break) and reports skipped lines.
    async fn finish(&mut self) -> anyhow::Result<()> {
        let (lines, events) = (&mut self.lines, &mut self.events);
        self.splitter.finish(|line| lines.read(line, events));
        self.show().await?;
        if self.lines.unreadable > 0 {
            eprintln!(
                "kube-recorder: skipped {} unreadable line(s)",
                self.lines.unreadable
            );
        }
        Ok(())
    }

    async fn show(&mut self) -> anyhow::Result<()> {
        for event in self.events.drain(..) {
            match self.playback.step(&event) {
                PlaybackStep::Output { wait, text } => {
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(text.as_bytes())?;
                    stdout.flush()?;
                }
                PlaybackStep::Resize { .. } | PlaybackStep::Skip => {}
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct LineCount {
    seen: u64,
    unreadable: u64,
}

impl LineCount {
    /// Reads one line of the cast: the first is the header, the rest events.
    fn read(&mut self, line: Line<'_>, events: &mut Vec<CastEvent>) {
        self.seen += 1;
        if self.seen == 1 {
            return;
        }
        match line {
            Line::Whole(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => {}
            Line::Whole(bytes) => match CastEvent::parse(bytes) {
                Ok(event) => events.push(event),
                Err(_) => self.unreadable += 1,
            },
            Line::TooLong => self.unreadable += 1,
        }
    }
}
