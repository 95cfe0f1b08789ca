//! `RequestInfo` and the parser that fills it, following `RequestInfoFactory.NewRequestInfo` of
//! `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go` (Kubernetes 1.31 and later, where the
//! selectors are recorded) with `APIPrefixes {"api", "apis"}` and
//! `GrouplessAPIPrefixes {"api"}`, as the kube-apiserver configures it.

use serde::{Serialize, Serializer};

use crate::go_url::{self, first};
use crate::list_options::list_query;
use crate::validation::is_valid_path_segment_name;

/// Path prefixes under which resources are served.
const API_PREFIXES: [&str; 2] = ["api", "apis"];
/// Prefixes whose next segment is the version, not an API group (the core group).
const GROUPLESS_API_PREFIXES: [&str; 1] = ["api"];
/// The deprecated verbs-in-the-path: `/api/v1/watch/pods`, `/api/v1/proxy/nodes/n1`.
const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
/// Path-prefix verbs after which no segment is a subresource (the rest is the proxied path).
const SPECIAL_VERBS_NO_SUBRESOURCES: [&str; 1] = ["proxy"];
/// What may follow `namespaces/{name}` as a subresource of the namespace rather than as a
/// resource inside it.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];
/// The verbs whose `fieldSelector` and `labelSelector` the apiserver records (and authorizes).
const VERBS_WITH_SELECTORS: [&str; 3] = ["list", "watch", "deletecollection"];

/// What the kube-apiserver makes of a request: whether it is for an API resource, and if so
/// which one and with what Kubernetes verb.
///
/// Serialises with the Go field names (`IsResourceRequest`, `Path`, `Verb`, `APIPrefix`,
/// `APIGroup`, `APIVersion`, `Namespace`, `Resource`, `Subresource`, `Name`, `Parts`,
/// `FieldSelector`, `LabelSelector`), as the `kubernetes` object of Tailscale's recorder events
/// carries it. Empty `parts` serialise as `null`, as Go's nil slice does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestInfo {
    /// Whether the request is for an API resource or subresource. Discovery (`/api`, `/apis`,
    /// `/apis/{group}`, `/api/{version}`, `/apis/{group}/{version}`) and everything outside the
    /// API prefixes (`/version`, `/healthz`, `/openapi/v2`, ...) is not.
    pub is_resource_request: bool,
    /// The URL path, percent-decoded as Go's `URL.Path` holds it (the raw path when it holds a
    /// malformed escape, which Go's HTTP server refuses with 400).
    pub path: String,
    /// For a resource request the Kubernetes verb: `get`, `list`, `watch`, `create`, `update`,
    /// `patch`, `delete`, `deletecollection` or `proxy`, and empty when the HTTP method is none of
    /// GET, HEAD, POST, PUT, PATCH and DELETE. Otherwise the lower-case HTTP method.
    pub verb: String,
    /// `api` or `apis`, for resource requests.
    #[serde(rename = "APIPrefix")]
    pub api_prefix: String,
    /// The API group; empty for the core group (`/api/...`).
    #[serde(rename = "APIGroup")]
    pub api_group: String,
    /// The API version, e.g. `v1`.
    #[serde(rename = "APIVersion")]
    pub api_version: String,
    /// The namespace of a namespaced request; for the `namespaces` resource itself, the
    /// namespace named (`/api/v1/namespaces/foo` is in namespace `foo`).
    pub namespace: String,
    /// The resource, e.g. `pods`.
    pub resource: String,
    /// The subresource, e.g. `exec`, `log`, `status`.
    pub subresource: String,
    /// The object's name, from the path or, for a list or watch, from a
    /// `fieldSelector=metadata.name=...` that is the only way it names an object.
    pub name: String,
    /// The path segments from the resource on: `[resource, name, subresource, ...]`.
    #[serde(serialize_with = "serialize_parts")]
    pub parts: Vec<String>,
    /// The raw `fieldSelector` of a list, watch or deletecollection (not of the deprecated
    /// `/watch/` form); empty otherwise.
    pub field_selector: String,
    /// The raw `labelSelector` of a list, watch or deletecollection (not of the deprecated
    /// `/watch/` form); empty otherwise.
    pub label_selector: String,
}

/// Go's `json.Marshal` of a nil `[]string` is `null`; `RequestInfoFactory` leaves `Parts` nil
/// exactly when it has none.
fn serialize_parts<S: Serializer>(parts: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    if parts.is_empty() {
        serializer.serialize_none()
    } else {
        serializer.collect_seq(parts)
    }
}

/// Parses a request as the kube-apiserver does: `method` is the HTTP method, `path` the URL path
/// as it arrived (percent-encoded), `query` the raw query string without `?` (may be empty).
///
/// Never panics. Where Go's `NewRequestInfo` returns an error — a path ending in a deprecated
/// verb with nothing after it, `/api/v1/watch` or `/apis/g/v1/proxy` — the apiserver answers 500
/// and this returns what Go's `RequestInfo` holds at that point: a resource request with the
/// prefix, group and version, the lower-case HTTP method as its verb, and nothing else.
pub fn parse(method: &str, path: &str, query: &str) -> RequestInfo {
    let path = go_url::unescape_path(path).unwrap_or_else(|| path.to_owned());
    let segments = split_path(&path);
    let mut info = RequestInfo {
        path: path.clone(),
        verb: go_to_lower(method),
        ..RequestInfo::default()
    };
    let Some(mut rest) = api_version_segments(&segments, &mut info) else {
        return info;
    };

    let mut verb_via_path_prefix = false;
    match rest {
        [verb, tail @ ..] if SPECIAL_VERBS.contains(verb) => {
            if tail.is_empty() {
                // Go: "unable to determine kind and namespace from url".
                return info;
            }
            info.verb = (*verb).to_owned();
            rest = tail;
            verb_via_path_prefix = true;
        }
        _ => info.verb = verb_of_method(method).to_owned(),
    }

    // `namespaces/{ns}/{resource}/...`: the resource is what follows the namespace, unless that
    // is a subresource of the namespace itself.
    if let ["namespaces", namespace, tail @ ..] = rest {
        info.namespace = (*namespace).to_owned();
        if tail
            .first()
            .is_some_and(|next| !NAMESPACE_SUBRESOURCES.contains(next))
        {
            rest = tail;
        }
    }

    info.parts = rest.iter().map(|part| (*part).to_owned()).collect();
    let subresources = !SPECIAL_VERBS_NO_SUBRESOURCES.contains(&info.verb.as_str());
    match rest {
        [resource, name, subresource, ..] if subresources => {
            info.subresource = (*subresource).to_owned();
            info.name = (*name).to_owned();
            info.resource = (*resource).to_owned();
        }
        [resource, name, ..] => {
            info.name = (*name).to_owned();
            info.resource = (*resource).to_owned();
        }
        [resource] => info.resource = (*resource).to_owned(),
        [] => {}
    }

    let values = go_url::query_values(query);
    if info.name.is_empty() && info.verb == "get" {
        let list = list_query(&values);
        info.verb = if list.watch { "watch" } else { "list" }.to_owned();
        if let Some(name) = list.name.filter(|name| is_valid_path_segment_name(name)) {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_owned();
    }

    // The deprecated `/watch/` form has single-object and collection endpoints and only the
    // latter takes selectors, so the apiserver does not record them for it.
    if !verb_via_path_prefix && VERBS_WITH_SELECTORS.contains(&info.verb.as_str()) {
        if let Some(selector) = first(&values, "fieldSelector") {
            info.field_selector = selector.to_owned();
        }
        if let Some(selector) = first(&values, "labelSelector") {
            info.label_selector = selector.to_owned();
        }
    }
    info
}

/// Consumes `{prefix}[/{group}]/{version}` and fills those fields; `None` (the request is not a
/// resource request) unless a segment follows them.
fn api_version_segments<'a, 's>(
    segments: &'a [&'s str],
    info: &mut RequestInfo,
) -> Option<&'a [&'s str]> {
    // Go checks the count before the prefix: `/api/v1` is discovery, not a resource request.
    if segments.len() < 3 {
        return None;
    }
    let (prefix, mut rest) = segments.split_first()?;
    if !API_PREFIXES.contains(prefix) {
        return None;
    }
    info.api_prefix = (*prefix).to_owned();
    if !GROUPLESS_API_PREFIXES.contains(prefix) {
        // A group, a version and at least one more segment.
        if rest.len() < 3 {
            return None;
        }
        let (group, tail) = rest.split_first()?;
        info.api_group = (*group).to_owned();
        rest = tail;
    }
    let (version, tail) = rest.split_first()?;
    info.is_resource_request = true;
    info.api_version = (*version).to_owned();
    Some(tail)
}

/// Go's `splitPath`: leading and trailing slashes trimmed, then split on `/`, empty segments
/// kept; no segments for an empty path.
fn split_path(path: &str) -> Vec<&str> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// The verb of a resource request from its HTTP method, compared case-sensitively as Go does.
fn verb_of_method(method: &str) -> &'static str {
    match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    }
}

/// Go's `strings.ToLower`: each character by its simple lower-case mapping (`İ` becomes `i`, and
/// `Σ` is `σ` everywhere, unlike `str::to_lowercase`). Methods are HTTP tokens, so in practice
/// only ASCII arrives here.
fn go_to_lower(method: &str) -> String {
    method
        .chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_follows_go() {
        assert!(split_path("").is_empty());
        assert!(split_path("///").is_empty());
        assert_eq!(split_path("/api/v1/"), ["api", "v1"]);
        assert_eq!(split_path("//api//v1"), ["api", "", "v1"]);
        assert_eq!(split_path("api"), ["api"]);
    }

    #[test]
    fn methods_lower_case_like_go() {
        assert_eq!(go_to_lower("OPTIONS"), "options");
        assert_eq!(go_to_lower("İΣ"), "iσ");
        assert_eq!(go_to_lower("ΑΣ"), "ασ");
    }
}
