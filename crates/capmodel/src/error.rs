//! Why a caller's policy could not be derived.

use crate::header_safe::NameProblem;
use crate::rule_decode::RuleError;

/// Why a caller's impersonation or recording policy could not be derived. The proxy answers
/// such a caller with 403 and this message, never with a silently weaker policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A rule of a capability could not be decoded. `index` counts from 0, like the paths in
    /// `reason`.
    #[error("capability \"{capability}\" rule {index} is malformed: {reason}")]
    MalformedRule {
        /// The capability name, e.g. [`KUBERNETES_CAP`](crate::KUBERNETES_CAP).
        capability: String,
        /// Position of the rule in the capability's list, from 0.
        index: usize,
        /// What is wrong and where in the rule.
        reason: RuleError,
    },
    /// The name to impersonate the caller as cannot be sent as `Impersonate-User`.
    #[error("cannot impersonate the caller as user {user:?}: {problem}")]
    InvalidUser {
        /// The user name.
        user: String,
        /// Why it cannot be sent.
        problem: NameProblem,
    },
    /// A group to impersonate the caller as cannot be sent as `Impersonate-Group`.
    #[error("cannot impersonate the caller with group {group:?}: {problem}")]
    InvalidGroup {
        /// The group name.
        group: String,
        /// Why it cannot be sent.
        problem: NameProblem,
    },
}
