//! The request URL as the kube-apiserver's Go `net/url` reads it: `URL.Path` is the
//! percent-decoded path and `URL.Query()` is `url.ParseQuery` of the raw query.
//!
//! Both matter for agreeing with the apiserver on what a request names. Go's HTTP server decodes
//! the path before any handler sees it, so `/api/v1/namespaces/a/pods/x%2Fexec` reaches
//! `RequestInfoFactory` as `.../pods/x/exec`, the `exec` subresource; reading the raw path would
//! see a pod named `x%2Fexec` instead.

use std::collections::BTreeMap;

/// Go's `url.ParseQuery` refuses a query with more parameters than this (its `urlmaxqueryparams`
/// default) and then yields no values at all.
pub const MAX_QUERY_PARAMS: usize = 10_000;

/// How `%XX` and `+` are read, as Go's `url.unescape` modes `encodePath` and
/// `encodeQueryComponent`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Component {
    /// A path: `+` is a literal plus sign.
    Path,
    /// A query key or value: `+` is a space.
    Query,
}

/// Percent-decodes a URL path as Go's `url.ParseRequestURI` does for `URL.Path`. `None` when a
/// `%` is not followed by two hex digits: Go's HTTP server answers such a request 400 before any
/// handler runs.
pub(crate) fn unescape_path(path: &str) -> Option<String> {
    unescape(path, Component::Path)
}

/// The bytes of `URL.Path` exactly as Go holds them (no UTF-8 replacement); `None` on a malformed
/// escape.
pub(crate) fn unescape_path_bytes(path: &str) -> Option<Vec<u8>> {
    unescape_bytes(path, Component::Path)
}

/// One `&`-separated piece of a raw query, as Go's `url.ParseQuery` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryPair<'a> {
    /// A pair Go keeps: key and value decoded to bytes (`%XX` is a byte, `+` a space; a key
    /// without `=` has the empty value).
    Decoded {
        /// The pair as it appeared in the query.
        raw: &'a str,
        /// The decoded key.
        key: Vec<u8>,
        /// The decoded value.
        value: Vec<u8>,
    },
    /// A pair containing `;`, which Go (1.17 and later) drops instead of splitting on it.
    Semicolon {
        /// The pair as it appeared in the query.
        raw: &'a str,
    },
    /// A pair whose key or value has a `%` not followed by two hex digits, which Go drops.
    InvalidEscape {
        /// The pair as it appeared in the query.
        raw: &'a str,
    },
}

/// The pieces of a raw query (without its `?`) in order, as Go's `url.ParseQuery` walks them:
/// split on `&` only, empty pieces skipped. Each is decoded or says why Go drops it, so that a
/// lenient reader (the apiserver's) and a strict one (a recorder that must refuse what it cannot
/// read exactly) share one decoding.
pub fn query_pairs(query: &str) -> impl Iterator<Item = QueryPair<'_>> {
    query.split('&').filter(|raw| !raw.is_empty()).map(|raw| {
        if raw.contains(';') {
            return QueryPair::Semicolon { raw };
        }
        let (key, value) = raw.split_once('=').unwrap_or((raw, ""));
        match (
            unescape_bytes(key, Component::Query),
            unescape_bytes(value, Component::Query),
        ) {
            (Some(key), Some(value)) => QueryPair::Decoded { raw, key, value },
            _ => QueryPair::InvalidEscape { raw },
        }
    })
}

/// Whether Go's `url.ParseQuery` refuses `query` as a whole for having more than
/// [`MAX_QUERY_PARAMS`] parameters (counted as Go counts them: one more than the `&`s).
pub fn too_many_query_params(query: &str) -> bool {
    query.matches('&').count() + 1 > MAX_QUERY_PARAMS
}

/// The query's parameters, decoded as Go's `url.ParseQuery` (and so `URL.Query()`) does: pairs
/// split on `&` only; a pair containing `;` is dropped (Go 1.17 and later); so is a pair whose key
/// or value has a malformed `%` escape; `+` is a space; a key without `=` has the value `""`.
/// A query of more than 10 000 parameters yields nothing, as in current Go releases.
pub(crate) fn query_values(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if too_many_query_params(query) {
        return values;
    }
    for pair in query_pairs(query) {
        if let QueryPair::Decoded { key, value, .. } = pair {
            values.entry(lossy(key)).or_default().push(lossy(value));
        }
    }
    values
}

/// Decoded bytes as a `String`: bytes that do not form UTF-8 become U+FFFD (Go keeps them as they
/// are, but a Rust `String` cannot hold them).
fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// The first value of `key`, as Go's `values[key][0]` guarded by a length check.
pub(crate) fn first<'a>(values: &'a BTreeMap<String, Vec<String>>, key: &str) -> Option<&'a str> {
    values.get(key)?.first().map(String::as_str)
}

/// Go's `url.unescape`, as a `String` (see [`lossy`]).
fn unescape(s: &str, component: Component) -> Option<String> {
    let escaped = s.contains('%') || (component == Component::Query && s.contains('+'));
    if !escaped {
        return Some(s.to_owned());
    }
    unescape_bytes(s, component).map(lossy)
}

/// Go's `url.unescape`, to bytes.
fn unescape_bytes(s: &str, component: Component) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'%' => {
                let high = bytes.next().and_then(hex_value)?;
                let low = bytes.next().and_then(hex_value)?;
                out.push(high << 4 | low);
            }
            b'+' if component == Component::Query => out.push(b' '),
            other => out.push(other),
        }
    }
    Some(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, Vec<String>)> {
        query_values(query).into_iter().collect()
    }

    fn one(key: &str, values: &[&str]) -> (String, Vec<String>) {
        (
            key.to_owned(),
            values.iter().map(|v| (*v).to_owned()).collect(),
        )
    }

    #[test]
    fn path_escapes_are_decoded_and_plus_is_kept() {
        assert_eq!(unescape_path("/a%2Fb+c").as_deref(), Some("/a/b+c"));
        assert_eq!(unescape_path("/%7e%7E").as_deref(), Some("/~~"));
        assert_eq!(unescape_path("/plain").as_deref(), Some("/plain"));
        assert_eq!(unescape_path("/%ff").as_deref(), Some("/\u{fffd}"));
    }

    #[test]
    fn malformed_path_escapes_are_refused() {
        for bad in ["/%", "/%4", "/%zz", "/a%4g", "%%41"] {
            assert_eq!(unescape_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_pairs_follow_go() {
        assert_eq!(
            pairs("b=2&a=1&a=&c&labelSelector=app%3Ddemo+x"),
            vec![
                one("a", &["1", ""]),
                one("b", &["2"]),
                one("c", &[""]),
                one("labelSelector", &["app=demo x"]),
            ]
        );
    }

    #[test]
    fn semicolons_and_bad_escapes_drop_only_their_pair() {
        assert_eq!(
            pairs("a=1;b=2&c=%zz&d%=1&e=ok&&f=%3b"),
            vec![one("e", &["ok"]), one("f", &[";"])]
        );
    }

    #[test]
    fn each_piece_says_whether_go_keeps_it() {
        let pieces: Vec<QueryPair<'_>> = query_pairs("a=1+2&&b;c&d=%zz&e").collect();
        assert_eq!(
            pieces,
            vec![
                QueryPair::Decoded {
                    raw: "a=1+2",
                    key: b"a".to_vec(),
                    value: b"1 2".to_vec()
                },
                QueryPair::Semicolon { raw: "b;c" },
                QueryPair::InvalidEscape { raw: "d=%zz" },
                QueryPair::Decoded {
                    raw: "e",
                    key: b"e".to_vec(),
                    value: Vec::new()
                },
            ]
        );
        assert!(!too_many_query_params(
            &vec!["x"; MAX_QUERY_PARAMS].join("&")
        ));
        assert!(too_many_query_params(
            &vec!["x"; MAX_QUERY_PARAMS + 1].join("&")
        ));
    }

    #[test]
    fn too_many_parameters_yield_nothing() {
        let at_limit = vec!["watch=1"; MAX_QUERY_PARAMS].join("&");
        assert_eq!(query_values(&at_limit)["watch"].len(), MAX_QUERY_PARAMS);
        let over = format!("{at_limit}&x");
        assert!(query_values(&over).is_empty());
    }
}
