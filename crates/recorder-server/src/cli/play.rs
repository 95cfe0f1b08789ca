//! `kube-recorder play`

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use recorder_server::{CastEvent, Line, LineSplitter, Playback, PlaybackOptions, PlaybackStep};

use super::archive::Archive;
use super::SourceArgs;

/// Longest event line played; longer lines are skipped.
const MAX_LINE: usize = 64 * 1024 * 1024;

#[derive(Debug, Args)]
pub(crate) struct PlayArgs {
    /// The recording's ID (see `kube-recorder ls`).
    id: String,
    #[command(flatten)]
    source: SourceArgs,
    /// Play this many times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Longest pause between two outputs, in seconds (after --speed); 0 plays without pauses.
    #[arg(long, default_value_t = 2.0)]
    max_wait: f64,
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
}

pub(crate) async fn run(args: PlayArgs) -> anyhow::Result<()> {
    let mut playback = Playback::new(args.options()?);
    let archive = Archive::open(&args.source).await?;
    let mut cast = archive
        .cast(&args.id)
        .await
        .with_context(|| format!("recording {}", args.id))?;
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut lines = LineCount::default();
    let mut events = Vec::new();
    let mut ended = false;
    while !ended {
        match cast.next_chunk().await? {
            Some(chunk) => splitter.push(&chunk, |line| lines.read(line, &mut events)),
            None => {
                splitter.finish(|line| lines.read(line, &mut events));
                ended = true;
            }
        }
        for event in events.drain(..) {
            match playback.step(&event) {
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
    }
    if lines.unreadable > 0 {
        eprintln!(
            "kube-recorder: skipped {} unreadable line(s)",
            lines.unreadable
        );
    }
    Ok(())
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
