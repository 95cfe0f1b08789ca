//! Whether a name can be sent faithfully as an HTTP header value (RFC 9110 section 5.5).
//!
//! Impersonated user and group names travel to the API server as `Impersonate-User` and
//! `Impersonate-Group` values. A name that HTTP cannot carry unchanged must be refused rather
//! than mangled: control characters are not allowed in field values (and CR/LF would split the
//! header), and leading or trailing spaces are stripped by every HTTP parser, so the API server
//! would see another name. An empty (or blank) user is worst of all: the API server reads it as
//! "no impersonation" and would run the request with the proxy's own, usually broad, rights.

use std::fmt;

/// Why a user or group name cannot be sent as an impersonation header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// The user name is empty: the API server would not impersonate at all.
    Empty,
    /// The name holds a control character (U+0000 to U+001F, U+007F to U+009F) at this byte
    /// offset.
    ControlCharacter {
        /// Byte offset of the first control character.
        offset: usize,
    },
    /// The name starts or ends with a space or tab, which HTTP strips.
    SurroundingWhitespace,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => {
                f.write_str("it is empty, which the API server reads as no impersonation")
            }
            NameProblem::ControlCharacter { offset } => {
                write!(f, "it holds a control character at byte {offset}")
            }
            NameProblem::SurroundingWhitespace => {
                f.write_str("it starts or ends with whitespace, which HTTP strips")
            }
        }
    }
}

/// Checks a name for `Impersonate-User`: non-empty, no control characters, no surrounding
/// whitespace.
pub fn user_name_problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        return Some(NameProblem::Empty);
    }
    group_name_problem(name)
}

/// Checks a name for `Impersonate-Group`: no control characters, no surrounding whitespace. An
/// empty group is allowed, as in Tailscale's proxy (it is a valid, if odd, group).
pub fn group_name_problem(name: &str) -> Option<NameProblem> {
    if let Some((offset, _)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return Some(NameProblem::ControlCharacter { offset });
    }
    let is_ows = |c: char| c == ' ' || c == '\t';
    if name.starts_with(is_ows) || name.ends_with(is_ows) {
        return Some(NameProblem::SurroundingWhitespace);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_unicode_names() {
        for ok in [
            "alice@example.com",
            "system:masters",
            "tag:ci",
            "josé@例え.jp",
            "a b",
        ] {
            assert_eq!(user_name_problem(ok), None, "{ok}");
        }
        assert_eq!(group_name_problem(""), None);
    }

    #[test]
    fn refuses_what_http_cannot_carry() {
        assert_eq!(user_name_problem(""), Some(NameProblem::Empty));
        assert_eq!(
            user_name_problem("a\r\nImpersonate-Group: system:masters"),
            Some(NameProblem::ControlCharacter { offset: 1 })
        );
        assert_eq!(
            group_name_problem("x\u{7f}"),
            Some(NameProblem::ControlCharacter { offset: 1 })
        );
        assert_eq!(
            group_name_problem("é\u{85}"),
            Some(NameProblem::ControlCharacter { offset: 2 })
        );
        assert_eq!(
            user_name_problem(" "),
            Some(NameProblem::SurroundingWhitespace)
        );
        assert_eq!(
            group_name_problem("g "),
            Some(NameProblem::SurroundingWhitespace)
        );
        assert_eq!(
            group_name_problem("\tg"),
            Some(NameProblem::ControlCharacter { offset: 0 })
        );
    }
}
