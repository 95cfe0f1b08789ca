//! The name checks of `k8s.io/apimachinery` that decide whether a selector parses and whether a
//! `metadata.name` field selector may name the object: `validation.IsQualifiedName`,
//! `IsValidLabelValue`, `IsDNS1123Subdomain` (`pkg/util/validation/validation.go`) and
//! `path.IsValidPathSegmentName` (`pkg/api/validation/path/name.go`). The Go versions use regular
//! expressions; these are the same languages written out by hand.

/// Longest name part of a qualified name, and longest label value.
const QUALIFIED_NAME_MAX_LEN: usize = 63;
/// Longest DNS-1123 subdomain.
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;

/// A label key: `[prefix/]name`, the prefix a DNS-1123 subdomain, the name 1 to 63 characters of
/// `[-A-Za-z0-9_.]` starting and ending with an alphanumeric.
pub(crate) fn is_qualified_name(value: &[u8]) -> bool {
    let mut parts = value.split(|&b| b == b'/');
    let (first, second, third) = (parts.next(), parts.next(), parts.next());
    let name = match (first, second, third) {
        (Some(name), None, _) => name,
        (Some(prefix), Some(name), None) => {
            if !is_dns1123_subdomain(prefix) {
                return false;
            }
            name
        }
        _ => return false,
    };
    !name.is_empty() && name.len() <= QUALIFIED_NAME_MAX_LEN && is_qualified_name_part(name)
}

/// A label value: empty, or up to 63 characters shaped like a qualified name's name part.
pub(crate) fn is_valid_label_value(value: &[u8]) -> bool {
    value.len() <= QUALIFIED_NAME_MAX_LEN && (value.is_empty() || is_qualified_name_part(value))
}

/// Whether `name` may be an object name in a URL path: not `.` or `..`, no `/` or `%`.
pub(crate) fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains(['/', '%'])
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the whole of `part`.
fn is_qualified_name_part(part: &[u8]) -> bool {
    match (part.first(), part.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && part
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// At most 253 characters of dot-separated DNS-1123 labels: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns1123_subdomain(value: &[u8]) -> bool {
    value.len() <= DNS1123_SUBDOMAIN_MAX_LEN && value.split(|&b| b == b'.').all(is_dns1123_label)
}

fn is_dns1123_label(label: &[u8]) -> bool {
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (label.first(), label.last()) {
        (Some(first), Some(last)) => {
            edge(first) && edge(last) && label.iter().all(|b| edge(b) || *b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        let long_prefix = format!("{}.io/app", "a".repeat(251));
        for good in [
            "app",
            "A",
            "9",
            "app.kubernetes.io/name",
            "k8s.io/x_y.z-1",
            long.as_str(),
        ] {
            assert!(is_qualified_name(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "-app",
            "app-",
            "a b",
            "/app",
            "k8s.io/",
            "a/b/c",
            "K8s.io/app",
            "k8s..io/app",
            "k8s_io/app",
            "é",
            too_long.as_str(),
            long_prefix.as_str(),
        ] {
            assert!(!is_qualified_name(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn label_values() {
        for good in ["", "demo", "v1.2_3-x", "Z"] {
            assert!(is_valid_label_value(good.as_bytes()), "{good}");
        }
        for bad in ["-x", "x.", "a/b", "a b", &"a".repeat(64)] {
            assert!(!is_valid_label_value(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn path_segment_names() {
        for good in ["", "web-0", "a.b", "...", "ünïcode"] {
            assert!(is_valid_path_segment_name(good), "{good}");
        }
        for bad in [".", "..", "a/b", "50%"] {
            assert!(!is_valid_path_segment_name(bad), "{bad}");
        }
    }
}
