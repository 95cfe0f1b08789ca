//! How a `kubectl cp` session is recorded: its tar stream as a listing of marker events, never as
//! text.
//!
//! A header with `fileCopy` ([`castfmt::FileCopy`]) says the session is `kubectl cp`: from the
//! pod, tar writes the archive on stdout (its messages go to stderr, recorded as usual); to the
//! pod, kubectl sends it on stdin. The archive's bytes go through a [`TarListing`] and each member
//! becomes one `m` event: `file: x/a.bin (300000 bytes)` for a regular file
//! ([`CopiedFile::marker_label`], which the recorder reads back into its index), `directory: x/`,
//! `symlink: x/l -> target`, `hard link: x/h -> x/a`, `special file: x/p (type 6)`. Archive bytes
//! themselves are never recorded (keeping them as a separate binary attachment is left for later).
//!
//! When the stream turns out not to be a tar archive, a marker says why and every byte from there
//! on is recorded as the stream would be in any session (stdout as `o`; stdin as `i` when input
//! is recorded), so a program posing as tar cannot hide its output from the recording. A copy
//! that resumes inside the archive (`kubectl cp --retries` after a failure) cannot be listed; a
//! marker says so and its stream is recorded as it is, for the same reason: bytes that are not
//! known to be a tar member's are never left out.

use castfmt::{CastHeader, CopiedFile, FileCopyDirection};

use super::tar_listing::{EntryKind, TarEvent, TarListing};

/// Which stream of the session carries the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArchiveStream {
    /// The command's stdout (a copy from the pod).
    Stdout,
    /// The command's stdin (a copy to the pod).
    Stdin,
}

/// The listing of one file copy session's archive.
#[derive(Debug)]
pub(super) struct FileCopyListing {
    stream: ArchiveStream,
    /// `None` for a resumed copy, whose stream starts inside the archive.
    listing: Option<TarListing>,
    resume_from: u64,
    /// Whether the stream is recorded as it is from here on, its marker written (a resumed copy,
    /// or one whose command received input).
    resumed_said: bool,
    events: Vec<TarEvent>,
    finished: bool,
}

impl FileCopyListing {
    /// The listing for a session whose header says it is a file copy.
    pub(super) fn for_header(header: &CastHeader) -> Option<FileCopyListing> {
        let copy = header.file_copy.as_ref()?;
        let stream = match copy.direction {
            FileCopyDirection::FromPod => ArchiveStream::Stdout,
            FileCopyDirection::ToPod => ArchiveStream::Stdin,
            // A direction this encoder does not know: its streams are recorded as usual.
            _ => return None,
        };
        let resume_from = copy.resume_from.unwrap_or(0);
        Some(FileCopyListing {
            stream,
            listing: (resume_from == 0).then(TarListing::new),
            resume_from,
            resumed_said: false,
            events: Vec::new(),
            finished: false,
        })
    }

    /// The stream that carries the archive.
    pub(super) fn stream(&self) -> ArchiveStream {
        self.stream
    }

    /// Reads archive bytes: the labels of the markers to write go to `labels`, bytes that are not
    /// part of the archive to `not_archive`.
    pub(super) fn feed(
        &mut self,
        bytes: &[u8],
        labels: &mut Vec<String>,
        not_archive: &mut Vec<u8>,
    ) {
        let Some(listing) = &mut self.listing else {
            if !std::mem::replace(&mut self.resumed_said, true) {
                labels.push(format!(
                    "file listing skipped: the copy resumed {} bytes into the archive; {} is recorded as it is",
                    self.resume_from,
                    self.stream_name()
                ));
            }
            not_archive.extend_from_slice(bytes);
            return;
        };
        let was_stopped = listing.is_stopped();
        listing.feed(bytes, &mut self.events, not_archive);
        let stream = self.stream;
        for event in self.events.drain(..) {
            match event {
                TarEvent::Entry(entry) => labels.push(entry_label(entry)),
                TarEvent::End => {}
                TarEvent::Stopped(note) if !was_stopped => labels.push(format!(
                    "file listing stopped: {note}; the rest of {} is recorded as it is",
                    stream_name(stream)
                )),
                TarEvent::Stopped(_) => {}
            }
        }
    }

    /// Input reached the command of a copy from the pod, which kubectl gives none: it could be a
    /// program driven while its output is read as an archive, so the listing stops and the rest
    /// of stdout is recorded as it is. (The SPDY kubelet takes a stdin stream whatever the
    /// request's `stdin` parameter said.)
    pub(super) fn input_arrived(&mut self, labels: &mut Vec<String>) {
        if self.stream != ArchiveStream::Stdout || self.resumed_said {
            return;
        }
        if self.listing.as_ref().is_some_and(TarListing::is_stopped) {
            return;
        }
        self.listing = None;
        self.resumed_said = true;
        labels.push(
            "file listing stopped: the command received input; the rest of stdout is recorded as it is"
                .to_owned(),
        );
    }

    /// The end of the session: a marker when the archive was incomplete or not listed.
    pub(super) fn finish(&mut self, labels: &mut Vec<String>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if let Some(note) = self.listing.as_ref().and_then(TarListing::finish) {
            labels.push(format!("file listing incomplete: {note}"));
        }
    }

    fn stream_name(&self) -> &'static str {
        stream_name(self.stream)
    }
}

fn stream_name(stream: ArchiveStream) -> &'static str {
    match stream {
        ArchiveStream::Stdout => "stdout",
        ArchiveStream::Stdin => "stdin",
    }
}

fn entry_label(entry: super::tar_listing::TarEntry) -> String {
    let name = entry.name;
    match entry.kind {
        EntryKind::File => CopiedFile {
            path: name,
            size: entry.size,
        }
        .marker_label(),
        EntryKind::Directory => format!("directory: {name}"),
        EntryKind::Symlink(target) => format!("symlink: {name} -> {target}"),
        EntryKind::HardLink(target) => format!("hard link: {name} -> {target}"),
        EntryKind::Other(typeflag) => {
            format!(
                "special file: {name} (type {})",
                char::from(typeflag).escape_default()
            )
        }
    }
}

#[cfg(test)]
mod tests;
