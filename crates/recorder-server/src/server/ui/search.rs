//! Filters of `GET /api/recordings` and the search over recorded output (`q`): index fields are
//! matched first, then the casts of the remaining recordings (only those the viewer may see, and
//! not those encrypted at rest, which the recorder cannot read) are read line by line, each output event's text decoded and matched case-insensitively, also
//! across the boundary of two events. Memory stays bounded: one chunk, one line of at most
//! [`MAX_LINE`] and a needle's length of carried text per scan.

use axum::extract::Query;
use axum::response::Response;
use castfmt::CastEvent;
use http::{StatusCode, Uri};
use serde::{Deserialize, Serialize};

use crate::events::parse_instant;
use crate::line_splitter::{Line, LineSplitter};
use crate::recording_meta::{RecordingKind, RecordingMeta};
use crate::server::routes::error_response;
use crate::server::App;

/// Longest cast line looked at; longer lines (not written by kube-auth-proxy, whose events are
/// at most a few hundred KiB of JSON) are skipped.
pub(crate) const MAX_LINE: usize = 4 * 1024 * 1024;
/// Longest search text.
pub(crate) const MAX_NEEDLE_CHARS: usize = 256;
/// Matches returned by a search without `limit`.
pub(crate) const DEFAULT_SEARCH_LIMIT: usize = 100;
/// Most entries one answer lists.
pub(crate) const MAX_LIMIT: usize = 10_000;
/// Characters of output shown on each side of a match.
const EXCERPT_CONTEXT: usize = 40;

/// The query of `GET /api/recordings`, as sent.
#[derive(Debug, Default, Deserialize)]
struct RawFilter {
    q: Option<String>,
    user: Option<String>,
    namespace: Option<String>,
    pod: Option<String>,
    container: Option<String>,
    command: Option<String>,
    since: Option<String>,
    until: Option<String>,
    outcome: Option<String>,
    exit: Option<String>,
    limit: Option<String>,
}

/// What `GET /api/recordings` was asked for. Text filters but `namespace` and `outcome` match a
/// part of the field, ignoring case; `namespace`, `outcome` and `exit` match exactly; `since`
/// and `until` (Unix seconds or RFC 3339) bound the session's start.
#[derive(Debug, Default)]
pub(crate) struct RecordingFilter {
    /// Lower-cased search text.
    q: Option<String>,
    user: Option<String>,
    namespace: Option<String>,
    pod: Option<String>,
    container: Option<String>,
    command: Option<String>,
    since: Option<f64>,
    until: Option<f64>,
    outcome: Option<String>,
    exit: Option<i32>,
    limit: Option<usize>,
}

fn contains_ignoring_case(haystack: Option<&str>, lower_needle: &str) -> bool {
    haystack.is_some_and(|text| text.to_lowercase().contains(lower_needle))
}

impl RecordingFilter {
    /// Reads the query string of `uri`; a bad value is a message for a 400.
    pub(crate) fn from_uri(uri: &Uri) -> Result<Self, String> {
        let raw = Query::<RawFilter>::try_from_uri(uri)
            .map_err(|error| format!("bad query: {}", error.body_text()))?
            .0;
        let text =
            |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let lower = |value: Option<String>| text(value).map(|v| v.to_lowercase());
        let instant = |name: &str, value: Option<String>| {
            text(value)
                .map(|v| parse_instant(&v).map_err(|error| format!("{name}: {error}")))
                .transpose()
        };
        let q = lower(raw.q);
        if q.as_ref()
            .is_some_and(|q| q.chars().count() > MAX_NEEDLE_CHARS)
        {
            return Err(format!("q: at most {MAX_NEEDLE_CHARS} characters"));
        }
        let outcome = text(raw.outcome);
        if let Some(outcome) = &outcome {
            if !["recording", "complete", "incomplete"].contains(&outcome.as_str()) {
                return Err(format!(
                    "outcome: {outcome:?} is not recording, complete or incomplete"
                ));
            }
        }
        let exit = text(raw.exit)
            .map(|v| {
                v.parse::<i32>()
                    .map_err(|_| format!("exit: {v:?} is not an exit code"))
            })
            .transpose()?;
        let limit = text(raw.limit)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| format!("limit: {v:?} is not a count"))
            })
            .transpose()?
            .map(|limit| limit.min(MAX_LIMIT));
        Ok(Self {
            q,
            user: lower(raw.user),
            namespace: text(raw.namespace),
            pod: lower(raw.pod),
            container: lower(raw.container),
            command: lower(raw.command),
            since: instant("since", raw.since)?,
            until: instant("until", raw.until)?,
            outcome,
            exit,
            limit,
        })
    }

    /// Whether the index entry passes every filter but `q`.
    pub(crate) fn matches_meta(&self, meta: &RecordingMeta) -> bool {
        if let Some(user) = &self.user {
            let mut names = meta
                .src_node_tags
                .iter()
                .map(String::as_str)
                .chain(meta.src_node_user.as_deref())
                .chain(meta.src_node.as_deref());
            if !names.any(|name| name.to_lowercase().contains(user.as_str())) {
                return false;
            }
        }
        if self
            .namespace
            .as_ref()
            .is_some_and(|ns| meta.namespace.as_ref() != Some(ns))
        {
            return false;
        }
        let parts = [
            (&self.pod, meta.pod.as_deref()),
            (&self.container, meta.container.as_deref()),
            (&self.command, meta.command.as_deref()),
        ];
        if parts.iter().any(|(wanted, field)| {
            wanted
                .as_ref()
                .is_some_and(|wanted| !contains_ignoring_case(*field, wanted))
        }) {
            return false;
        }
        // The session's start; an entry whose header has not arrived has its upload's start.
        let start = meta.start.map_or(meta.received_at, |s| s as f64);
        if self.since.is_some_and(|since| start < since)
            || self.until.is_some_and(|until| start > until)
        {
            return false;
        }
        if let Some(outcome) = &self.outcome {
            if meta.outcome.as_str() != outcome {
                return false;
            }
        }
        if self.exit.is_some() && meta.exit_code != self.exit {
            return false;
        }
        true
    }
}

/// One entry of the answer: the index entry, and with `q` an excerpt of the matching output.
#[derive(Debug, Serialize)]
pub(crate) struct Listed {
    #[serde(flatten)]
    pub(crate) meta: RecordingMeta,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub(crate) excerpt: Option<String>,
}

/// The entries of `visible` (already filtered by index fields) whose output contains the search
/// text, newest first, at most the filter's limit. Without `q`, `visible` as it is (cut at
/// `limit` when one was given).
pub(crate) async fn search_output(
    app: &App,
    filter: &RecordingFilter,
    visible: Vec<RecordingMeta>,
) -> Result<Vec<Listed>, Response> {
    let Some(needle) = filter.q.clone() else {
        let limit = filter.limit.unwrap_or(usize::MAX);
        return Ok(visible
            .into_iter()
            .take(limit)
            .map(|meta| Listed {
                meta,
                excerpt: None,
            })
            .collect());
    };
    let limit = filter.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
    // Scans read whole files: a few at a time, whatever the number of searching browsers.
    let _slot = app.ui.scan_slots.acquire().await.map_err(|_| {
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the recorder is shutting down".to_owned(),
        )
    })?;
    let mut found = Vec::new();
    for meta in visible {
        if found.len() >= limit {
            break;
        }
        // Captures have no terminal output; an encrypted cast is ciphertext to the recorder.
        if meta.kind != RecordingKind::Cast || meta.encrypted {
            continue;
        }
        let file = match app.store.open_recording(&meta.id).await {
            // A recording kept only in the bucket streams from it; the scan reads it blocking.
            Ok((_, file)) => tokio_util::io::SyncIoBridge::new(file),
            // Removed by retention since it was listed.
            Err(error) => {
                tracing::debug!(id = %meta.id, %error, "search: recording not readable");
                continue;
            }
        };
        let needle = needle.clone();
        let scanned = tokio::task::spawn_blocking(move || find_in_output(file, &needle)).await;
        match scanned {
            Ok(Ok(Some(excerpt))) => found.push(Listed {
                meta,
                excerpt: Some(excerpt),
            }),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => {
                tracing::warn!(id = %meta.id, %error, "search: cannot read the recording");
            }
            Err(error) => {
                return Err(error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("search failed: {error}"),
                ))
            }
        }
    }
    Ok(found)
}

/// Reads a cast and returns an excerpt around the first output (`o` event) text containing
/// `needle` (lower-case), ignoring case, if there is one. Blocking.
pub(crate) fn find_in_output(
    mut file: impl std::io::Read,
    needle: &str,
) -> std::io::Result<Option<String>> {
    // Enough of the previous output to match across an event boundary and to show context.
    let keep = needle
        .chars()
        .count()
        .saturating_sub(1)
        .max(EXCERPT_CONTEXT * 2);
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut carry = String::new();
    let mut found: Option<String> = None;
    let mut header = true;
    let mut buf = vec![0u8; 64 * 1024];
    let mut each = |line: Line<'_>, found: &mut Option<String>| {
        if std::mem::take(&mut header) || found.is_some() {
            return;
        }
        let Line::Whole(bytes) = line else {
            return;
        };
        let Ok(event) = CastEvent::parse(bytes) else {
            return;
        };
        if event.code != "o" {
            return;
        }
        let window = format!("{carry}{}", event.data);
        if let Some(excerpt) = excerpt_of(&window, needle) {
            *found = Some(excerpt);
            return;
        }
        let skip = window.chars().count().saturating_sub(keep);
        carry = window.chars().skip(skip).collect();
    };
    loop {
        let read = file.read(&mut buf)?;
        if read == 0 {
            splitter.finish(|line| each(line, &mut found));
            break;
        }
        splitter.push(&buf[..read], |line| each(line, &mut found));
        if found.is_some() {
            break;
        }
    }
    Ok(found)
}

/// Where `needle` (lower-case) is in `text` ignoring case: the text around it, control
/// characters and escape sequences taken out.
fn excerpt_of(text: &str, needle: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let at = lower.find(needle)?;
    // Lower-casing kept the byte offsets (nearly always): cut the original; else the lower-case.
    let source = if lower.len() == text.len() {
        text
    } else {
        lower.as_str()
    };
    let mut start = at.saturating_sub(EXCERPT_CONTEXT * 2);
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + needle.len() + EXCERPT_CONTEXT * 2).min(source.len());
    while !source.is_char_boundary(end) {
        end += 1;
    }
    Some(printable(&source[start..end]))
}

/// Text without ANSI escape sequences and control characters (each becomes a space).
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI `ESC [ ... final` or a two-character escape.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast(events: &[&str]) -> Vec<u8> {
        let mut text = String::from("{\"version\":2,\"width\":80,\"height\":24}\n");
        for event in events {
            text.push_str(event);
            text.push('\n');
        }
        text.into_bytes()
    }

    fn find(cast: &[u8], needle: &str) -> Option<String> {
        find_in_output(cast, needle).unwrap_or(None)
    }

    #[test]
    fn finds_output_ignoring_case_and_event_boundaries() {
        let data = cast(&[
            r#"[0.1, "o", "hello \u001b[1mWor"]"#,
            r#"[0.2, "o", "LD\r\n"]"#,
            r#"[0.3, "i", "secretinput"]"#,
        ]);
        assert_eq!(find(&data, "world").as_deref(), Some("hello WorLD"));
        assert!(find(&data, "hello").is_some());
        // Input and the header are not output text.
        assert_eq!(find(&data, "secretinput"), None);
        assert_eq!(find(&data, "version"), None);
        assert_eq!(find(&data, "absent"), None);
    }

    #[test]
    fn decodes_json_escapes_before_matching() {
        let data = cast(&[r#"[0.1, "o", "caf\u00e9 \u0041BC"]"#]);
        assert!(find(&data, "café abc").is_some());
    }

    #[test]
    fn skips_lines_beyond_the_bound() {
        let long = format!("[0.1, \"o\", \"{}needle\"]", "x".repeat(MAX_LINE));
        let data = cast(&[&long, r#"[0.2, "o", "after"]"#]);
        assert_eq!(find(&data, "needle"), None);
        assert!(find(&data, "after").is_some());
    }
}
