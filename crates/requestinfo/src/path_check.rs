//! Paths that a proxy cannot describe faithfully or forward unchanged.
//!
//! A proxy that decides and records by the path it was sent (as [`crate::parse`] reads it) must
//! forward exactly that path, or the API server may serve a different resource than the one
//! recorded. Some paths are rewritten on the way or read differently by different servers:
//! dot segments (`..`, also as `%2e%2e`) are removed by URL normalisation (WHATWG URL, RFC 3986
//! §5.2.4) but kept as names by Go's server; `\` is turned into `/` by WHATWG URL parsers; a
//! malformed escape is refused by Go with 400; bytes that are not UTF-8 cannot be recorded as
//! sent. No Kubernetes object can be named `.` or `..` (apimachinery `IsValidPathSegmentName`), so
//! refusing such paths loses nothing.

use std::fmt;

use crate::go_url::unescape_path_bytes;

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathAmbiguity {
    /// A `%` not followed by two hex digits.
    MalformedEscape,
    /// The decoded path is not UTF-8.
    NotUtf8,
    /// A `.` or `..` segment, in any encoding.
    DotSegment,
    /// A backslash, in any encoding.
    Backslash,
    /// A control character (NUL, CR, LF, ...), in any encoding.
    ControlCharacter,
}

impl fmt::Display for PathAmbiguity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathAmbiguity::MalformedEscape => "it has a malformed percent-escape",
            PathAmbiguity::NotUtf8 => "it is not UTF-8 once percent-decoded",
            PathAmbiguity::DotSegment => "it has a '.' or '..' segment",
            PathAmbiguity::Backslash => "it has a backslash",
            PathAmbiguity::ControlCharacter => "it has a control character",
        })
    }
}

/// Why the raw request path `raw_path` (as sent, before decoding) cannot be described and
/// forwarded byte for byte, or `None` when it can.
///
/// ```
/// use requestinfo::{path_ambiguity, PathAmbiguity};
/// assert_eq!(path_ambiguity("/api/v1/namespaces/d%65fault/pods/demo"), None);
/// assert_eq!(
///     path_ambiguity("/api/v1/namespaces/default/pods/demo/%2e%2e/%2e%2e/secrets"),
///     Some(PathAmbiguity::DotSegment)
/// );
/// ```
pub fn path_ambiguity(raw_path: &str) -> Option<PathAmbiguity> {
    // Raw first: `\` and dot segments as sent are what URL parsers rewrite.
    if raw_path.contains('\\') {
        return Some(PathAmbiguity::Backslash);
    }
    if has_dot_segment(raw_path) {
        return Some(PathAmbiguity::DotSegment);
    }
    // Without a `%` the decoded path is the raw one (a path has no `+` for space), already
    // checked above but for control characters; most paths take this way, with no copy.
    if !raw_path.contains('%') {
        return raw_path
            .chars()
            .any(char::is_control)
            .then_some(PathAmbiguity::ControlCharacter);
    }
    let Some(decoded) = unescape_path_bytes(raw_path) else {
        return Some(PathAmbiguity::MalformedEscape);
    };
    let Ok(decoded) = std::str::from_utf8(&decoded) else {
        return Some(PathAmbiguity::NotUtf8);
    };
    // Decoded: what Go's `URL.Path` holds, and what the apiserver and a WHATWG parser (which
    // reads `%2e` as `.`) see.
    if decoded.contains('\\') {
        return Some(PathAmbiguity::Backslash);
    }
    if has_dot_segment(decoded) {
        return Some(PathAmbiguity::DotSegment);
    }
    if decoded.chars().any(char::is_control) {
        return Some(PathAmbiguity::ControlCharacter);
    }
    None
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/')
        .any(|segment| segment == "." || segment == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/",
            "/version",
            "/api/v1/namespaces/default/pods",
            "/api/v1/namespaces/d%65fault/pods/d%65mo/exec",
            "/api/v1/namespaces/a/pods/x%2Fexec",
            "/api/v1/namespaces/a/configmaps/a.b..c",
            "/apis/apps/v1/namespaces/a/deployments/web-0...",
            "/api/v1/namespaces/a/pods/caf%C3%A9",
            "//api//v1",
        ] {
            assert_eq!(path_ambiguity(path), None, "{path}");
        }
    }

    #[test]
    fn ambiguous_paths_are_named() {
        use PathAmbiguity::*;
        for (path, why) in [
            (
                "/api/v1/namespaces/default/pods/demo/../../../kube-system/secrets/db",
                DotSegment,
            ),
            ("/api/v1/namespaces/default/pods/demo/%2e%2e/x", DotSegment),
            ("/api/v1/namespaces/default/pods/demo/.%2E/x", DotSegment),
            ("/api/v1/namespaces/default/pods/./demo", DotSegment),
            ("/api/v1/..", DotSegment),
            ("/api/v1/namespaces/a/pods/..%2f..%2fsecrets", DotSegment),
            ("/api/v1/namespaces/a/pods/a\\b", Backslash),
            ("/api/v1/namespaces/a/pods/a%5cb", Backslash),
            ("/api/v1/namespaces/a/pods/a%zz", MalformedEscape),
            ("/api/v1/namespaces/a/pods/a%ff", NotUtf8),
            ("/api/v1/namespaces/a/pods/a%00", ControlCharacter),
            ("/api/v1/namespaces/a/pods/a%0d%0a", ControlCharacter),
            // Raw, without any escape (the way most paths are checked).
            ("/api/v1/namespaces/a/pods/a\u{7f}", ControlCharacter),
            ("/api/v1/namespaces/a/pods/a\tb", ControlCharacter),
        ] {
            assert_eq!(path_ambiguity(path), Some(why), "{path}");
        }
    }
}
