//! Host processes standing in for a container's: spawned with pipes, or on a pseudo-terminal
//! (through `pty-process`, which makes it the process's controlling terminal) when a tty is
//! asked for; their output read in pieces; their exit status as the runtime reports it.
//!
//! The environment is the server's own plus `HOSTNAME=<pod>` (and `TERM=xterm` with a tty, as
//! containerd sets it for a tty exec); the working directory is the pod's directory under the
//! server's temporary directory. Every child is killed when its handle is dropped, so a session
//! that ends, or a server that shuts down, leaves no process behind.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use sessiontap::OutputStream;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin};

use super::session::BoxedRead;

/// `EIO`, what reading a pty's master side returns once every process holding the terminal has
/// gone (Linux and macOS); it is the terminal's end of file.
const EIO: i32 = 5;

/// What to run, and how.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    /// Program and arguments.
    pub(crate) command: Vec<String>,
    /// Run on a pseudo-terminal (stdout and stderr merged on it).
    pub(crate) tty: bool,
    /// Give the process a stdin the session can write (without it: `/dev/null`; a tty always
    /// has its terminal).
    pub(crate) stdin: bool,
    /// Keep the process's stdout (without it: `/dev/null`).
    pub(crate) stdout: bool,
    /// Keep the process's stderr (without it: `/dev/null`).
    pub(crate) stderr: bool,
    /// Extra environment.
    pub(crate) env: Vec<(String, String)>,
    /// Working directory.
    pub(crate) cwd: PathBuf,
    /// The terminal's initial size as `(cols, rows)`, if known.
    pub(crate) size: Option<(u16, u16)>,
}

/// Where the session's stdin and resizes go.
#[derive(Debug)]
pub(crate) enum ProcessInput {
    /// Nothing: no stdin, or stdin closed.
    None,
    /// The write end of the process's stdin pipe.
    Pipe(ChildStdin),
    /// The pseudo-terminal's master side: typed input and window size.
    Pty(pty_process::OwnedWritePty),
}

impl ProcessInput {
    /// Writes stdin bytes. A process that stopped reading (broken pipe) loses its stdin.
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        let result = match self {
            ProcessInput::None => return,
            ProcessInput::Pipe(pipe) => pipe.write_all(bytes).await,
            ProcessInput::Pty(pty) => pty.write_all(bytes).await,
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "process stdin closed");
            *self = ProcessInput::None;
        }
    }

    /// The client closed stdin: close the pipe. A terminal stays open (a tty's stdin only ends
    /// with the session; an end-of-file there is a typed ^D).
    pub(crate) fn close(&mut self) {
        if matches!(self, ProcessInput::Pipe(_)) {
            *self = ProcessInput::None;
        }
    }

    /// Applies a terminal size; `0x0` (a client that does not know its size) is ignored.
    pub(crate) fn resize(&self, cols: u16, rows: u16) {
        if cols == 0 && rows == 0 {
            return;
        }
        if let ProcessInput::Pty(pty) = self {
            if let Err(e) = pty.resize(pty_process::Size::new(rows, cols)) {
                tracing::debug!(error = %e, "resizing the terminal failed");
            }
        }
    }
}

/// A started process.
pub(crate) struct Spawned {
    /// The child (killed on drop).
    pub(crate) child: Child,
    /// Its stdin / terminal.
    pub(crate) input: ProcessInput,
    /// Its output streams: stdout (the terminal with a tty) and stderr.
    pub(crate) outputs: Vec<(OutputStream, BoxedRead)>,
}

impl std::fmt::Debug for Spawned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawned")
            .field("child", &self.child)
            .field("input", &self.input)
            .field("outputs", &self.outputs.len())
            .finish()
    }
}

/// Why a process could not start, worded as runc words it (`exec: "nope": executable file not
/// found in $PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpawnError(pub(crate) String);

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn spawn_error(program: &str, error: &std::io::Error) -> SpawnError {
    let text = match error.kind() {
        std::io::ErrorKind::NotFound if program.contains('/') => {
            format!("exec: {program:?}: stat {program}: no such file or directory")
        }
        std::io::ErrorKind::NotFound => {
            format!("exec: {program:?}: executable file not found in $PATH")
        }
        std::io::ErrorKind::PermissionDenied => format!("exec: {program:?}: permission denied"),
        _ => format!("exec: {program:?}: {error}"),
    };
    SpawnError(text)
}

fn io_error(error: pty_process::Error) -> std::io::Error {
    match error {
        pty_process::Error::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    }
}

fn stdio(wanted: bool) -> Stdio {
    if wanted {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

/// Starts `spec` on the host.
pub(crate) fn spawn(spec: &ProcessSpec) -> Result<Spawned, SpawnError> {
    let Some((program, args)) = spec.command.split_first() else {
        return Err(SpawnError("no command given".to_owned()));
    };
    let env: Vec<(OsString, OsString)> =
        spec.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    if spec.tty {
        let (pty, pts) =
            pty_process::open().map_err(|e| SpawnError(format!("allocating a terminal: {e}")))?;
        if let Some((cols, rows)) = spec.size.filter(|&size| size != (0, 0)) {
            let _ = pty.resize(pty_process::Size::new(rows, cols));
        }
        let child = pty_process::Command::new(program)
            .args(args)
            .envs(env)
            .env("TERM", "xterm")
            .current_dir(&spec.cwd)
            .kill_on_drop(true)
            .spawn(pts)
            .map_err(|e| spawn_error(program, &io_error(e)))?;
        let (read, write) = pty.into_split();
        let outputs: Vec<(OutputStream, BoxedRead)> = if spec.stdout {
            vec![(OutputStream::Stdout, Box::new(read))]
        } else {
            Vec::new()
        };
        return Ok(Spawned {
            child,
            input: ProcessInput::Pty(write),
            outputs,
        });
    }
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env)
        .current_dir(&spec.cwd)
        .stdin(stdio(spec.stdin))
        .stdout(stdio(spec.stdout))
        .stderr(stdio(spec.stderr))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_error(program, &e))?;
    let input = child
        .stdin
        .take()
        .map_or(ProcessInput::None, ProcessInput::Pipe);
    let mut outputs: Vec<(OutputStream, BoxedRead)> = Vec::new();
    if let Some(out) = child.stdout.take() {
        outputs.push((OutputStream::Stdout, Box::new(out)));
    }
    if let Some(err) = child.stderr.take() {
        outputs.push((OutputStream::Stderr, Box::new(err)));
    }
    Ok(Spawned {
        child,
        input,
        outputs,
    })
}

/// Reads the next piece of a process's output into `buf`: `None` at its end (a terminal's
/// `EIO` included) or when it cannot be read.
pub(crate) async fn read_output<R: AsyncRead + Unpin>(
    source: &mut R,
    buf: &mut [u8],
) -> Option<usize> {
    loop {
        match source.read(buf).await {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(e) if e.raw_os_error() == Some(EIO) => return None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(error = %e, "reading process output failed");
                return None;
            }
        }
    }
}

/// The exit code the runtime reports: the status, or `128 + signal` for a killed process.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
