//! Kubernetes `RequestInfo` from an HTTP method, path and query: what the kube-apiserver makes of
//! a request (resource or not; verb, API group and version, namespace, resource, subresource,
//! name; list and watch selectors), so that a proxy in front of it records and decides on the
//! same reading.
//!
//! Implements `RequestInfoFactory.NewRequestInfo` of the kube-apiserver
//! (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`, Kubernetes 1.31 and later, with the
//! `AuthorizeWithSelectors` behaviour that is the default from 1.32 and always on from 1.34), with
//! the API prefixes `api` and `apis` and `api` groupless, and what it depends on for the same
//! answers:
//! - Go's `net/url`: the path is percent-decoded before it is split (`%2F` is a separator), the
//!   query parsed as `url.ParseQuery` does;
//! - `ListOptions` decoding (`k8s.io/apimachinery`): `watch` as Go's query booleans, and a
//!   `fieldSelector=metadata.name=...` naming the object only when the whole query decodes, which
//!   takes the field and label selector grammars and the integer parameters.
//!
//! ```
//! let info = requestinfo::parse(
//!     "GET",
//!     "/api/v1/namespaces/default/pods",
//!     "watch=1&labelSelector=app%3Ddemo",
//! );
//! assert!(info.is_resource_request);
//! assert_eq!(info.verb, "watch");
//! assert_eq!(info.namespace, "default");
//! assert_eq!(info.resource, "pods");
//! assert_eq!(info.label_selector, "app=demo");
//!
//! let exec = requestinfo::parse("POST", "/api/v1/namespaces/default/pods/web-0/exec", "command=sh");
//! assert_eq!((exec.verb.as_str(), exec.name.as_str(), exec.subresource.as_str()),
//!            ("create", "web-0", "exec"));
//!
//! let version = requestinfo::parse("GET", "/version", "");
//! assert!(!version.is_resource_request);
//! assert_eq!(version.verb, "get");
//! ```
//!
//! Pure: no I/O, no clock, no globals, no `unsafe`; no input makes it panic.

#![warn(missing_docs, unreachable_pub)]

use std::collections::BTreeMap;

mod field_selector;
mod go_url;
mod label_selector;
mod list_options;
mod path_check;
mod request_info;
mod validation;

pub use go_url::{query_pairs, too_many_query_params, QueryPair, MAX_QUERY_PARAMS};
pub use path_check::{path_ambiguity, PathAmbiguity};
pub use request_info::{parse, RequestInfo};

/// The query's parameters, decoded, as Go's `url.Values` from `url.ParseQuery`: each key with all
/// its values in order. As in Go, pairs are split on `&` only; a pair containing `;` or a
/// malformed `%` escape is dropped; `+` is a space; a key without `=` has the value `""`; a query
/// of more than 10 000 parameters yields nothing. Decoded bytes that are not UTF-8 become U+FFFD.
///
/// ```
/// let values = requestinfo::query_values("container=app&command=ls&command=-l&tty");
/// assert_eq!(values["command"], ["ls", "-l"]);
/// assert_eq!(values["tty"], [""]);
/// ```
pub fn query_values(query: &str) -> BTreeMap<String, Vec<String>> {
    go_url::query_values(query)
}

/// The README's example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
