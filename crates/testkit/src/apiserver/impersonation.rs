//! The apiserver's impersonation filter (`k8s.io/apiserver/pkg/endpoints/filters/impersonation.go`).
//!
//! Requests are built in the filter's order (user or service account, each group, each extra
//! value, the UID) and each must be allowed; the first refusal is a `403` naming that resource.
//! Groups, extras or a UID without `Impersonate-User` is an internal error (`500`) in the real
//! filter, and so it is here, with the filter's message (as a `Status` body, where the apiserver
//! writes plain text).

use std::collections::BTreeMap;

use http::HeaderMap;

use super::auth::Authenticated;
use super::identity::{UserInfo, ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS};
use super::status::Status;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// One thing the caller asks to act as (`v1.ObjectReference` in the Go filter).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    ServiceAccount { namespace: String, name: String },
    User(String),
    Group(String),
    Extra { key: String, value: String },
    Uid(String),
}

impl Request {
    /// `fmt.Sprintf("%v", ObjectReference)`: the seven fields Kind, Namespace, Name, UID,
    /// APIVersion, ResourceVersion, FieldPath separated by spaces, as the 500 message prints them.
    fn go_format(&self) -> String {
        const AUTHN_V1: &str = "authentication.k8s.io/v1";
        let (kind, ns, name, api_version, field_path) = match self {
            Request::ServiceAccount { namespace, name } => {
                ("ServiceAccount", namespace.as_str(), name.as_str(), "", "")
            }
            Request::User(name) => ("User", "", name.as_str(), "", ""),
            Request::Group(name) => ("Group", "", name.as_str(), "", ""),
            Request::Extra { key, value } => {
                ("UserExtra", "", value.as_str(), AUTHN_V1, key.as_str())
            }
            Request::Uid(uid) => ("UID", "", uid.as_str(), AUTHN_V1, ""),
        };
        format!("{{{kind} {ns} {name}  {api_version}  {field_path}}}")
    }

    /// (API group, resource, subresource, namespace, name) of the `impersonate` check.
    fn attributes(&self) -> (&'static str, &'static str, &str, &str, &str) {
        match self {
            Request::ServiceAccount { namespace, name } => {
                ("", "serviceaccounts", "", namespace, name)
            }
            Request::User(name) => ("", "users", "", "", name),
            Request::Group(name) => ("", "groups", "", "", name),
            Request::Extra { key, value } => {
                ("authentication.k8s.io", "userextras", key, "", value)
            }
            Request::Uid(uid) => ("authentication.k8s.io", "uids", "", "", uid),
        }
    }

    /// `responsewriters.Forbidden` for this request made by `requestor`.
    fn forbidden(&self, requestor: &str) -> Status {
        let (group, resource, subresource, namespace, name) = self.attributes();
        let full_resource = if subresource.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}/{subresource}")
        };
        let scope = if namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {namespace:?}")
        };
        let why = format!("User {requestor:?} cannot impersonate resource {full_resource:?} in API group {group:?} {scope}");
        let qualified = if group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{group}")
        };
        Status::forbidden(&qualified, resource, group, name, &why)
    }
}

/// The raw impersonation headers of a request, as a log would show them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImpersonationHeaders {
    pub(crate) user: Option<String>,
    pub(crate) groups: Vec<String>,
    pub(crate) uid: Option<String>,
    /// Header name after `Impersonate-Extra-` (lower case, still %-encoded) to values.
    pub(crate) extra: BTreeMap<String, Vec<String>>,
}

impl ImpersonationHeaders {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let text = |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
                extra.entry(key.to_owned()).or_default().push(text(value));
            }
        }
        ImpersonationHeaders {
            user: headers.get(USER).map(text),
            groups: headers.get_all(GROUP).iter().map(text).collect(),
            uid: headers.get(UID).map(text),
            extra,
        }
    }

    /// `buildImpersonationRequests`: the requests in the filter's order, or its error text.
    fn requests(&self) -> Result<Vec<Request>, String> {
        let mut requests = Vec::new();
        let user = self.user.as_deref().filter(|u| !u.is_empty());
        if let Some(user) = user {
            requests.push(match split_service_account(user) {
                Some((namespace, name)) => Request::ServiceAccount { namespace, name },
                None => Request::User(user.to_owned()),
            });
        }
        requests.extend(self.groups.iter().cloned().map(Request::Group));
        for (key, values) in &self.extra {
            let key = percent_decode(key);
            requests.extend(values.iter().map(|value| Request::Extra {
                key: key.clone(),
                value: value.clone(),
            }));
        }
        let uid = self.uid.as_deref().filter(|u| !u.is_empty());
        if let Some(uid) = uid {
            requests.push(Request::Uid(uid.to_owned()));
        }
        let has_others = !self.groups.is_empty() || !self.extra.is_empty() || uid.is_some();
        if has_others && user.is_none() {
            let list: Vec<String> = requests.iter().map(Request::go_format).collect();
            return Err(format!(
                "requested [{}] without impersonating a user",
                list.join(" ")
            ));
        }
        Ok(requests)
    }
}

/// The identity a request acts as: the caller itself without impersonation headers, else the
/// impersonated user if the caller may impersonate. `path` is only used in the `500` message.
pub(crate) fn effective_user(
    caller: &Authenticated,
    headers: &ImpersonationHeaders,
    path: &str,
) -> Result<UserInfo, Status> {
    let requests = headers.requests().map_err(|e| {
        Status::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal Server Error: {path:?}: {e}"),
        )
    })?;
    if requests.is_empty() {
        return Ok(caller.user.clone());
    }
    if !caller.may_impersonate {
        if let Some(first) = requests.first() {
            return Err(first.forbidden(&caller.user.username));
        }
    }
    let groups_specified = !headers.groups.is_empty();
    let mut username = String::new();
    let mut uid = None;
    let mut groups = Vec::new();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in requests {
        match request {
            Request::ServiceAccount { namespace, name } => {
                username = format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}");
                if !groups_specified {
                    groups = vec![
                        "system:serviceaccounts".to_owned(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
            }
            Request::User(name) => username = name,
            Request::Group(group) => groups.push(group),
            Request::Extra { key, value } => extra.entry(key).or_default().push(value),
            Request::Uid(value) => uid = Some(value),
        }
    }
    if username != ANONYMOUS {
        if !groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
        {
            groups.push(ALL_AUTHENTICATED.to_owned());
        }
    } else if !groups.iter().any(|g| g == ALL_UNAUTHENTICATED) {
        groups.push(ALL_UNAUTHENTICATED.to_owned());
    }
    Ok(UserInfo {
        username,
        uid,
        groups,
        extra,
    })
}

/// `serviceaccount.SplitUsername`: `system:serviceaccount:NS:NAME` with both parts non-empty.
fn split_service_account(user: &str) -> Option<(String, String)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let mut parts = rest.split(':');
    let (namespace, name) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && !namespace.is_empty() && !name.is_empty())
        .then(|| (namespace.to_owned(), name.to_owned()))
}

/// `url.PathUnescape`, keeping the key as it was when it is not valid %-encoding.
fn percent_decode(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => return key.to_owned(),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn caller(may: bool) -> Authenticated {
        Authenticated {
            user: UserInfo::authenticated("proxy", None, &[]),
            may_impersonate: may,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> ImpersonationHeaders {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("valid"));
        }
        ImpersonationHeaders::from_headers(&h)
    }

    #[test]
    fn user_and_groups() {
        let h = headers(&[
            ("impersonate-user", "alice"),
            ("impersonate-group", "a"),
            ("impersonate-group", "b"),
        ]);
        let u = effective_user(&caller(true), &h, "/").expect("allowed");
        assert_eq!(u.username, "alice");
        assert_eq!(u.groups, ["a", "b", "system:authenticated"]);
    }

    #[test]
    fn service_account_gets_its_groups() {
        let h = headers(&[("impersonate-user", "system:serviceaccount:ns1:sa")]);
        let u = effective_user(&caller(true), &h, "/").expect("allowed");
        assert_eq!(
            u.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn forbidden_wording() {
        let h = headers(&[("impersonate-user", "bob")]);
        let s = effective_user(&caller(false), &h, "/").expect_err("forbidden");
        assert_eq!(
            s.message,
            "users \"bob\" is forbidden: User \"proxy\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
        let h = headers(&[("impersonate-user", "system:serviceaccount:ns1:sa")]);
        let s = effective_user(&caller(false), &h, "/").expect_err("forbidden");
        assert_eq!(
            s.message,
            "serviceaccounts \"sa\" is forbidden: User \"proxy\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"ns1\""
        );
    }

    #[test]
    fn group_without_user_is_an_internal_error() {
        let h = headers(&[("impersonate-group", "devs")]);
        let s = effective_user(&caller(true), &h, "/api").expect_err("no user");
        assert_eq!(s.code, http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(s.message, "Internal Server Error: \"/api\": requested [{Group  devs    }] without impersonating a user");
    }

    #[test]
    fn extras_are_unescaped() {
        let h = headers(&[
            ("impersonate-user", "u"),
            ("impersonate-extra-scopes%2fx", "v"),
        ]);
        let u = effective_user(&caller(true), &h, "/").expect("allowed");
        assert_eq!(u.extra.get("scopes/x"), Some(&vec!["v".to_owned()]));
    }
}
