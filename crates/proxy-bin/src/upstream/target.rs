//! Where a request goes upstream: the server's base path joined with the request's path and
//! query, byte for byte as the caller sent them.
//!
//! Every forwarded request needs this, so the common case skips the URL parser: a path and query
//! made only of bytes that a WHATWG URL parser (the `url` crate, which reqwest sends through)
//! copies unchanged are joined as they are. Anything else goes through the parser and is refused
//! when the parser would change it ([`super::client::Upstream::url_for`]), so both ways accept and
//! refuse exactly the same requests (property test below).

use http::uri::PathAndQuery;

/// A request's path and query as the API server will get them (under the server's base path),
/// checked by [`Upstream::target_for`](super::Upstream::target_for), which alone makes them.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamTarget {
    origin_form: PathAndQuery,
}

impl UpstreamTarget {
    /// Joins `base_path` (the server URL's path without its trailing `/`), `path` and `query`,
    /// which the caller has checked.
    pub(super) fn join(
        base_path: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<UpstreamTarget, http::uri::InvalidUri> {
        let mut joined = String::with_capacity(
            base_path.len() + path.len() + query.map_or(0, |query| query.len() + 1),
        );
        joined.push_str(base_path);
        joined.push_str(path);
        if let Some(query) = query {
            joined.push('?');
            joined.push_str(query);
        }
        Ok(UpstreamTarget {
            origin_form: PathAndQuery::from_maybe_shared(joined)?,
        })
    }

    /// The request target in origin form (`/path?query`), as sent on the request line.
    pub(crate) fn origin_form(&self) -> &PathAndQuery {
        &self.origin_form
    }

    /// The path, base path included.
    pub(crate) fn path(&self) -> &str {
        self.origin_form.path()
    }

    /// The query, when the request has one (`Some("")` for a bare `?`).
    pub(crate) fn query(&self) -> Option<&str> {
        self.origin_form.query()
    }
}

/// Whether a WHATWG URL parser copies `path` unchanged, given that it has no dot segments and no
/// backslashes ([`requestinfo::path_ambiguity`] refused those): true when every byte is an
/// unreserved or sub-delimiter character, `:`, `@`, `/` or `%`, none of which the path state
/// percent-encodes or strips. `false` only means the parser must be asked.
pub(super) fn path_passes_unparsed(path: &str) -> bool {
    path.bytes().all(|byte| PATH_UNPARSED[usize::from(byte)])
}

/// The same for a query: as for a path, plus `?`, less `'` (which the special-query
/// percent-encode set of `http` and `https` URLs encodes).
pub(super) fn query_passes_unparsed(query: &str) -> bool {
    query.bytes().all(|byte| QUERY_UNPARSED[usize::from(byte)])
}

/// [`path_passes_unparsed`]'s bytes, as a table: one lookup per byte of every request path.
static PATH_UNPARSED: [bool; 256] = byte_table(b"-._~!$&'()*+,;=:@/%");
/// [`query_passes_unparsed`]'s bytes.
static QUERY_UNPARSED: [bool; 256] = byte_table(b"-._~!$&()*+,;=:@/?%");

/// ASCII letters and digits, and `extra`.
const fn byte_table(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use url::Url;

    /// Characters that URL parsers treat specially, mixed with ordinary ones.
    const ALPHABET: &[char] = &[
        'a', 'Z', '0', '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=',
        ':', '@', '/', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', '?', '#', ' ', '"', '<', '>', '`',
        '{', '}', '^', '|', '[', ']', '\\', '\t', '\n', '\u{7f}', 'é', '\u{0}',
    ];

    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(ALPHABET), 0..max)
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// What the fast check lets through, the URL parser leaves as it is.
        #[test]
        fn what_passes_unparsed_the_parser_leaves_alone(path in text(24), query in text(24)) {
            let path = format!("/{path}");
            let mut url = Url::parse("https://apiserver.example:6443/").expect("base");
            if requestinfo::path_ambiguity(&path).is_none() && path_passes_unparsed(&path) {
                url.set_path(&path);
                prop_assert_eq!(url.path(), path.as_str());
            }
            if query_passes_unparsed(&query) {
                url.set_query(Some(&query));
                prop_assert_eq!(url.query(), Some(query.as_str()));
            }
        }
    }

    fn upstream(server: &str) -> crate::upstream::Upstream {
        use crate::upstream::config::{Credential, UpstreamConfig, UpstreamTls};
        let config = UpstreamConfig {
            server: Url::parse(server).expect("url"),
            tls: UpstreamTls::default(),
            credential: Credential::None,
            source: "test".into(),
        };
        crate::upstream::Upstream::new(&config, impersonate::Mode::Auth, 1).expect("upstream")
    }

    /// The fast way and the parser's way accept the same requests, with the same request line.
    #[test]
    fn target_for_accepts_and_refuses_what_url_for_does() {
        let servers = [
            upstream("http://127.0.0.1:6443"),
            upstream("http://127.0.0.1:8080/k8s/clusters/c-1/"),
        ];
        let forwardable = std::cell::Cell::new(0u32);
        proptest!(ProptestConfig::with_cases(4096), |(path in text(24), query in proptest::option::of(text(16)), origin_form in proptest::bool::weighted(0.8))| {
            // Request targets in other forms too: `*`, `host:port`, `http://host/path`.
            let slash = if origin_form { "/" } else { "" };
            let raw = match &query {
                Some(query) => format!("{slash}{path}?{query}"),
                None => format!("{slash}{path}"),
            };
            // Only what hyper accepts as a request target reaches the proxy.
            let Ok(uri) = raw.parse::<http::Uri>() else {
                return Ok(());
            };
            for server in &servers {
                let target = server.target_for(&uri);
                let url = server.url_for(&uri);
                match (&target, &url) {
                    (Ok(target), Ok(url)) => {
                        forwardable.set(forwardable.get() + 1);
                        prop_assert_eq!(target.origin_form().as_str(), &url[url::Position::BeforePath..]);
                        let rebuilt = server.url_of(target);
                        prop_assert_eq!(rebuilt.as_str(), url.as_str());
                    }
                    (Err(_), Err(_)) => {}
                    _ => prop_assert!(false, "{raw}: target_for {target:?}, url_for {url:?}"),
                }
            }
        });
        assert!(
            forwardable.get() > 0,
            "some generated requests are forwardable"
        );
        for raw in [
            "*",
            "apiserver:443",
            "http://apiserver/api?watch=1",
            "/version?",
        ] {
            let uri: http::Uri = raw.parse().expect("a request target hyper accepts");
            for server in &servers {
                let target = server.target_for(&uri).map(|t| t.origin_form().to_string());
                let url = server
                    .url_for(&uri)
                    .map(|url| url[url::Position::BeforePath..].to_owned());
                assert_eq!(target.ok(), url.ok(), "{raw}");
            }
        }
    }

    #[test]
    fn ordinary_paths_and_queries_pass_unparsed() {
        assert!(path_passes_unparsed(
            "/api/v1/namespaces/d%65fault/pods/demo:8080/proxy/a@b"
        ));
        assert!(query_passes_unparsed(
            "labelSelector=app%3Dweb,tier!=db&watch=1&fieldSelector=a?b"
        ));
    }

    #[test]
    fn bytes_a_parser_would_change_do_not() {
        for path in [
            "/a b", "/a\"b", "/a#b", "/a?b", "/a{b}", "/a`b", "/a^b", "/café", "/a\tb",
        ] {
            assert!(!path_passes_unparsed(path), "{path}");
        }
        for query in ["a b", "a'b", "a#b", "a<b>", "a\"b", "café"] {
            assert!(!query_passes_unparsed(query), "{query}");
        }
    }

    #[test]
    fn the_target_joins_base_path_path_and_query() {
        let target =
            UpstreamTarget::join("/k8s/c-1", "/api/v1/pods", Some("watch=1")).expect("valid");
        assert_eq!(
            target.origin_form().as_str(),
            "/k8s/c-1/api/v1/pods?watch=1"
        );
        assert_eq!(target.path(), "/k8s/c-1/api/v1/pods");
        assert_eq!(target.query(), Some("watch=1"));
        let bare = UpstreamTarget::join("", "/version", Some("")).expect("valid");
        assert_eq!(bare.origin_form().as_str(), "/version?");
        assert_eq!(bare.query(), Some(""));
    }
}
