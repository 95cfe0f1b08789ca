//! Everything the proxy decides about one caller.

use crate::error::PolicyError;
use crate::impersonation::Impersonation;
use crate::recording::RecordingPolicy;
use crate::whois::WhoIs;

/// A caller's impersonation and recording policy, derived once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerPolicy {
    /// Who requests are sent upstream as.
    pub impersonation: Impersonation,
    /// How sessions and API requests are recorded.
    pub recording: RecordingPolicy,
}

impl CallerPolicy {
    /// Derives both parts: impersonation from [`impersonation_rules`](crate::impersonation_rules)
    /// (with the legacy fallback), recording from [`kubernetes_rules`](crate::kubernetes_rules).
    ///
    /// # Errors
    /// Any [`PolicyError`]: a malformed rule, or a user or group name that cannot be sent as a
    /// header value.
    pub fn from_whois(who: &WhoIs) -> Result<CallerPolicy, PolicyError> {
        Ok(CallerPolicy {
            impersonation: Impersonation::from_whois(who)?,
            recording: RecordingPolicy::from_cap_map(&who.cap_map)?,
        })
    }
}
