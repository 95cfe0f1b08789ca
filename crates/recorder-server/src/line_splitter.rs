//! Splits a byte stream into lines with a bound on how long a line may grow.
//!
//! Playback and event listing read files and HTTP bodies chunk by chunk; this holds at most one
//! partial line of at most `max` bytes between chunks, so a corrupt file without newlines cannot
//! make a reader allocate without bound.

/// One line out of a [`LineSplitter`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line, without its `\n`.
    Whole(&'a [u8]),
    /// A line longer than the bound; its bytes were dropped.
    TooLong,
}

/// An incremental, bounded line splitter.
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    max: usize,
    overflowed: bool,
}

impl LineSplitter {
    /// A splitter that gives up on lines longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            max,
            overflowed: false,
        }
    }

    /// Feeds a chunk, calling `each` for every line it completes.
    pub fn push(&mut self, mut chunk: &[u8], mut each: impl FnMut(Line<'_>)) {
        while let Some(newline) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&chunk[..newline], &chunk[newline + 1..]);
            if self.overflowed || self.partial.len() + head.len() > self.max {
                each(Line::TooLong);
            } else if self.partial.is_empty() {
                each(Line::Whole(head));
            } else {
                self.partial.extend_from_slice(head);
                each(Line::Whole(&self.partial));
            }
            self.partial.clear();
            self.overflowed = false;
            chunk = rest;
        }
        if self.overflowed || self.partial.len() + chunk.len() > self.max {
            self.overflowed = true;
            self.partial.clear();
        } else {
            self.partial.extend_from_slice(chunk);
        }
    }

    /// Ends the input, handing over a last line that had no newline.
    pub fn finish(&mut self, mut each: impl FnMut(Line<'_>)) {
        if self.overflowed {
            each(Line::TooLong);
        } else if !self.partial.is_empty() {
            each(Line::Whole(&self.partial));
        }
        self.partial.clear();
        self.overflowed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut collect = |line: Line<'_>| match line {
            Line::Whole(bytes) => out.push(Some(bytes.to_vec())),
            Line::TooLong => out.push(None),
        };
        for chunk in chunks {
            splitter.push(chunk, &mut collect);
        }
        splitter.finish(&mut collect);
        out
    }

    #[test]
    fn splits_across_chunks() {
        assert_eq!(
            split(&[b"ab", b"c\nd", b"\n\nef"], 10),
            vec![
                Some(b"abc".to_vec()),
                Some(b"d".to_vec()),
                Some(Vec::new()),
                Some(b"ef".to_vec())
            ]
        );
    }

    #[test]
    fn drops_overlong_lines_and_recovers() {
        assert_eq!(
            split(&[b"123", b"456\nok\n12345", b"6"], 5),
            vec![None, Some(b"ok".to_vec()), None]
        );
        assert_eq!(split(&[b"12345\n"], 5), vec![Some(b"12345".to_vec())]);
    }
}
