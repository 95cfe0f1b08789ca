//! `kube-recorder events`: stored API events, as text a person reads or as the JSON stored.
//!
//! Text output is one line per event, columns separated by two spaces, no trailing spaces:
//!
//! ```text
//! TIME  USER  VERB  NAMESPACE  RESOURCE[/NAME][/SUBRESOURCE]  request  METHOD PATH
//! TIME  USER  VERB  NAMESPACE  RESOURCE[/NAME][/SUBRESOURCE]  response  METHOD PATH  STATUS  DURATION  BYTES bytes[  error: ERROR]
//! ```
//!
//! A response event carries no method or path of its own (only the request event does), so a
//! response line shows those of the request event with the same `id`: taken from the result
//! when it is there, else looked up with one more query. When no such request event is found the
//! line says so, `(request event ID not found)`, in place of the method and path.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;

use clap::{Args, ValueEnum};
use recorder_server::events::{API_REQUEST_EVENT_TYPE, API_RESPONSE_EVENT_TYPE};
use recorder_server::{events::parse_instant, format_unix_time, EventFilter};
use serde_json::value::RawValue;
use serde_json::Value;

use super::archive::Archive;
use super::SourceArgs;

/// Most request events read by the lookup of requests whose responses are in the result but
/// which are not (a running recorder answers at most this many per query).
const REQUEST_LOOKUP_LIMIT: usize = 100_000;

/// Seconds of slack before a response's start (its time minus its duration) within which its
/// request event is looked for: both times are whole seconds, and the two may be rounded apart.
const REQUEST_LOOKUP_SLACK_SECONDS: f64 = 60.0;

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Only this caller: login name, node tag or node name.
    #[arg(long)]
    user: Option<String>,
    /// Only this Kubernetes verb (get, list, watch, create, update, patch, delete, ...).
    #[arg(long)]
    verb: Option<String>,
    /// Only this namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Only events at or after this time: Unix seconds or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// Only events of this type: `request` (kubernetes-api-request), `response`
    /// (kubernetes-api-response), or any other type name as stored.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Only events with this ID (a request event and its response event share one).
    #[arg(long)]
    id: Option<String>,
    /// At most this many events (the most recent).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Output format: `text`, one line per event, or `json`, the events exactly as stored, one
    /// JSON object per line (oldest first).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
    /// The same as `-o json`.
    #[arg(long, conflicts_with = "output")]
    json: bool,
}

/// `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One line per event for a person to read.
    Text,
    /// The events exactly as stored, one JSON object per line.
    Json,
}

/// The stored `type` that a `--type` value means: `request` and `response` are short for the two
/// API event types; anything else is matched as given.
fn stored_type(given: &str) -> String {
    match given {
        "request" => API_REQUEST_EVENT_TYPE.to_owned(),
        "response" => API_RESPONSE_EVENT_TYPE.to_owned(),
        other => other.to_owned(),
    }
}

pub(crate) async fn run(args: EventsArgs) -> anyhow::Result<()> {
    let since = match &args.since {
        Some(text) => Some(parse_instant(text).map_err(|e| anyhow::anyhow!("--{e}"))?),
        None => None,
    };
    let filter = EventFilter {
        user: args.user,
        verb: args.verb,
        namespace: args.namespace,
        since,
        event_type: args.event_type.as_deref().map(stored_type),
        id: args.id,
        limit: Some(args.limit),
    };
    let archive = Archive::open(&args.source).await?;
    let raw = archive.events(&filter).await?;
    let mut out = std::io::stdout().lock();
    if args.json || args.output == Output::Json {
        // Byte for byte what the recorder stored: one object per line, nothing re-encoded.
        for event in raw {
            writeln!(out, "{}", event.get())?;
        }
        return Ok(());
    }
    let events = parse_all(&raw)?;
    // The request events of responses whose request is not in the result, looked up once.
    let found = {
        let missing = unpaired_responses(&events, &requests_by_id(&events));
        if missing.is_empty() {
            Vec::new()
        } else {
            let wanted: HashSet<&str> = missing.iter().map(|m| m.id).collect();
            let lookup = request_lookup(&filter, &missing);
            let mut found = parse_all(&archive.events(&lookup).await?)?;
            found.retain(|event| event_id(event).is_some_and(|id| wanted.contains(id)));
            found
        }
    };
    let mut requests = requests_by_id(&events);
    for event in &found {
        if let Some(id) = event_id(event) {
            requests.entry(id.to_owned()).or_insert(event);
        }
    }
    for event in &events {
        writeln!(out, "{}", line(event, &requests))?;
    }
    Ok(())
}

/// Parses every event; the recorder stores only JSON objects, so anything else is an error.
fn parse_all(raw: &[Box<RawValue>]) -> anyhow::Result<Vec<Value>> {
    raw.iter()
        .map(|event| {
            serde_json::from_str(event.get())
                .map_err(|e| anyhow::anyhow!("a stored event is not JSON ({e}): {}", event.get()))
        })
        .collect()
}

fn event_id(event: &Value) -> Option<&str> {
    event.get("id").and_then(Value::as_str)
}

fn event_type(event: &Value) -> Option<&str> {
    event.get("type").and_then(Value::as_str)
}

/// The request events among `events`, by id (the first of each id, should one repeat).
fn requests_by_id(events: &[Value]) -> HashMap<String, &Value> {
    let mut requests = HashMap::new();
    for event in events {
        if event_type(event) == Some(API_REQUEST_EVENT_TYPE) {
            if let Some(id) = event_id(event) {
                requests.entry(id.to_owned()).or_insert(event);
            }
        }
    }
    requests
}

/// A response event whose request event is not in the result.
#[derive(Debug, Clone, PartialEq)]
struct Unpaired<'a> {
    id: &'a str,
    /// When the request was made at the earliest (Unix seconds), if the response says.
    earliest: Option<f64>,
}

fn unpaired_responses<'a>(
    events: &'a [Value],
    requests: &HashMap<String, &Value>,
) -> Vec<Unpaired<'a>> {
    events
        .iter()
        .filter(|event| event_type(event) == Some(API_RESPONSE_EVENT_TYPE))
        .filter_map(|event| {
            let id = event_id(event)?;
            if requests.contains_key(id) {
                return None;
            }
            let duration_ms = event
                .get("response")
                .and_then(|r| r.get("durationMs"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let earliest =
                timestamp(event).map(|t| t - duration_ms / 1000.0 - REQUEST_LOOKUP_SLACK_SECONDS);
            Some(Unpaired { id, earliest })
        })
        .collect()
}

/// The query that finds the request events of `missing`: the request events that the user's
/// filter would match but for its time, type and limit (a response shares the caller and the
/// `kubernetes` object with its request), made no earlier than the earliest of them started.
fn request_lookup(filter: &EventFilter, missing: &[Unpaired<'_>]) -> EventFilter {
    let since = missing
        .iter()
        .map(|m| m.earliest)
        .try_fold(f64::INFINITY, |lowest, t| t.map(|t| lowest.min(t)));
    let id = match missing {
        [only] => Some(only.id.to_owned()),
        _ => filter.id.clone(),
    };
    EventFilter {
        user: filter.user.clone(),
        verb: filter.verb.clone(),
        namespace: filter.namespace.clone(),
        since,
        event_type: Some(API_REQUEST_EVENT_TYPE.to_owned()),
        id,
        limit: Some(REQUEST_LOOKUP_LIMIT),
    }
}

/// The event's `timestamp` as Unix seconds: a number, or RFC 3339 text as Go writes `time.Time`.
fn timestamp(event: &Value) -> Option<f64> {
    match event.get("timestamp") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => parse_instant(s).ok(),
        _ => None,
    }
}

/// A value as shown in a column: control characters escaped (a stored value cannot break a
/// line or move the cursor), surrounding whitespace removed, `-` when nothing is left.
fn cell(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    if shown.is_empty() {
        "-".to_owned()
    } else {
        shown
    }
}

/// A string field of an object, empty when missing.
fn text<'a>(object: Option<&'a Value>, name: &str) -> &'a str {
    object
        .and_then(|o| o.get(name))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `METHOD PATH` of a request event's `request` object.
fn method_and_path(request_event: &Value) -> String {
    let request = request_event.get("request");
    let method = text(request, "method").trim();
    let path = text(request, "path").trim();
    cell(&format!("{method} {path}"))
}

/// A response's duration, in milliseconds below a second and in seconds above.
fn duration(milliseconds: f64) -> String {
    if milliseconds < 1000.0 {
        format!("{milliseconds:.1}ms")
    } else {
        format!("{:.2}s", milliseconds / 1000.0)
    }
}

/// The line for one event; `requests` holds the request events found, by id, for responses.
fn line(event: &Value, requests: &HashMap<String, &Value>) -> String {
    let time = match event.get("timestamp") {
        Some(Value::Number(n)) => n.as_f64().map(format_unix_time).unwrap_or_default(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let source = event.get("source");
    let mut who = text(source, "nodeUser").to_owned();
    if who.is_empty() {
        if let Some(tags) = source
            .and_then(|s| s.get("nodeTags"))
            .and_then(Value::as_array)
        {
            who = tags
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",");
        }
    }
    if who.is_empty() {
        who = text(source, "node").to_owned();
    }
    let k8s = event.get("kubernetes");
    let mut resource = text(k8s, "Resource").to_owned();
    for part in [text(k8s, "Name"), text(k8s, "Subresource")] {
        if !part.is_empty() {
            resource = format!("{resource}/{part}");
        }
    }
    let mut columns = vec![
        cell(&time),
        cell(&who),
        cell(text(k8s, "Verb")),
        cell(text(k8s, "Namespace")),
        cell(&resource),
    ];
    match event_type(event) {
        Some(API_RESPONSE_EVENT_TYPE) => {
            columns.push("response".to_owned());
            let id = event_id(event);
            columns.push(match id.and_then(|id| requests.get(id)) {
                Some(request) => method_and_path(request),
                None => match id {
                    Some(id) => format!("(request event {} not found)", cell(id)),
                    None => "(no id: request event unknown)".to_owned(),
                },
            });
            let response = event.get("response");
            let number = |name: &str| response.and_then(|r| r.get(name)).and_then(Value::as_f64);
            columns.push(
                response
                    .and_then(|r| r.get("status"))
                    .and_then(Value::as_u64)
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            );
            columns.push(number("durationMs").map_or_else(|| "-".to_owned(), duration));
            columns.push(
                response
                    .and_then(|r| r.get("bytes"))
                    .and_then(Value::as_u64)
                    .map_or_else(|| "-".to_owned(), |b| format!("{b} bytes")),
            );
            let error = text(response, "error");
            if !error.trim().is_empty() {
                columns.push(format!("error: {}", cell(error)));
            }
        }
        Some(API_REQUEST_EVENT_TYPE) => {
            columns.push("request".to_owned());
            columns.push(method_and_path(event));
        }
        // A type this tool does not know: named as stored, with a request if it has one.
        other => {
            columns.push(cell(other.unwrap_or("")));
            columns.push(method_and_path(event));
        }
    }
    columns.join("  ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn event(json: &str) -> Value {
        serde_json::from_str(json).unwrap()
    }

    fn request() -> Value {
        event(
            r#"{"type":"kubernetes-api-request","id":"r1","timestamp":1714564800,"request":{"method":"GET","path":"/api/v1/namespaces/default/pods?watch=true"},"kubernetes":{"Verb":"watch","Namespace":"default","Resource":"pods"},"source":{"node":"ci.ts.net","nodeTags":["tag:ci","tag:k8s"]}}"#,
        )
    }

    fn response() -> Value {
        event(
            r#"{"type":"kubernetes-api-response","id":"r1","timestamp":1714564802,"kubernetes":{"Verb":"watch","Namespace":"default","Resource":"pods"},"source":{"node":"ci.ts.net","nodeTags":["tag:ci","tag:k8s"]},"response":{"status":200,"durationMs":1520.25,"bytes":4096,"error":"upstream body: connection reset"}}"#,
        )
    }

    #[test]
    fn a_response_shows_its_requests_method_and_path_with_status_duration_and_error() {
        let request = request();
        let requests = HashMap::from([("r1".to_owned(), &request)]);
        assert_eq!(
            line(&request, &requests),
            "2024-05-01T12:00:00Z  tag:ci,tag:k8s  watch  default  pods  request  GET /api/v1/namespaces/default/pods?watch=true"
        );
        assert_eq!(
            line(&response(), &requests),
            "2024-05-01T12:00:02Z  tag:ci,tag:k8s  watch  default  pods  response  GET /api/v1/namespaces/default/pods?watch=true  200  1.52s  4096 bytes  error: upstream body: connection reset"
        );
        assert_eq!(
            line(&response(), &HashMap::new()),
            "2024-05-01T12:00:02Z  tag:ci,tag:k8s  watch  default  pods  response  (request event r1 not found)  200  1.52s  4096 bytes  error: upstream body: connection reset"
        );
    }

    #[test]
    fn missing_and_hostile_fields_leave_no_blanks_or_line_breaks() {
        let empty = HashMap::new();
        assert_eq!(line(&event("{}"), &empty), "-  -  -  -  -  -  -");
        assert_eq!(
            line(&event(r#"{"type":"kubernetes-api-response"}"#), &empty),
            "-  -  -  -  -  response  (no id: request event unknown)  -  -  -"
        );
        let hostile = event(
            r#"{"type":"kubernetes-api-request","source":{"nodeUser":"eve\n2024-01-01T00:00:00Z  root"},"request":{"method":"GET","path":"/x   "}}"#,
        );
        let shown = line(&hostile, &empty);
        assert_eq!(
            shown,
            "-  eve\\n2024-01-01T00:00:00Z  root  -  -  -  request  GET /x"
        );
        for sample in [shown, line(&event("{}"), &empty)] {
            assert_eq!(sample.lines().count(), 1);
            assert_eq!(sample.trim_end(), sample);
        }
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0.42), "0.4ms");
        assert_eq!(duration(12.5), "12.5ms");
        assert_eq!(duration(999.9), "999.9ms");
        assert_eq!(duration(1520.25), "1.52s");
        assert_eq!(duration(30_000.0), "30.00s");
    }

    #[test]
    fn type_names_have_short_forms() {
        assert_eq!(stored_type("request"), "kubernetes-api-request");
        assert_eq!(stored_type("response"), "kubernetes-api-response");
        assert_eq!(
            stored_type("kubernetes-api-response"),
            "kubernetes-api-response"
        );
        assert_eq!(stored_type("custom"), "custom");
    }

    #[test]
    fn unpaired_responses_are_looked_up_from_their_start() {
        let events = vec![request(), response(), {
            let mut lone = response();
            lone["id"] = "r2".into();
            lone
        }];
        let requests = requests_by_id(&events);
        let missing = unpaired_responses(&events, &requests);
        assert_eq!(
            missing,
            [Unpaired {
                id: "r2",
                earliest: Some(1_714_564_802.0 - 1.520_25 - 60.0)
            }]
        );
        let filter = EventFilter {
            user: Some("tag:ci".into()),
            event_type: Some(API_RESPONSE_EVENT_TYPE.into()),
            since: Some(1_714_564_801.0),
            limit: Some(1),
            ..EventFilter::default()
        };
        assert_eq!(
            request_lookup(&filter, &missing),
            EventFilter {
                user: Some("tag:ci".into()),
                since: Some(1_714_564_802.0 - 1.520_25 - 60.0),
                event_type: Some(API_REQUEST_EVENT_TYPE.into()),
                id: Some("r2".into()),
                limit: Some(REQUEST_LOOKUP_LIMIT),
                ..EventFilter::default()
            }
        );
        // One response without a readable time: look from the beginning.
        let two = [
            missing[0].clone(),
            Unpaired {
                id: "r3",
                earliest: None,
            },
        ];
        let lookup = request_lookup(&EventFilter::default(), &two);
        assert_eq!((lookup.since, lookup.id), (None, None));
    }
}
