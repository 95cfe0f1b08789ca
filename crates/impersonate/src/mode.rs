//! Whether the proxy impersonates callers or passes their own credentials through.

use std::fmt;
use std::str::FromStr;

/// How the proxy authenticates upstream (Tailscale: `APISERVER_PROXY=true|noauth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `auth`: the proxy's own credentials plus impersonation headers for the caller; whatever
    /// credentials the caller sent are removed.
    Auth,
    /// `noauth`: anonymous upstream credentials; the caller's own `Authorization` (and any
    /// impersonation it asks for) passes through for the API server to judge.
    NoAuth,
}

impl Mode {
    /// The mode's name: `auth` or `noauth`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auth => "auth",
            Mode::NoAuth => "noauth",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is neither `auth` nor `noauth`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown proxy mode {value:?}: expected \"auth\" or \"noauth\"")]
pub struct ParseModeError {
    /// The name given.
    pub value: String,
}

impl FromStr for Mode {
    type Err = ParseModeError;

    /// Parses `auth` or `noauth`, exactly.
    fn from_str(s: &str) -> Result<Mode, ParseModeError> {
        match s {
            "auth" => Ok(Mode::Auth),
            "noauth" => Ok(Mode::NoAuth),
            other => Err(ParseModeError {
                value: other.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips() {
        for mode in [Mode::Auth, Mode::NoAuth] {
            assert_eq!(mode.to_string().parse::<Mode>().unwrap(), mode);
        }
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        let err = "Auth".parse::<Mode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown proxy mode \"Auth\": expected \"auth\" or \"noauth\""
        );
        assert!("".parse::<Mode>().is_err());
        assert!("true".parse::<Mode>().is_err());
    }
}
