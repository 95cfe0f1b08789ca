//! API events (`POST /v2/event`): storage as append-only JSON lines, and filtered listing.
//!
//! Each event is one JSON object (Tailscale's `sessionrecording.Event`: `type`, `id`, `timestamp`,
//! `userAgent`, `request`, `kubernetes` with Go field names such as `Verb` and `Namespace`,
//! `source` with `node`, `nodeID`, `nodeUser`, `nodeUserID` or `nodeTags`). It is stored byte for
//! byte, except that line breaks between JSON tokens become spaces so it fits on one line, in
//! `events/YYYY-MM-DD.jsonl` by the UTC day it arrived.
//!
//! Fsync policy (group commit): `POST /v2/event` is answered 200 only after the line holding the
//! event has been written and `fdatasync`ed, so an acknowledged event survives a crash. Events
//! arriving while a sync is in progress are written together and share the next sync (at most
//! 1024 events or 32 MiB per sync), so under load durability costs one sync per batch.

pub(crate) mod appender;
mod filter;

use std::collections::VecDeque;
use std::io::Read as _;
use std::path::Path;

use serde_json::value::RawValue;

pub use filter::{parse_instant, EventFilter, FilterError};

use crate::error::StoreError;
use crate::line_splitter::{Line, LineSplitter};
use crate::store::dir_entries;

pub use castfmt::{API_REQUEST_EVENT_TYPE, API_RESPONSE_EVENT_TYPE};

/// File name suffix of event files.
const EVENT_FILE_SUFFIX: &str = ".jsonl";

/// Why an event body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The body is not JSON.
    #[error("event is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("event is not a JSON object")]
    NotObject,
}

/// Checks an event body and turns it into the line to store.
pub(crate) fn event_line(body: &[u8]) -> Result<Vec<u8>, EventError> {
    let raw: &RawValue =
        serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    if !raw.get().starts_with('{') {
        return Err(EventError::NotObject);
    }
    // JSON strings cannot hold raw control characters, so every CR or LF is whitespace between
    // tokens, and a space does the same job.
    Ok(raw
        .get()
        .bytes()
        .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect())
}

/// Reads the event files of `dir` in order and keeps the last `filter.limit` matches.
pub(crate) fn query(dir: &Path, filter: &EventFilter) -> Result<Vec<Box<RawValue>>, StoreError> {
    let mut days: Vec<(String, std::path::PathBuf)> = dir_entries(dir)?
        .into_iter()
        .filter_map(|(name, path)| {
            let day = name.strip_suffix(EVENT_FILE_SUFFIX)?.to_owned();
            Some((day, path))
        })
        .collect();
    days.sort();
    let limit = filter.limit.unwrap_or(usize::MAX);
    let mut kept: VecDeque<Box<RawValue>> = VecDeque::new();
    if limit == 0 {
        return Ok(Vec::new());
    }
    for (day, path) in days {
        if filter.skips_day(&day) {
            continue;
        }
        let day_start = crate::civil_time::parse_rfc3339(&format!("{day}T00:00:00Z"));
        let mut file = std::fs::File::open(&path).map_err(StoreError::io("open", &path))?;
        let mut splitter = LineSplitter::new(appender::MAX_BATCH_BYTES);
        let mut buf = vec![0; 64 * 1024];
        let mut keep = |line: Line<'_>| {
            let Line::Whole(bytes) = line else { return };
            let Ok(text) = std::str::from_utf8(bytes) else {
                return;
            };
            let Ok(raw) = RawValue::from_string(text.to_owned()) else {
                // A line cut short by a failed write; the events after it are intact.
                return;
            };
            if filter.matches(&raw, day_start) {
                if kept.len() == limit {
                    kept.pop_front();
                }
                kept.push_back(raw);
            }
        };
        loop {
            let n = file.read(&mut buf).map_err(StoreError::io("read", &path))?;
            if n == 0 {
                break;
            }
            splitter.push(&buf[..n], &mut keep);
        }
        splitter.finish(&mut keep);
    }
    Ok(kept.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_objects_on_one_line() {
        let line = event_line(b"{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1,\n2]\n}").expect("event");
        assert_eq!(line, b"{   \"a\": \"x\\ny\",    \"b\": [1, 2] }");
        assert_eq!(event_line(b"[1]"), Err(EventError::NotObject));
        assert!(matches!(event_line(b"{"), Err(EventError::NotJson(_))));
        assert!(matches!(event_line(b"{} {}"), Err(EventError::NotJson(_))));
    }
}
