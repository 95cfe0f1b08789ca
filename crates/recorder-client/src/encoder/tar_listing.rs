//! Lists the members of a tar archive as its bytes stream past, in bounded memory: what a
//! `kubectl cp` recording says instead of the archive itself.
//!
//! Formats read (POSIX.1-2001 `pax`, IEEE Std 1003.1 "pax - Interchange Format", and GNU tar's
//! manual, "Basic Tar Format"): 512-byte header blocks of v7 tar, ustar (`ustar\0` `00`, with the
//! `prefix` field joined to the name) and GNU tar (`ustar  \0`, whose prefix area holds times
//! instead); sizes in octal or in GNU's base-256; GNU long names and long link names (type `L` and
//! `K`, the `././@LongLink` members); pax extended headers (type `x`: `path`, `linkpath` and
//! `size` override the next member; type `g` is read and ignored). An archive ends with two zero
//! blocks; the zero padding tar adds after them (to its 10 KiB record) is skipped.
//!
//! File contents are skipped, never held. Only a header block (512 bytes) and the data of a long
//! name or pax header (at most [`MAX_EXTENDED_HEADER`] bytes) are ever buffered. Bytes may be
//! split anywhere between calls. Anything that is not a tar archive (a bad checksum, an extended
//! header too long, bytes after the end) stops the listing with a note, and from then on every
//! byte, starting with the block that could not be read, is handed back as "not part of the
//! archive", so a caller can record it as it would any other output.

/// The most bytes of a GNU long name or of a pax extended header that are held; a longer one
/// stops the listing (Linux's `PATH_MAX` is 4096; tar itself writes far less).
pub(crate) const MAX_EXTENDED_HEADER: usize = 64 * 1024;

const BLOCK: usize = 512;

/// What kind of member an entry is (the header's `typeflag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A regular file (`0`, NUL, or `7` contiguous file).
    File,
    /// A directory (`5`).
    Directory,
    /// A symbolic link (`2`) to this target.
    Symlink(String),
    /// A hard link (`1`) to this earlier member.
    HardLink(String),
    /// Anything else (devices, FIFOs, GNU's special types), by its typeflag.
    Other(u8),
}

/// One member of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TarEntry {
    /// The member name: pax `path`, else a GNU long name, else ustar `prefix/name`, else `name`
    /// (invalid UTF-8 replaced as `String::from_utf8_lossy` does).
    pub(crate) name: String,
    /// The size of the member's data in bytes (pax `size` when given).
    pub(crate) size: u64,
    /// What the member is.
    pub(crate) kind: EntryKind,
}

/// What the listing found in the bytes fed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TarEvent {
    /// A member's header was read.
    Entry(TarEntry),
    /// The two zero blocks that end an archive.
    End,
    /// The bytes are not (or are no longer) a tar archive; the listing stops and every byte from
    /// here on is handed back. The text says what was wrong and where.
    Stopped(String),
}

/// An incremental tar lister; see the module docs.
#[derive(Debug)]
pub(crate) struct TarListing {
    state: State,
    /// The header block being gathered.
    block: Box<[u8; BLOCK]>,
    filled: usize,
    /// Archive bytes read so far (for the notes).
    offset: u64,
    /// Overrides for the next member, from long names and pax headers.
    next: Overrides,
    /// Zero blocks read in a row.
    zero_blocks: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extended {
    LongName,
    LongLink,
    Pax,
    GlobalPax,
}

#[derive(Debug)]
enum State {
    /// Gathering a header block.
    Header,
    /// Skipping a member's data and padding.
    Skip(u64),
    /// Gathering an extended header's data, then skipping its padding.
    Extended {
        kind: Extended,
        data: Vec<u8>,
        wanted: usize,
        padding: usize,
    },
    /// After the end of the archive: only zero padding may follow.
    Ended,
    /// Not a tar archive (any more): every byte is handed back.
    Stopped,
}

#[derive(Debug, Default)]
struct Overrides {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
}

impl Default for TarListing {
    fn default() -> Self {
        Self::new()
    }
}

impl TarListing {
    /// A listing at the start of an archive.
    pub(crate) fn new() -> Self {
        TarListing {
            state: State::Header,
            block: Box::new([0; BLOCK]),
            filled: 0,
            offset: 0,
            next: Overrides::default(),
            zero_blocks: 0,
        }
    }

    /// Whether the listing has stopped (every further byte is handed back).
    pub(crate) fn is_stopped(&self) -> bool {
        matches!(self.state, State::Stopped)
    }

    /// Reads more of the archive. What it finds goes to `events`; bytes that are not part of the
    /// archive (after [`TarEvent::Stopped`], which comes first) are appended to `not_archive`.
    pub(crate) fn feed(
        &mut self,
        mut bytes: &[u8],
        events: &mut Vec<TarEvent>,
        not_archive: &mut Vec<u8>,
    ) {
        while !bytes.is_empty() {
            let used = match &mut self.state {
                State::Stopped => {
                    not_archive.extend_from_slice(bytes);
                    return;
                }
                State::Ended => {
                    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
                    if zeros < bytes.len() {
                        self.stop(
                            format!(
                                "data after the end of the archive at byte {}",
                                self.offset + zeros as u64
                            ),
                            events,
                        );
                        not_archive.extend_from_slice(&bytes[zeros..]);
                        self.offset += bytes.len() as u64;
                        return;
                    }
                    zeros
                }
                State::Skip(remaining) => {
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::Header;
                    }
                    n
                }
                State::Extended {
                    data,
                    wanted,
                    padding,
                    ..
                } => {
                    if data.len() < *wanted {
                        let n = (*wanted - data.len()).min(bytes.len());
                        data.extend_from_slice(&bytes[..n]);
                        n
                    } else {
                        // Only while the data was complete but its padding not (see `settle`).
                        let n = (*padding).min(bytes.len());
                        *padding -= n;
                        n
                    }
                }
                State::Header => {
                    let n = (BLOCK - self.filled).min(bytes.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
                    self.filled += n;
                    n
                }
            };
            self.offset += used as u64;
            bytes = &bytes[used..];
            self.settle(events, not_archive);
        }
    }

    /// Ends the input: a note when the archive stopped in the middle of something.
    pub(crate) fn finish(&self) -> Option<String> {
        match &self.state {
            State::Ended | State::Stopped => None,
            State::Header if self.filled == 0 && self.offset == 0 => {
                Some("the archive is empty".to_owned())
            }
            State::Header if self.filled == 0 => Some(format!(
                "the archive ends at byte {} without its end-of-archive blocks",
                self.offset
            )),
            _ => Some(format!("the archive is cut short at byte {}", self.offset)),
        }
    }

    /// Acts on a state that is complete: a full header block, extended data read to the end.
    fn settle(&mut self, events: &mut Vec<TarEvent>, not_archive: &mut Vec<u8>) {
        match &mut self.state {
            State::Header if self.filled == BLOCK => {
                self.filled = 0;
                self.read_header(events, not_archive);
            }
            State::Extended {
                kind,
                data,
                wanted,
                padding,
            } if data.len() == *wanted => {
                let kind = *kind;
                let data = std::mem::take(data);
                let padding = *padding;
                if let Err(note) = self.apply_extended(kind, &data) {
                    self.stop(note, events);
                    return;
                }
                self.state = if padding == 0 {
                    State::Header
                } else {
                    State::Skip(padding as u64)
                };
            }
            _ => {}
        }
    }

    fn stop(&mut self, note: String, events: &mut Vec<TarEvent>) {
        self.state = State::Stopped;
        events.push(TarEvent::Stopped(note));
    }

    fn read_header(&mut self, events: &mut Vec<TarEvent>, not_archive: &mut Vec<u8>) {
        let block: &[u8; BLOCK] = &self.block;
        let at = self.offset - BLOCK as u64;
        if block.iter().all(|&b| b == 0) {
            self.zero_blocks += 1;
            if self.zero_blocks == 2 {
                self.state = State::Ended;
                events.push(TarEvent::End);
            }
            return;
        }
        self.zero_blocks = 0;
        let header = match Header::read(block) {
            Ok(header) => header,
            Err(problem) => {
                not_archive.extend_from_slice(&block[..]);
                self.stop(format!("{problem} at byte {at}"), events);
                return;
            }
        };
        let size = match header.typeflag {
            // Header-only types carry no data whatever their size field says (as Go's
            // archive/tar reads them).
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => 0,
            _ => self.next.size.take().unwrap_or(header.size),
        };
        let padded = size.checked_add((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64);
        let Some(padded) = padded else {
            self.stop(format!("a member size too large at byte {at}"), events);
            return;
        };
        let extended = match header.typeflag {
            b'L' => Some(Extended::LongName),
            b'K' => Some(Extended::LongLink),
            b'x' | b'X' => Some(Extended::Pax),
            b'g' => Some(Extended::GlobalPax),
            _ => None,
        };
        if let Some(kind) = extended {
            let wanted = match usize::try_from(size) {
                Ok(wanted) if wanted <= MAX_EXTENDED_HEADER => wanted,
                _ => {
                    self.stop(
                        format!(
                            "an extended header of {size} bytes (more than {MAX_EXTENDED_HEADER}) at byte {at}"
                        ),
                        events,
                    );
                    return;
                }
            };
            let padding = usize::try_from(padded - size).unwrap_or(0);
            self.state = State::Extended {
                kind,
                data: Vec::with_capacity(wanted),
                wanted,
                padding,
            };
            self.settle(events, not_archive);
            return;
        }
        let overrides = std::mem::take(&mut self.next);
        let name = overrides.path.unwrap_or(header.name);
        let link = overrides.link.unwrap_or(header.link);
        let kind = match header.typeflag {
            b'0' | 0 | b'7' => EntryKind::File,
            b'5' => EntryKind::Directory,
            b'2' => EntryKind::Symlink(link),
            b'1' => EntryKind::HardLink(link),
            other => EntryKind::Other(other),
        };
        events.push(TarEvent::Entry(TarEntry { name, size, kind }));
        if padded > 0 {
            self.state = State::Skip(padded);
        }
    }

    fn apply_extended(&mut self, kind: Extended, data: &[u8]) -> Result<(), String> {
        match kind {
            Extended::LongName => self.next.path = Some(c_string(data)),
            Extended::LongLink => self.next.link = Some(c_string(data)),
            Extended::GlobalPax => {}
            Extended::Pax => {
                for (key, value) in pax_records(data)
                    .ok_or_else(|| format!("a malformed pax header before byte {}", self.offset))?
                {
                    match key {
                        b"path" => {
                            self.next.path = Some(String::from_utf8_lossy(value).into_owned())
                        }
                        b"linkpath" => {
                            self.next.link = Some(String::from_utf8_lossy(value).into_owned());
                        }
                        b"size" => {
                            let size = std::str::from_utf8(value)
                                .ok()
                                .and_then(|s| s.parse::<u64>().ok())
                                .ok_or_else(|| {
                                    format!("a malformed pax size before byte {}", self.offset)
                                })?;
                            self.next.size = Some(size);
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// The fields of a header block the listing uses.
struct Header {
    name: String,
    link: String,
    size: u64,
    typeflag: u8,
}

impl Header {
    fn read(block: &[u8; BLOCK]) -> Result<Header, &'static str> {
        let stored = octal(&block[148..156]).ok_or("not a tar header (no checksum)")?;
        // The checksum is the sum of the block's bytes with its own field read as spaces; some
        // old tars summed signed bytes, which tar still accepts.
        let unsigned: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        let signed: i64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(b as i8)
                }
            })
            .sum();
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err("not a tar header (bad checksum)");
        }
        let size = size(&block[124..136]).ok_or("not a tar header (bad size)")?;
        let mut name = c_string(&block[0..100]);
        // POSIX ustar joins a non-empty prefix to the name; GNU tar's magic (`ustar  \0`) marks
        // the same bytes as times, and v7 has no magic.
        if &block[257..263] == b"ustar\0" {
            let prefix = c_string(&block[345..500]);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        Ok(Header {
            name,
            link: c_string(&block[157..257]),
            size,
            typeflag: block[156],
        })
    }
}

/// Text up to the first NUL, lossily UTF-8.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// An octal number field: optional leading spaces, digits, then NUL or spaces.
fn octal(field: &[u8]) -> Option<u64> {
    let text = field
        .iter()
        .position(|&b| b == 0)
        .map_or(field, |end| &field[..end]);
    let text = text.trim_ascii();
    if text.is_empty() {
        return Some(0);
    }
    text.iter().try_fold(0u64, |n, &b| {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        n.checked_mul(8)?.checked_add(u64::from(b - b'0'))
    })
}

/// A size field: octal, or GNU's base-256 (the first byte's high bit set) for large sizes.
fn size(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(&first) if first & 0x80 != 0 => {
            if first & 0x40 != 0 {
                // Negative: not a size.
                return None;
            }
            std::iter::once(first & 0x3f)
                .chain(field[1..].iter().copied())
                .try_fold(0u64, |n, b| n.checked_mul(256)?.checked_add(u64::from(b)))
        }
        _ => octal(field),
    }
}

/// The records of a pax extended header: `"<length> <key>=<value>\n"`, the length counting the
/// whole record. `None` when a record is malformed.
fn pax_records(mut data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut records = Vec::new();
    // Trailing NULs pad some writers' headers.
    while !data.is_empty() && data.iter().any(|&b| b != 0) {
        let space = data.iter().position(|&b| b == b' ')?;
        let length: usize = std::str::from_utf8(&data[..space]).ok()?.parse().ok()?;
        if length <= space + 1 || length > data.len() || data[length - 1] != b'\n' {
            return None;
        }
        let record = &data[space + 1..length - 1];
        let equals = record.iter().position(|&b| b == b'=')?;
        records.push((&record[..equals], &record[equals + 1..]));
        data = &data[length..];
    }
    Some(records)
}

#[cfg(test)]
mod tests;
