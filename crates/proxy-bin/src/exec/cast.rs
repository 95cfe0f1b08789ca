//! What a recording says about its session: the asciicast header from the caller and the request,
//! and whether the session is a `kubectl cp` file copy.

use std::time::{SystemTime, UNIX_EPOCH};

use castfmt::{FileCopy, FileCopyDirection};
use recorder_client::{Caller, CastHeader, KubernetesSession, Session, SessionType};
use sessiontap::SessionParams;

/// The pod an exec/attach request is for, from its path
/// `/api/v1/namespaces/{namespace}/pods/{pod}/{exec|attach}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The namespace.
    pub(crate) namespace: String,
    /// The pod.
    pub(crate) pod: String,
    /// exec or attach.
    pub(crate) session_type: SessionType,
}

impl Target {
    /// Reads the target from the request path as the API server does (`requestinfo`: the path is
    /// percent-decoded before it is split), so `d%65mo` is recorded as the pod `demo` it runs in.
    pub(crate) fn from_path(path: &str) -> Option<Target> {
        let info = requestinfo::parse("POST", path, "");
        let core_v1_pods = info.is_resource_request
            && info.api_prefix == "api"
            && info.api_version == "v1"
            && info.resource == "pods";
        if !core_v1_pods || info.namespace.is_empty() || info.name.is_empty() {
            return None;
        }
        let session_type = match info.subresource.as_str() {
            "exec" => SessionType::Exec,
            "attach" => SessionType::Attach,
            _ => return None,
        };
        Some(Target {
            namespace: info.namespace,
            pod: info.name,
            session_type,
        })
    }
}

/// The recording's header, tty flag and whether its input is recorded (the grant's `recordInput`;
/// in a tty session only what the terminal echoes). The command is the exec command joined with
/// spaces, as Tailscale's proxy records it; the timestamp is now.
///
/// An exec that is `kubectl cp` ([`file_copy`]) gets the header's `fileCopy`: the recorder client
/// then records its archive as a listing of the files instead of as text. A copy to the pod has
/// its stdin read whatever the grant says, since stdin is the archive; only its listing is
/// recorded, and stdin that turns out not to be an archive is recorded as input.
pub(crate) fn session(
    who: &crate::identity::Caller,
    target: &Target,
    params: &SessionParams,
    record_input: bool,
) -> Session {
    let caller = Caller::from(&who.description);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let mut header = CastHeader::kubernetes(
        timestamp,
        caller,
        params.command.join(" "),
        KubernetesSession {
            pod_name: target.pod.clone(),
            namespace: target.namespace.clone(),
            container: params.container.clone().unwrap_or_default(),
            session_type: target.session_type,
        },
    );
    header.file_copy = (target.session_type == SessionType::Exec)
        .then(|| file_copy(params))
        .flatten();
    // A copy to the pod has its archive read for the listing whatever the grant says of input
    // (recorder-client takes care of it); other stdin is recorded only as the grant says.
    Session::new(header, params.tty).with_record_input(record_input)
}

/// Whether the exec is `kubectl cp`'s `tar`, and which way it copies, from the command as
/// kubectl 1.32 runs it (`pkg/cmd/cp/cp.go`): from the pod `tar cf - SRC` (with `--retries`,
/// `sh -c "tar cf - SRC | tail -c+N"`, SRC single-quoted by kubectl 1.37 and later), the archive on
/// stdout; to the pod `tar [--no-same-permissions --no-same-owner] -xmf - -C DIR` (older kubectl:
/// `tar xf - -C DIR`), the archive on stdin. Only these exact shapes count (`tar` and `sh` named
/// bare, as kubectl names them), and only without a tty
/// (a terminal would mangle the archive), with the stream that carries the archive, and for a copy
/// from the pod without stdin (kubectl gives it none): anything else is recorded as any exec is. The `test -d DEST` session that precedes a copy to a pod is
/// an ordinary exec.
pub(crate) fn file_copy(params: &SessionParams) -> Option<FileCopy> {
    if params.tty {
        return None;
    }
    let copy = match params.command.as_slice() {
        // kubectl names the programs bare: a path (`./tar`, `/tmp/p/sh`) could be any program
        // placed there, say by an earlier copy to the pod, which records only its name.
        [shell, dash_c, script] if shell == "sh" && dash_c == "-c" => {
            resumable_copy_from_pod(script)?
        }
        command => tar_copy(command)?,
    };
    let stream_present = match copy.direction {
        // kubectl gives a copy from the pod no stdin. With stdin, the command could be driven
        // interactively while its stdout is read as an archive, whose members' bytes are listed
        // rather than recorded.
        FileCopyDirection::FromPod => params.stdout && !params.stdin,
        FileCopyDirection::ToPod => params.stdin,
        _ => false,
    };
    stream_present.then_some(copy)
}

/// `tar cf - SRC...` or `tar [--no-same-permissions] [--no-same-owner] -xmf - [-C DIR]`.
fn tar_copy(command: &[String]) -> Option<FileCopy> {
    let (program, args) = command.split_first()?;
    if program != "tar" {
        return None;
    }
    let mut args = args.iter().map(String::as_str).peekable();
    while args
        .next_if(|a| matches!(*a, "--no-same-permissions" | "--no-same-owner"))
        .is_some()
    {}
    let mode = args.next()?;
    let mode = mode.strip_prefix('-').unwrap_or(mode);
    if args.next()? != "-" {
        return None;
    }
    let rest: Vec<&str> = args.collect();
    match (mode, rest.as_slice()) {
        // A path tar would read as an option (`--files-from=/dev/stdin`,
        // `--checkpoint-action=exec=...`) is not kubectl's.
        ("cf", paths) if !paths.is_empty() && !paths.iter().any(|p| p.starts_with('-')) => {
            Some(FileCopy {
                direction: FileCopyDirection::FromPod,
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                resume_from: None,
            })
        }
        ("xmf" | "xf", []) => Some(to_pod(Vec::new())),
        ("xmf" | "xf", ["-C", dir]) => Some(to_pod(vec![(*dir).to_owned()])),
        _ => None,
    }
}

fn to_pod(paths: Vec<String>) -> FileCopy {
    FileCopy {
        direction: FileCopyDirection::ToPod,
        paths,
        resume_from: None,
    }
}

/// `tar cf - SRC | tail -c+N`: `kubectl cp --retries` from a pod; N is 0 for the first run, and
/// a retry resumes with N-1 bytes of the archive already copied. SRC is kubectl's: bare (1.32), or single-quoted with `'` written `'\''`
/// (1.37); a bare SRC the shell would read as more than one word is not kubectl's.
fn resumable_copy_from_pod(script: &str) -> Option<FileCopy> {
    let rest = script.strip_prefix("tar cf - ")?;
    let (source, offset) = rest.rsplit_once(" | tail -c+")?;
    if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let start: u64 = offset.parse().ok()?;
    let source = match source.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        Some(quoted) => {
            let pieces: Vec<&str> = quoted.split(r"'\''").collect();
            if pieces.iter().any(|p| p.contains('\'')) {
                return None;
            }
            let source = pieces.join("'");
            // Quoting does not stop tar from reading it as an option.
            if source.starts_with('-') {
                return None;
            }
            source
        }
        None => {
            let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c);
            if source.is_empty() || source.starts_with('-') || !source.chars().all(plain) {
                return None;
            }
            source.to_owned()
        }
    };
    Some(FileCopy {
        direction: FileCopyDirection::FromPod,
        paths: vec![source],
        resume_from: start.checked_sub(1).filter(|&skipped| skipped > 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(command: &[&str], stdin: bool, tty: bool) -> SessionParams {
        SessionParams {
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            container: None,
        }
    }

    fn copy(direction: FileCopyDirection, paths: &[&str], resume_from: Option<u64>) -> FileCopy {
        FileCopy {
            direction,
            paths: paths.iter().map(|s| (*s).to_owned()).collect(),
            resume_from,
        }
    }

    #[test]
    fn kubectl_cp_commands_are_file_copies() {
        use FileCopyDirection::{FromPod, ToPod};
        let cases: [(&[&str], bool, FileCopy); 8] = [
            (
                &["tar", "cf", "-", "/tmp/x"],
                false,
                copy(FromPod, &["/tmp/x"], None),
            ),
            (
                &["tar", "-xmf", "-", "-C", "/tmp"],
                true,
                copy(ToPod, &["/tmp"], None),
            ),
            (
                &["tar", "-xmf", "-", "-C", "."],
                true,
                copy(ToPod, &["."], None),
            ),
            (
                &[
                    "tar",
                    "--no-same-permissions",
                    "--no-same-owner",
                    "-xmf",
                    "-",
                    "-C",
                    "/d",
                ],
                true,
                copy(ToPod, &["/d"], None),
            ),
            (
                &["tar", "xf", "-", "-C", "/d"],
                true,
                copy(ToPod, &["/d"], None),
            ),
            (
                &["sh", "-c", "tar cf - /tmp/x | tail -c+0"],
                false,
                copy(FromPod, &["/tmp/x"], None),
            ),
            (
                &["sh", "-c", "tar cf - /tmp/x | tail -c+513"],
                false,
                copy(FromPod, &["/tmp/x"], Some(512)),
            ),
            (
                &["sh", "-c", r"tar cf - 'it'\''s here' | tail -c+1"],
                false,
                copy(FromPod, &["it's here"], None),
            ),
        ];
        for (command, stdin, expected) in cases {
            assert_eq!(
                file_copy(&params(command, stdin, false)),
                Some(expected),
                "{command:?}"
            );
        }
    }

    #[test]
    fn other_commands_are_not() {
        let cases: [(&[&str], bool, bool); 23] = [
            (&["test", "-d", "/tmp/x"], false, false),
            // Paths to the programs: not kubectl's.
            (&["/bin/tar", "cf", "-", "x"], false, false),
            (&["./tar", "-xmf", "-", "-C", "."], true, false),
            (&["/tmp/p/sh", "-c", "tar cf - x | tail -c+0"], false, false),
            // With stdin, a copy from the pod could be a program driven while its output is read
            // as an archive.
            (&["tar", "cf", "-", "/tmp/x"], true, false),
            (&["sh", "-c", "tar cf - x | tail -c+1"], true, false),
            // Options where kubectl puts paths.
            (&["tar", "cf", "-", "--files-from=/dev/stdin"], false, false),
            (
                &["tar", "cf", "-", "x", "--checkpoint-action=exec=sh"],
                false,
                false,
            ),
            (
                &["sh", "-c", "tar cf - --files-from=/dev/stdin | tail -c+2"],
                false,
                false,
            ),
            (
                &["sh", "-c", "tar cf - '--files-from=/dev/stdin' | tail -c+2"],
                false,
                false,
            ),
            (&["tar", "cf", "-", "/tmp/x"], false, true),
            (&["tar", "-xmf", "-", "-C", "/tmp"], false, false),
            (&["tar", "tf", "-"], true, false),
            (&["tar", "cf", "/tmp/a.tar", "x"], false, false),
            (&["tar", "cf", "-"], false, false),
            (&["tar", "-xmf", "-", "-C", "/d", "extra"], true, false),
            (&["star", "cf", "-", "x"], false, false),
            (&["sh", "-c", "tar cf - x; rm -rf /"], false, false),
            (&["sh", "-c", "tar cf - x | tail -c+1; id"], false, false),
            (&["sh", "-c", "tar cf - $(id) | tail -c+1"], false, false),
            (&["sh", "-c", "tar cf - 'a'b' | tail -c+1"], false, false),
            (&["sh", "-c", "tar cf - x | tail -c+"], false, false),
            (&["sh", "-x", "tar cf - x | tail -c+1"], false, false),
        ];
        for (command, stdin, tty) in cases {
            assert_eq!(file_copy(&params(command, stdin, tty)), None, "{command:?}");
        }
    }

    #[test]
    fn target_from_path() {
        assert_eq!(
            Target::from_path("/api/v1/namespaces/prod/pods/web-1/exec"),
            Some(Target {
                namespace: "prod".into(),
                pod: "web-1".into(),
                session_type: SessionType::Exec
            })
        );
        assert_eq!(
            Target::from_path("/api/v1/namespaces/prod/pods/web-1/attach").map(|t| t.session_type),
            Some(SessionType::Attach)
        );
        assert_eq!(
            Target::from_path("/api/v1/namespaces/prod/pods/web-1/log"),
            None
        );
    }

    #[test]
    fn names_are_recorded_as_the_apiserver_decodes_them() {
        assert_eq!(
            Target::from_path("/api/v1/namespaces/d%65fault/pods/d%65mo/exec"),
            Some(Target {
                namespace: "default".into(),
                pod: "demo".into(),
                session_type: SessionType::Exec
            })
        );
        assert_eq!(
            Target::from_path("/api/v1/namespaces/a/pods/x%2Fy/exec"),
            None,
            "x/y/exec is not the exec subresource of a pod"
        );
        assert_eq!(
            Target::from_path("/api/v1/namespaces/a/pods/x%2Fexec"),
            Some(Target {
                namespace: "a".into(),
                pod: "x".into(),
                session_type: SessionType::Exec
            }),
            "the API server reads pods/x%2Fexec as the exec subresource of x"
        );
        for other in [
            "/api/v1/namespaces/a/pods/x/log",
            "/apis/apps/v1/namespaces/a/pods/x/exec",
            "/api/v2/namespaces/a/pods/x/exec",
            "/api/v1/namespaces/a/services/x/exec",
            "/api/v1/pods/x/exec",
        ] {
            assert_eq!(Target::from_path(other), None, "{other}");
        }
    }
}
