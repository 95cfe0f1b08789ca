//! `pods/exec`: run the command as a host process for the length of the session.
//!
//! Stdin, resizes and output flow concurrently (a process that fills its stdout pipe while its
//! stdin is being written must not deadlock). The status is written once the process has
//! exited and its output has been read to the end. With a tty the process starts once the
//! client's first resize has arrived (briefly waited for), so that it starts with the client's
//! terminal size, as it does on a real node where starting the process takes longer than the
//! first resize does. A client that leaves first has its process killed.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::future::join_all;
use sessiontap::OutputStream;
use tokio::sync::mpsc;

use super::outcome::Outcome;
use super::process::{exit_code, read_output, spawn, ProcessInput, ProcessSpec, Spawned};
use super::session::{BoxedRead, ClientEvent, Session, SessionWriter, OUTPUT_CHUNK};

/// How long a tty exec waits for the client's first resize before starting without a size.
const FIRST_RESIZE_WAIT: Duration = Duration::from_secs(1);
/// Events held while waiting for the first resize.
const MAX_HELD_EVENTS: usize = 64;

/// Runs `spec` for `session` and reports how it ended.
pub(crate) async fn run(mut session: Session, mut spec: ProcessSpec) {
    let mut held = VecDeque::new();
    if spec.tty && session.resizable {
        spec.size = first_resize(&mut session.events, &mut held).await;
    }
    let Spawned {
        mut child,
        mut input,
        outputs,
    } = match spawn(&spec) {
        Ok(spawned) => spawned,
        Err(e) => {
            session.finish(&Outcome::failed_to_start(e)).await;
            return;
        }
    };
    let writer = session.writer.clone();
    let stdin = session.params.stdin;
    let outcome = tokio::select! {
        status = async {
            let pumps = join_all(
                outputs
                    .into_iter()
                    .map(|(stream, source)| forward_output(source, stream, writer.clone())),
            );
            let (status, _) = tokio::join!(child.wait(), pumps);
            status
        } => Some(match status {
            Ok(status) => Outcome::exited(exit_code(status), &spec.command),
            Err(e) => Outcome::Internal { cause: format!("waiting for the command: {e}") },
        }),
        () = feed_input(&mut session.events, held, &mut input, stdin) => None,
    };
    match outcome {
        Some(outcome) => session.finish(&outcome).await,
        None => {
            let _ = child.start_kill();
            session.abandon().await;
        }
    }
}

/// Copies one output stream of the process to the client until it ends (or the client is gone).
async fn forward_output(mut source: BoxedRead, stream: OutputStream, writer: SessionWriter) {
    let mut buf = vec![0u8; OUTPUT_CHUNK];
    while let Some(n) = read_output(&mut source, &mut buf).await {
        if writer.output(stream, &buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits (briefly) for the first resize, holding the events that come before it.
async fn first_resize(
    events: &mut mpsc::Receiver<ClientEvent>,
    held: &mut VecDeque<ClientEvent>,
) -> Option<(u16, u16)> {
    let deadline = tokio::time::Instant::now() + FIRST_RESIZE_WAIT;
    while held.len() < MAX_HELD_EVENTS {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ClientEvent::Resize { cols, rows })) => return Some((cols, rows)),
            Ok(Some(other)) => held.push_back(other),
            Ok(None) | Err(_) => return None,
        }
    }
    None
}

/// Passes the client's events to the process until the client has gone.
async fn feed_input(
    events: &mut mpsc::Receiver<ClientEvent>,
    mut held: VecDeque<ClientEvent>,
    input: &mut ProcessInput,
    stdin: bool,
) {
    loop {
        let event = match held.pop_front() {
            Some(event) => event,
            None => match events.recv().await {
                Some(event) => event,
                None => return,
            },
        };
        match event {
            ClientEvent::Stdin(bytes) if stdin => input.write(&bytes).await,
            ClientEvent::StdinClosed => input.close(),
            ClientEvent::Resize { cols, rows } => input.resize(cols, rows),
            ClientEvent::Stdin(_) => {}
        }
    }
}
