//! `pods/attach`: connect a session to the container's main process.
//!
//! The main process is the container's `command` and `args` (for configured pods,
//! `attachCommand`), with its `stdin` and `tty` settings, run on the host. It is started by the
//! first attach, which therefore sees all of its output, and keeps running across attaches:
//!
//! - output is fanned out to every attached session from the moment it attaches (a bounded
//!   backlog per session; a session that falls further behind loses the oldest output, and
//!   output nobody is attached to is dropped, as it would go to the container log);
//! - stdin from every session that asked for it (when the container has `stdin`) goes to the
//!   process, interleaved; a session closing its stdin does not close the process's
//!   (`stdinOnce: false`);
//! - resizes from any session resize the process's terminal;
//! - a session that leaves (the client closes) leaves the process running;
//! - when the process exits, every attached session gets `Success` and ends, as containerd's
//!   `AttachContainer` returns without an exit code; the next attach starts the process anew,
//!   as a kubelet restarts a container whose `restartPolicy` is `Always`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::join_all;
use sessiontap::{OutputStream, SessionParams};
use tokio::process::Child;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use super::outcome::Outcome;
use super::process::{read_output, spawn, ProcessInput, ProcessSpec, SpawnError, Spawned};
use super::session::{BoxedRead, ClientEvent, Session, SessionWriter, OUTPUT_CHUNK};
use super::tasks::SessionTasks;

/// Output pieces (of up to 32 KiB) one session may fall behind by before losing the oldest.
const OUTPUT_BACKLOG: usize = 256;

/// Which container's main process: the pod's uid tells a re-created pod from the old one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MainKey {
    pub(crate) namespace: String,
    pub(crate) pod: String,
    pub(crate) uid: String,
    pub(crate) container: String,
}

/// A piece of what the main process did.
#[derive(Debug, Clone)]
enum MainEvent {
    Output(OutputStream, Bytes),
    Exited,
}

/// A running (or exited) main process.
#[derive(Debug)]
pub(crate) struct MainProcess {
    tty: bool,
    stdin: bool,
    input: tokio::sync::Mutex<ProcessInput>,
    events: broadcast::Sender<MainEvent>,
    /// Set, and `Exited` sent, under this lock: an attach either sees the flag or gets the event.
    exited: Mutex<bool>,
}

impl MainProcess {
    fn has_exited(&self) -> bool {
        *self.exited.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A session's view of a main process: the process and its output from the moment of attach.
#[derive(Debug)]
pub(crate) struct Attachment {
    process: Arc<MainProcess>,
    events: broadcast::Receiver<MainEvent>,
}

/// The server's main processes.
#[derive(Debug, Default)]
pub(crate) struct MainProcesses {
    processes: Mutex<HashMap<MainKey, Arc<MainProcess>>>,
}

impl MainProcesses {
    /// Attaches to `key`'s main process, starting it from `spec` if it is not running.
    pub(crate) fn attach(
        &self,
        key: MainKey,
        spec: &ProcessSpec,
        tasks: &SessionTasks,
    ) -> Result<Attachment, SpawnError> {
        let mut processes = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(process) = processes.get(&key) {
            let exited = process.exited.lock().unwrap_or_else(|e| e.into_inner());
            if !*exited {
                let events = process.events.subscribe();
                drop(exited);
                return Ok(Attachment {
                    process: process.clone(),
                    events,
                });
            }
        }
        let Spawned {
            child,
            input,
            outputs,
        } = spawn(spec)?;
        // Subscribed before the process can write anything.
        let (sender, events) = broadcast::channel(OUTPUT_BACKLOG);
        let process = Arc::new(MainProcess {
            tty: spec.tty,
            stdin: spec.stdin,
            input: tokio::sync::Mutex::new(input),
            events: sender,
            exited: Mutex::new(false),
        });
        tracing::debug!(?key, command = ?spec.command, "main process started");
        tasks.spawn(run_main_process(process.clone(), child, outputs));
        processes.insert(key, process.clone());
        Ok(Attachment { process, events })
    }
}

/// Reads the main process's output until it exits, then tells the attached sessions.
async fn run_main_process(
    process: Arc<MainProcess>,
    mut child: Child,
    outputs: Vec<(OutputStream, BoxedRead)>,
) {
    let pumps = join_all(outputs.into_iter().map(|(stream, mut source)| {
        let process = process.clone();
        async move {
            let mut buf = vec![0u8; OUTPUT_CHUNK];
            while let Some(n) = read_output(&mut source, &mut buf).await {
                let piece = Bytes::copy_from_slice(&buf[..n]);
                // No receiver is not an error: nobody is attached.
                let _ = process.events.send(MainEvent::Output(stream, piece));
            }
        }
    }));
    let (status, _) = tokio::join!(child.wait(), pumps);
    tracing::debug!(?status, "main process exited");
    let mut exited = process.exited.lock().unwrap_or_else(|e| e.into_inner());
    *exited = true;
    let _ = process.events.send(MainEvent::Exited);
}

/// Connects `session` to the main process until either ends.
pub(crate) async fn run(mut session: Session, attachment: Attachment) {
    let Attachment {
        process,
        mut events,
    } = attachment;
    let ended = tokio::select! {
        result = forward_output(&mut events, &session.writer, &session.params, process.tty) => result.is_ok(),
        () = forward_input(&mut session.events, &process, session.params.stdin) => false,
    };
    if ended {
        session.finish(&Outcome::Success).await;
    } else {
        // Detached: the process goes on.
        session.abandon().await;
    }
}

/// Writes the process's output to the session until the process exits (`Ok`) or the session
/// cannot be written (`Err`).
async fn forward_output(
    events: &mut broadcast::Receiver<MainEvent>,
    writer: &SessionWriter,
    params: &SessionParams,
    tty: bool,
) -> std::io::Result<()> {
    loop {
        match events.recv().await {
            Ok(MainEvent::Output(stream, bytes)) => {
                // A terminal has one output stream, sent as stdout.
                let stream = if tty { OutputStream::Stdout } else { stream };
                let wanted = match stream {
                    OutputStream::Stdout => params.stdout,
                    OutputStream::Stderr => params.stderr,
                };
                if wanted {
                    writer.output(stream, &bytes).await?;
                }
            }
            Ok(MainEvent::Exited) | Err(RecvError::Closed) => return Ok(()),
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "attached session fell behind; output dropped");
            }
        }
    }
}

/// Passes the session's stdin and resizes to the process until the client has gone.
async fn forward_input(
    events: &mut mpsc::Receiver<ClientEvent>,
    process: &MainProcess,
    stdin: bool,
) {
    let stdin = stdin && process.stdin;
    while let Some(event) = events.recv().await {
        if process.has_exited() {
            continue;
        }
        match event {
            ClientEvent::Stdin(bytes) if stdin => process.input.lock().await.write(&bytes).await,
            ClientEvent::Resize { cols, rows } => process.input.lock().await.resize(cols, rows),
            ClientEvent::Stdin(_) | ClientEvent::StdinClosed => {}
        }
    }
}
