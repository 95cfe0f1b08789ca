//! `kube-recorder ls`

use std::io::Write as _;

use clap::Args;
use recorder_server::{format_unix_time, RecordingMeta};

use super::archive::Archive;
use super::SourceArgs;

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Print the index entries as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: LsArgs) -> anyhow::Result<()> {
    let archive = Archive::open(&args.source).await?;
    let recordings = archive.recordings().await?;
    // Holds are the directory's: a recorder's read API does not serve them.
    let holds = match &archive {
        Archive::Local(store) => store.holds().await?,
        Archive::Remote(_) => Default::default(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &recordings)?;
        writeln!(out)?;
        return Ok(());
    }
    let header = [
        "ID", "STARTED", "DURATION", "WHO", "POD", "TYPE", "COMMAND", "EXIT", "OUTCOME", "BYTES",
    ];
    let rows: Vec<[String; 10]> = recordings
        .iter()
        .map(|meta| row(meta, holds.contains_key(&meta.id)))
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

/// The TYPE column: the session type, and for `kubectl cp` which way and how many files
/// (`exec cp:from-pod:2`).
fn session_kind(meta: &RecordingMeta) -> Option<String> {
    if let Some(capture) = &meta.port_forward {
        // A port-forward capture: `port-forward:8080#0` (pod port, request id).
        let port = capture.port.map_or("?".to_owned(), |p| p.to_string());
        let request = capture.request_id.as_deref().unwrap_or("?");
        return Some(format!("port-forward:{port}#{request}"));
    }
    let Some(copy) = &meta.file_copy else {
        return meta.session_type.clone();
    };
    let files = copy.files.len() as u64 + copy.files_omitted;
    let direction = copy.direction.as_deref().unwrap_or("?");
    Some(match &meta.session_type {
        Some(session_type) => format!("{session_type} cp:{direction}:{files}"),
        None => format!("cp:{direction}:{files}"),
    })
}

fn row(meta: &RecordingMeta, held: bool) -> [String; 10] {
    let started = meta.start.map_or(meta.received_at, |s| s as f64);
    let pod = match (&meta.namespace, &meta.pod) {
        (Some(ns), Some(pod)) => match &meta.container {
            Some(container) => format!("{ns}/{pod}/{container}"),
            None => format!("{ns}/{pod}"),
        },
        (None, Some(pod)) => pod.clone(),
        _ => "-".to_owned(),
    };
    let outcome = meta.outcome.as_str();
    let mut outcome = if meta.malformed.is_some() {
        format!("{outcome},malformed")
    } else {
        outcome.to_owned()
    };
    if held {
        outcome.push_str(",held");
    }
    // Stored as age ciphertext: `play --identity` reads it.
    if meta.encrypted {
        outcome.push_str(",encrypted");
    }
    let dash = |value: Option<String>| {
        value
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "-".to_owned())
    };
    [
        meta.id.clone(),
        format_unix_time(started),
        dash(meta.duration.map(|d| format!("{d:.1}s"))),
        dash(Some(meta.who())),
        pod,
        dash(session_kind(meta)),
        dash(meta.command.clone()),
        dash(meta.exit_code.map(|c| c.to_string())),
        outcome,
        meta.bytes.to_string(),
    ]
}
