//! Why impersonation headers could not be written.

use capmodel::NameProblem;

/// Why impersonation headers could not be written. Headers are left untouched when this is
/// returned, and the request must not be sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImpersonateError {
    /// The user cannot be sent as `Impersonate-User` (an empty user above all: the API server
    /// would not impersonate and the request would run with the proxy's own rights).
    #[error("refusing to impersonate user {user:?}: {problem}")]
    InvalidUser {
        /// The user name.
        user: String,
        /// Why it cannot be sent.
        problem: NameProblem,
    },
    /// A group cannot be sent as `Impersonate-Group`.
    #[error("refusing to impersonate group {group:?}: {problem}")]
    InvalidGroup {
        /// The group name.
        group: String,
        /// Why it cannot be sent.
        problem: NameProblem,
    },
    /// The `http` crate refused the value (not expected after the checks above; kept so that
    /// no input can panic).
    #[error("{header} value {value:?} is not a valid HTTP header value")]
    InvalidHeaderValue {
        /// The header name.
        header: &'static str,
        /// The value.
        value: String,
    },
}
