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
//! 1024 events or 32 MiB per sync, a batch from `POST /v2/events` never split), so under load
//! durability costs one sync per batch. A client batch (`POST /v2/events`) is answered likewise
//! only after all of its stored lines are synced.

pub(crate) mod appender;
mod filter;

use std::collections::VecDeque;
use std::io::Read as _;
use std::path::Path;

use serde_json::value::RawValue;

pub use filter::{parse_instant, EventFilter, FilterError};

use crate::error::StoreError;
use crate::line_splitter::{Line, LineSplitter};
use crate::server::VIEW_EVENT_TYPE;
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
    /// The event claims the recorder's own type for the reads it records.
    #[error("event type {VIEW_EVENT_TYPE:?} is the recorder's own, for the reads it records")]
    ViewType,
}

/// Checks one event body and appends the line to store, newline included, to `lines`. An event
/// is a JSON object that does not claim the recorder's own view type ([`VIEW_EVENT_TYPE`]: a
/// writer must not forge the record of reads). One parse does both checks: the object's fields
/// other than `type` are only validated, not built.
pub(crate) fn push_event_line(body: &[u8], lines: &mut Vec<u8>) -> Result<(), EventError> {
    /// An event's `type`, if any, left raw: only a string equal to the view type matters.
    #[derive(serde::Deserialize)]
    struct TypeOnly<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<&'a RawValue>,
    }
    let text = std::str::from_utf8(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    let trimmed = text.trim_matches(is_json_whitespace);
    if !trimmed.starts_with('{') {
        // serde would read a struct from an array too; an event must be an object. Only this
        // refusal needs telling JSON that is not an object from text that is not JSON.
        return Err(
            match serde_json::from_str::<serde::de::IgnoredAny>(trimmed) {
                Ok(_) => EventError::NotObject,
                Err(e) => EventError::NotJson(e.to_string()),
            },
        );
    }
    let event: TypeOnly<'_> =
        serde_json::from_str(trimmed).map_err(|e| EventError::NotJson(e.to_string()))?;
    if let Some(kind) = event.kind {
        let claims_view = match serde_json::from_str::<&str>(kind.get()) {
            Ok(kind) => kind == VIEW_EVENT_TYPE,
            // Only a string with escapes (or not a string) gets here; only then is one built.
            Err(_) => {
                serde_json::from_str::<String>(kind.get()).is_ok_and(|k| k == VIEW_EVENT_TYPE)
            }
        };
        if claims_view {
            return Err(EventError::ViewType);
        }
    }
    // JSON strings cannot hold raw control characters, so every CR or LF is whitespace between
    // tokens, and a space does the same job.
    let start = lines.len();
    lines.extend_from_slice(trimmed.as_bytes());
    for byte in &mut lines[start..] {
        if *byte == b'\n' || *byte == b'\r' {
            *byte = b' ';
        }
    }
    lines.push(b'\n');
    Ok(())
}

/// Whitespace as JSON has it (RFC 8259: space, tab, line feed, carriage return).
pub(crate) fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Reads the event files of `dir` in order and keeps the last `filter.limit` matches.
pub(crate) fn query(dir: &Path, filter: &EventFilter) -> Result<Vec<Box<RawValue>>, StoreError> {
    query_where(dir, filter, |_| true)
}

/// Like [`query`], of the events `wanted` also accepts: only those count toward the limit and
/// are held, so a query that keeps few of many matches holds no more than its limit.
pub(crate) fn query_where(
    dir: &Path,
    filter: &EventFilter,
    wanted: impl Fn(&RawValue) -> bool,
) -> Result<Vec<Box<RawValue>>, StoreError> {
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
            if filter.matches(&raw, day_start) && wanted(&raw) {
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

    fn event_line(body: &[u8]) -> Result<Vec<u8>, EventError> {
        let mut lines = b"before\n".to_vec();
        push_event_line(body, &mut lines)?;
        let line = lines.strip_prefix(b"before\n").expect("appended").to_vec();
        Ok(line.strip_suffix(b"\n").expect("newline").to_vec())
    }

    #[test]
    fn a_narrowed_query_counts_and_holds_only_the_events_it_keeps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lines: String = (0..1000)
            .map(|n| format!("{{\"n\":{n},\"type\":\"t\"}}\n"))
            .collect();
        std::fs::write(
            dir.path().join(format!("2026-12-07{EVENT_FILE_SUFFIX}")),
            lines,
        )
        .expect("write");
        let number = |raw: &RawValue| {
            serde_json::from_str::<serde_json::Value>(raw.get()).expect("json")["n"]
                .as_u64()
                .expect("n")
        };
        let filter = EventFilter {
            limit: Some(3),
            ..EventFilter::default()
        };
        // The last three that are multiples of 7, though many more events come after them.
        let kept = query_where(dir.path(), &filter, |raw| number(raw) % 7 == 0).expect("query");
        let kept: Vec<u64> = kept.iter().map(|raw| number(raw)).collect();
        assert_eq!(kept, [980, 987, 994]);
        let all = query(dir.path(), &filter).expect("query");
        assert_eq!(
            all.iter().map(|raw| number(raw)).collect::<Vec<_>>(),
            [997, 998, 999]
        );
    }

    #[test]
    fn stores_objects_on_one_line() {
        let line = event_line(b"{\n  \"a\": \"x\\ny\",\r\n  \"b\": [1,\n2]\n}").expect("event");
        assert_eq!(line, b"{   \"a\": \"x\\ny\",    \"b\": [1, 2] }");
        assert_eq!(event_line(b" \r\n{}\n\t"), Ok(b"{}".to_vec()));
        assert_eq!(event_line(b"[1]"), Err(EventError::NotObject));
        assert_eq!(event_line(b" 7 "), Err(EventError::NotObject));
        assert!(matches!(event_line(b"{"), Err(EventError::NotJson(_))));
        assert!(matches!(event_line(b"{} {}"), Err(EventError::NotJson(_))));
        assert!(matches!(event_line(b"nope"), Err(EventError::NotJson(_))));
        assert!(matches!(
            event_line(b"{\"a\":\"\xff\"}"),
            Err(EventError::NotJson(_))
        ));
    }

    #[test]
    fn the_view_type_is_refused_however_it_is_written() {
        for body in [
            &br#"{"type":"kube-recorder-view"}"#[..],
            br#"{"id":1,"type":"kube-recorder\u002dview"}"#,
        ] {
            assert_eq!(event_line(body), Err(EventError::ViewType));
        }
        for body in [
            &br#"{"type":"kubernetes-api-request"}"#[..],
            br#"{"type":5}"#,
            br#"{"kind":"kube-recorder-view"}"#,
            br#"{"nested":{"type":"kube-recorder-view"}}"#,
        ] {
            assert!(
                event_line(body).is_ok(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
