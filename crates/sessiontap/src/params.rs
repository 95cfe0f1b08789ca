//! The session's parameters, read from the exec/attach request's query string.

use requestinfo::QueryPair;

/// What the client asked for in the query of `POST|GET /api/v1/namespaces/{ns}/pods/{pod}/exec`
/// (or `attach`): which standard streams exist, whether there is a tty, the command and the
/// container.
///
/// Parsed as the API server parses `PodExecOptions` / `PodAttachOptions`: Go's `url.ParseQuery`
/// (`&`-separated, `+` is a space, `%XX` escapes) and apimachinery's query-parameter conversion
/// (`Convert_Slice_string_To_bool`: a flag is false when absent, `0` or `false` in any letter case,
/// and true for any other value, the empty one included; only its first value counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SessionParams {
    /// `tty`: the container's terminal is a pty (stderr is merged into stdout; resizes are sent).
    pub tty: bool,
    /// `stdin`: the client sends standard input.
    pub stdin: bool,
    /// `stdout`: the server sends standard output.
    pub stdout: bool,
    /// `stderr`: the server sends standard error (kubectl never asks for it together with `tty`).
    pub stderr: bool,
    /// Every `command` value, in order (empty for `attach`).
    pub command: Vec<String>,
    /// The first `container` value, if any.
    pub container: Option<String>,
}

/// Why a query string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    /// A `%` not followed by two hex digits (Go's `url.ParseQuery` rejects the pair).
    #[error("invalid percent-escape in query parameter {pair:?}")]
    InvalidEscape {
        /// The `key=value` pair as it appeared in the query.
        pair: String,
    },
    /// A `;` in a pair (Go since 1.17 rejects the pair instead of treating `;` as a separator).
    #[error("invalid semicolon separator in query parameter {pair:?}")]
    Semicolon {
        /// The `key=value` pair as it appeared in the query.
        pair: String,
    },
    /// A key or value that is not UTF-8 once decoded.
    #[error("query parameter {pair:?} is not UTF-8 once percent-decoded")]
    NotUtf8 {
        /// The `key=value` pair as it appeared in the query.
        pair: String,
    },
    /// More parameters than Go's `url.ParseQuery` reads (it then yields none at all).
    #[error("more than {limit} query parameters")]
    TooManyParameters {
        /// Go's limit.
        limit: usize,
    },
    /// A pair the query decoder reports in a way this version does not know.
    #[error("a query parameter could not be read")]
    Unreadable,
}

impl SessionParams {
    /// Reads the parameters from a query string, with or without its leading `?`.
    ///
    /// Stricter than the API server, which drops a malformed pair silently: here it is an error, so
    /// that what is recorded can never differ from what runs.
    ///
    /// ```
    /// use sessiontap::SessionParams;
    ///
    /// let p = SessionParams::from_query("command=sh&command=-c&command=echo+hi%21&container=app&stdin=true&stdout=1&tty=TRUE")?;
    /// assert_eq!(p.command, ["sh", "-c", "echo hi!"]);
    /// assert_eq!(p.container.as_deref(), Some("app"));
    /// assert!(p.stdin && p.stdout && p.tty && !p.stderr);
    /// # Ok::<(), sessiontap::ParamsError>(())
    /// ```
    pub fn from_query(query: &str) -> Result<Self, ParamsError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        if requestinfo::too_many_query_params(query) {
            return Err(ParamsError::TooManyParameters {
                limit: requestinfo::MAX_QUERY_PARAMS,
            });
        }
        let mut params = SessionParams::default();
        // Only the first value of a flag counts; remember which flags were already seen.
        let mut seen = [false; 4];
        for pair in requestinfo::query_pairs(query) {
            let (key, value) = match pair {
                QueryPair::Decoded { raw, key, value } => {
                    match (String::from_utf8(key), String::from_utf8(value)) {
                        (Ok(key), Ok(value)) => (key, value),
                        _ => return Err(ParamsError::NotUtf8 { pair: raw.into() }),
                    }
                }
                QueryPair::Semicolon { raw } => {
                    return Err(ParamsError::Semicolon { pair: raw.into() })
                }
                QueryPair::InvalidEscape { raw } => {
                    return Err(ParamsError::InvalidEscape { pair: raw.into() })
                }
                // A kind of pair this version does not know: refuse rather than guess.
                _ => return Err(ParamsError::Unreadable),
            };
            let (index, field) = match key.as_str() {
                "tty" => (0, &mut params.tty),
                "stdin" => (1, &mut params.stdin),
                "stdout" => (2, &mut params.stdout),
                "stderr" => (3, &mut params.stderr),
                "command" => {
                    params.command.push(value);
                    continue;
                }
                "container" => {
                    params.container.get_or_insert(value);
                    continue;
                }
                _ => continue,
            };
            if !seen[index] {
                seen[index] = true;
                *field = query_bool(&value);
            }
        }
        Ok(params)
    }
}

/// apimachinery's `Convert_Slice_string_To_bool` for a present value.
fn query_bool(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_exec_it() {
        let p = SessionParams::from_query(
            "?command=%2Fbin%2Fsh&container=main&stdin=true&stdout=true&tty=true",
        )
        .expect("valid");
        assert_eq!(
            p,
            SessionParams {
                tty: true,
                stdin: true,
                stdout: true,
                stderr: false,
                command: vec!["/bin/sh".into()],
                container: Some("main".into()),
            }
        );
    }

    #[test]
    fn bools_follow_apimachinery() {
        for (value, expected) in [
            ("true", true),
            ("1", true),
            ("", true),
            ("yes", true),
            ("0", false),
            ("false", false),
            ("FaLsE", false),
        ] {
            let p = SessionParams::from_query(&format!("stderr={value}")).expect("valid");
            assert_eq!(p.stderr, expected, "stderr={value}");
        }
        let p = SessionParams::from_query("stdin").expect("valid");
        assert!(p.stdin, "a key without '=' has the empty value");
        let p = SessionParams::from_query("stdout=false&stdout=true").expect("valid");
        assert!(!p.stdout, "only the first value counts");
        let p = SessionParams::from_query("").expect("valid");
        assert_eq!(p, SessionParams::default());
    }

    #[test]
    fn first_container_and_every_command() {
        let p = SessionParams::from_query("container=a&command=x&container=b&command=y+z&command=")
            .expect("valid");
        assert_eq!(p.container.as_deref(), Some("a"));
        assert_eq!(p.command, ["x", "y z", ""]);
    }

    #[test]
    fn malformed_queries_are_errors() {
        assert!(matches!(
            SessionParams::from_query("command=%zz"),
            Err(ParamsError::InvalidEscape { .. })
        ));
        assert!(matches!(
            SessionParams::from_query("command=%4"),
            Err(ParamsError::InvalidEscape { .. })
        ));
        assert!(matches!(
            SessionParams::from_query("command=a;b"),
            Err(ParamsError::Semicolon { .. })
        ));
        assert!(matches!(
            SessionParams::from_query("command=%ff"),
            Err(ParamsError::NotUtf8 { .. })
        ));
        let too_many = vec!["stdout=1"; requestinfo::MAX_QUERY_PARAMS + 1].join("&");
        assert_eq!(
            SessionParams::from_query(&too_many),
            Err(ParamsError::TooManyParameters {
                limit: requestinfo::MAX_QUERY_PARAMS
            })
        );
        let at_limit = vec!["stdout=1"; requestinfo::MAX_QUERY_PARAMS].join("&");
        assert!(
            SessionParams::from_query(&at_limit)
                .expect("at the limit")
                .stdout
        );
    }

    proptest::proptest! {
        /// What the strict reader accepts, it reads exactly as the apiserver's lenient reader:
        /// the recorded command and container are the ones that run.
        #[test]
        fn strict_reading_agrees_with_the_apiservers(
            query in "(command|container|stdin|x|%63ommand|c%6Fntainer)(=[a-z%+;2F0-9]{0,6})?(&(command|container|stdin|%63ommand)(=[a-z%+;2F0-9]{0,6})?){0,5}"
        ) {
            if let Ok(params) = SessionParams::from_query(&query) {
                let values = requestinfo::query_values(&query);
                let command = values.get("command").cloned().unwrap_or_default();
                proptest::prop_assert_eq!(&params.command, &command);
                let container = values.get("container").and_then(|v| v.first()).cloned();
                proptest::prop_assert_eq!(&params.container, &container);
            }
        }
    }
}
