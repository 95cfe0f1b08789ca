//! How a remote command ended, and what the server writes for it on the error stream (SPDY) or
//! error channel (WebSocket).
//!
//! Kubelet's `ServeExec` (`pkg/kubelet/cri/streaming/remotecommand/exec.go`) turns the runtime's
//! result into a `metav1.Status`: `Success`; `Failure` with reason `NonZeroExitCode` and the code
//! in `details.causes[{reason: ExitCode}]` when the command exited non-zero; otherwise
//! `apierrors.NewInternalError`. Protocol v4 and later write it as JSON (`v4WriteStatusFunc`,
//! Go's `json.Marshal` of the struct, so fields in declaration order and empty ones left out);
//! earlier ones write the error's text and nothing on success (`v1WriteStatusFunc`).

use kubestatus::{Status, StatusCause, StatusDetails};
use sessiontap::ErrorFormat;

/// The end of a session, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Exit status 0 (and every attach that ends, as containerd's `AttachContainer` reports).
    Success,
    /// A non-zero exit status; a process killed by signal `n` reports `128 + n`, as containerd
    /// (through runc) does.
    ExitCode {
        /// The exit code, 1 to 255.
        code: i32,
        /// The runtime's error text, after `command terminated with non-zero exit code: `.
        message: String,
    },
    /// The command could not run; `cause` is the runtime's error text.
    Internal {
        /// The error, e.g. `failed to exec in container: exec: "nope": executable file not
        /// found in $PATH`.
        cause: String,
    },
}

impl Outcome {
    /// The outcome of a command that exited with `code`, with containerd's wording
    /// (`execInContainer`: `error executing command %v, exit code %d`).
    pub(crate) fn exited(code: i32, command: &[String]) -> Outcome {
        if code == 0 {
            Outcome::Success
        } else {
            Outcome::ExitCode {
                code,
                message: format!(
                    "error executing command [{}], exit code {code}",
                    command.join(" ")
                ),
            }
        }
    }

    /// A command that could not be started.
    pub(crate) fn failed_to_start(error: impl std::fmt::Display) -> Outcome {
        Outcome::Internal {
            cause: format!("failed to exec in container: {error}"),
        }
    }

    /// What the server writes on the error stream for this outcome.
    pub(crate) fn encode(&self, format: ErrorFormat) -> Vec<u8> {
        match format {
            ErrorFormat::Status => self.status_json(),
            ErrorFormat::PlainText => match self {
                Outcome::Success => Vec::new(),
                _ => self.status_message().into_bytes(),
            },
        }
    }

    /// `Status.message` (and the text of the v1 error stream).
    fn status_message(&self) -> String {
        match self {
            Outcome::Success => String::new(),
            Outcome::ExitCode { message, .. } => {
                format!("command terminated with non-zero exit code: {message}")
            }
            Outcome::Internal { cause } => {
                format!("Internal error occurred: {}", internal_cause(cause))
            }
        }
    }

    /// The `metav1.Status` JSON (Go's field order and `omitempty`, from `kubestatus`).
    fn status_json(&self) -> Vec<u8> {
        let status = match self {
            Outcome::Success => Status::success(),
            Outcome::ExitCode { code, .. } => Status::exit_code(*code, self.status_message()),
            // `apierrors.NewInternalError(err)`: the error is also the only cause's message.
            Outcome::Internal { cause } => Status::internal_error(self.status_message())
                .with_details(StatusDetails {
                    causes: vec![StatusCause {
                        message: internal_cause(cause),
                        ..StatusCause::default()
                    }],
                    ..StatusDetails::default()
                }),
        };
        status.to_json()
    }
}

/// Kubelet's wrapping of a runtime error before `NewInternalError`.
fn internal_cause(cause: &str) -> String {
    format!("error executing command in container: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn success() {
        assert_eq!(
            Outcome::Success.encode(ErrorFormat::Status),
            br#"{"metadata":{},"status":"Success"}"#
        );
        assert!(Outcome::Success.encode(ErrorFormat::PlainText).is_empty());
    }

    #[test]
    fn non_zero_exit_is_read_by_client_go() {
        let outcome = Outcome::exited(3, &["sh".into(), "-c".into(), "exit 3".into()]);
        let json: Value =
            serde_json::from_slice(&outcome.encode(ErrorFormat::Status)).expect("JSON");
        assert_eq!(json["status"], "Failure");
        assert_eq!(json["reason"], "NonZeroExitCode");
        assert_eq!(json["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(json["details"]["causes"][0]["message"], "3");
        assert_eq!(
            outcome.encode(ErrorFormat::Status),
            br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(
            json["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert_eq!(
            outcome.encode(ErrorFormat::PlainText),
            b"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
    }

    #[test]
    fn start_failure_is_an_internal_error() {
        let outcome =
            Outcome::failed_to_start("exec: \"nope\": executable file not found in $PATH");
        let json: Value =
            serde_json::from_slice(&outcome.encode(ErrorFormat::Status)).expect("JSON");
        assert_eq!(json["reason"], "InternalError");
        assert_eq!(json["code"], 500);
        assert_eq!(
            outcome.encode(ErrorFormat::Status),
            br#"{"metadata":{},"status":"Failure","message":"Internal error occurred: error executing command in container: failed to exec in container: exec: \"nope\": executable file not found in $PATH","reason":"InternalError","details":{"causes":[{"message":"error executing command in container: failed to exec in container: exec: \"nope\": executable file not found in $PATH"}]},"code":500}"#
        );
        assert_eq!(
            json["message"],
            "Internal error occurred: error executing command in container: failed to exec in container: exec: \"nope\": executable file not found in $PATH"
        );
    }
}
