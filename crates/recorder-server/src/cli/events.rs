//! `kube-recorder events`

use std::io::Write as _;

use clap::Args;
use recorder_server::{events::parse_instant, format_unix_time, EventFilter};
use serde_json::Value;

use super::archive::Archive;
use super::SourceArgs;

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
    /// Only events of this type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Only events with this ID.
    #[arg(long)]
    id: Option<String>,
    /// At most this many events (the most recent).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Print the events as stored, one JSON object per line.
    #[arg(long)]
    json: bool,
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
        event_type: args.event_type,
        id: args.id,
        limit: Some(args.limit),
    };
    let events = Archive::open(&args.source).await?.events(&filter).await?;
    let mut out = std::io::stdout().lock();
    for event in events {
        if args.json {
            writeln!(out, "{}", event.get())?;
            continue;
        }
        let value: Value = serde_json::from_str(event.get())?;
        writeln!(out, "{}", summary(&value))?;
    }
    Ok(())
}

/// `TIME  USER  VERB  NAMESPACE  RESOURCE[/NAME][/SUBRESOURCE]  METHOD PATH`
fn summary(event: &Value) -> String {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or("").to_owned();
    let time = match event.get("timestamp") {
        Some(Value::Number(n)) => n.as_f64().map(format_unix_time).unwrap_or_default(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let source = event.get("source");
    let mut who = text(source.and_then(|s| s.get("nodeUser")));
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
        who = text(source.and_then(|s| s.get("node")));
    }
    let k8s = event.get("kubernetes");
    let field = |name: &str| text(k8s.and_then(|k| k.get(name)));
    let mut resource = field("Resource");
    for part in [field("Name"), field("Subresource")] {
        if !part.is_empty() {
            resource = format!("{resource}/{part}");
        }
    }
    let request = event.get("request");
    let dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    format!(
        "{}  {}  {}  {}  {}  {} {}",
        dash(time),
        dash(who),
        dash(field("Verb")),
        dash(field("Namespace")),
        dash(resource),
        text(request.and_then(|r| r.get("method"))),
        text(request.and_then(|r| r.get("path"))),
    )
}
