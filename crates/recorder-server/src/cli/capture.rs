//! `kube-recorder capture`: the bytes of one direction of a port-forward capture, to stdout.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use recorder_server::{Line, LineSplitter, MAX_CAPTURE_LINE};

use super::archive::Archive;
use super::SourceArgs;

/// `--direction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Direction {
    /// From the client to the pod (`c` events).
    C,
    /// From the pod to the client (`s` events).
    S,
}

#[derive(Debug, Args)]
pub(crate) struct CaptureArgs {
    /// The capture's ID (see `kube-recorder ls`, TYPE `port-forward`).
    id: String,
    #[command(flatten)]
    source: SourceArgs,
    /// Which bytes: `c` sent by the client to the pod, `s` sent by the pod to the client.
    #[arg(long, value_enum)]
    direction: Direction,
}

pub(crate) async fn run(args: CaptureArgs) -> anyhow::Result<()> {
    let archive = Archive::open(&args.source).await?;
    let mut capture = archive
        .capture(&args.id)
        .await
        .with_context(|| format!("capture {}", args.id))?;
    let code = match args.direction {
        Direction::C => castfmt::CaptureDirection::ClientToPod,
        Direction::S => castfmt::CaptureDirection::PodToClient,
    };
    let mut splitter = LineSplitter::new(MAX_CAPTURE_LINE);
    let mut extract = Extract::new(code);
    let mut out = std::io::stdout().lock();
    loop {
        let chunk = capture.next_chunk().await?;
        let mut pieces = Vec::new();
        match &chunk {
            Some(chunk) => splitter.push(chunk, |line| pieces.push(extract.read(line))),
            None => splitter.finish(|line| pieces.push(extract.read(line))),
        }
        for piece in pieces {
            out.write_all(&piece?)?;
        }
        if chunk.is_none() {
            break;
        }
    }
    out.flush()?;
    anyhow::ensure!(extract.lines > 0, "capture {} is empty", args.id);
    if extract.unreadable > 0 {
        eprintln!(
            "kube-recorder: skipped {} unreadable line(s); the bytes are incomplete",
            extract.unreadable
        );
    }
    Ok(())
}

/// Reads a capture line by line, keeping the bytes of one direction.
struct Extract {
    direction: castfmt::CaptureDirection,
    lines: u64,
    unreadable: u64,
}

impl Extract {
    fn new(direction: castfmt::CaptureDirection) -> Self {
        Extract {
            direction,
            lines: 0,
            unreadable: 0,
        }
    }

    /// The bytes of one line (none for the header, notes and the other direction); an error
    /// when the recording is not a capture.
    fn read(&mut self, line: Line<'_>) -> anyhow::Result<Vec<u8>> {
        self.lines += 1;
        let bytes = match line {
            Line::Whole(bytes) => bytes,
            Line::TooLong => {
                self.unreadable += 1;
                return Ok(Vec::new());
            }
        };
        if self.lines == 1 {
            let header = castfmt::LenientCaptureHeader::parse(bytes)
                .ok()
                .filter(|h| h.problem().is_none());
            anyhow::ensure!(
                header.is_some(),
                "not a port-forward capture (its first line is no kap-port-forward/1 header)"
            );
            return Ok(Vec::new());
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let event = match castfmt::CaptureEvent::parse(bytes) {
            Ok(event) => event,
            Err(_) => {
                self.unreadable += 1;
                return Ok(Vec::new());
            }
        };
        if event.direction() != Some(self.direction) {
            return Ok(Vec::new());
        }
        Ok(event.bytes().unwrap_or_else(|_| {
            self.unreadable += 1;
            Vec::new()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(file: &[u8], direction: castfmt::CaptureDirection) -> anyhow::Result<Vec<u8>> {
        let mut extract = Extract::new(direction);
        let mut splitter = LineSplitter::new(MAX_CAPTURE_LINE);
        let mut pieces = Vec::new();
        // Split anywhere: byte by byte.
        for byte in file {
            splitter.push(std::slice::from_ref(byte), |line| {
                pieces.push(extract.read(line));
            });
        }
        splitter.finish(|line| pieces.push(extract.read(line)));
        let mut bytes = Vec::new();
        for piece in pieces {
            bytes.extend(piece?);
        }
        Ok(bytes)
    }

    #[test]
    fn keeps_the_bytes_of_one_direction() {
        let file = concat!(
            r#"{"version":"kap-port-forward/1","id":"s"}"#,
            "\n",
            r#"[0.1,"c","AAE="]"#,
            "\n",
            r#"[0.2,"s","/w=="]"#,
            "\n",
            r#"[0.3,"m","note"]"#,
            "\n",
            r#"[0.4,"c","Ag"]"#,
        );
        let c = extract(file.as_bytes(), castfmt::CaptureDirection::ClientToPod).expect("c");
        assert_eq!(c, [0, 1, 2]);
        let s = extract(file.as_bytes(), castfmt::CaptureDirection::PodToClient).expect("s");
        assert_eq!(s, [255]);
    }

    #[test]
    fn refuses_a_cast() {
        let cast = b"{\"version\":2,\"width\":80,\"height\":24}\n[0.1,\"o\",\"hi\"]\n";
        assert!(extract(cast, castfmt::CaptureDirection::ClientToPod).is_err());
    }
}
