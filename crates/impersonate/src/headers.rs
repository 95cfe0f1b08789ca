//! Scrubbing caller credentials and writing Kubernetes impersonation headers.
//!
//! Kubernetes user impersonation: `Impersonate-User`, `Impersonate-Group` (repeatable),
//! `Impersonate-Uid` and `Impersonate-Extra-<key>`
//! (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation>).
//! Tailscale's proxy deletes `Authorization`, `Impersonate-User`, `Impersonate-Group`,
//! `Impersonate-Uid` and every `Impersonate-Extra-*`; this crate removes every `Impersonate-*`,
//! so a header Kubernetes adds later cannot slip through.

use capmodel::{group_name_problem, user_name_problem, Impersonation};
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use crate::error::ImpersonateError;
use crate::hop_by_hop::remove_hop_by_hop;
use crate::mode::Mode;
use crate::websocket_token::strip_bearer_subprotocols;

/// `Impersonate-User`.
pub const IMPERSONATE_USER: HeaderName = HeaderName::from_static("impersonate-user");
/// `Impersonate-Group`.
pub const IMPERSONATE_GROUP: HeaderName = HeaderName::from_static("impersonate-group");

/// Prefix of every impersonation header, lowercase as [`HeaderName`]s are.
const IMPERSONATE_PREFIX: &str = "impersonate-";
/// Prefix of the authenticating-proxy identity headers (requestheader authentication defaults).
const REMOTE_IDENTITY_PREFIX: &str = "x-remote-";

/// True for headers a caller must never be able to pass upstream in auth mode:
/// `Authorization`, any name starting with `Impersonate-`, and the authenticating-proxy identity
/// headers (`X-Remote-User`, `X-Remote-Group`, `X-Remote-Extra-*`). [`HeaderName`]s are lowercase, so
/// any letter case the caller used is covered.
///
/// The same names spelt with `_` for `-` (`Impersonate_User`) count too: some front proxies and
/// CGI-style servers map `_` onto `-` (or both onto one variable), so such a name could arrive at
/// an API server as the identity header itself.
pub fn is_caller_credential(name: &HeaderName) -> bool {
    let name = name.as_str();
    if name.contains('_') {
        return names_credential(&name.replace('_', "-"));
    }
    names_credential(name)
}

fn names_credential(name: &str) -> bool {
    name == AUTHORIZATION.as_str()
        || name.starts_with(IMPERSONATE_PREFIX)
        || name.starts_with(REMOTE_IDENTITY_PREFIX)
}

/// Removes every caller credential (all values), keeping every other header and value in its
/// original order: each header [`is_caller_credential`] names, and bearer-token entries of
/// `Sec-WebSocket-Protocol` (see [`is_bearer_subprotocol`](crate::is_bearer_subprotocol)).
pub fn scrub_caller_credentials(headers: &mut HeaderMap) {
    retain_headers(headers, |name| !is_caller_credential(name));
    strip_bearer_subprotocols(headers);
}

/// Keeps only the headers whose name passes `keep`, in their original order.
pub(crate) fn retain_headers(headers: &mut HeaderMap, keep: impl Fn(&HeaderName) -> bool) {
    if headers.keys().all(&keep) {
        return;
    }
    // Rebuild rather than `HeaderMap::remove`, which swaps the last header into the removed
    // one's place and so reorders what remains.
    let original = std::mem::take(headers);
    headers.reserve(original.len());
    let mut current: Option<HeaderName> = None;
    for (name, value) in original {
        // `into_iter` names a header once, then yields its further values with `None`.
        if let Some(name) = name {
            current = Some(name);
        }
        if let Some(name) = current.as_ref().filter(|name| keep(name)) {
            headers.append(name.clone(), value);
        }
    }
}

/// Writes `Impersonate-User` (exactly one, replacing any) and one `Impersonate-Group` per group,
/// in order (replacing any). Other `Impersonate-*` headers are left alone: call
/// [`scrub_caller_credentials`] first, or use [`prepare_upstream_headers`].
///
/// # Errors
/// [`ImpersonateError`] when a name cannot be sent faithfully as a header value; `headers` is
/// then unchanged.
pub fn write_impersonation(
    headers: &mut HeaderMap,
    who: &Impersonation,
) -> Result<(), ImpersonateError> {
    let values = ImpersonationValues::new(who)?;
    values.write(headers);
    Ok(())
}

/// Makes a request's headers ready for the upstream API server. The order of work is what makes
/// it safe: everything the caller sent is cleaned first, and only then are headers of the proxy's
/// own written, so nothing the caller sent can remove or change them.
///
/// 1. In both modes, the hop-by-hop headers ([`remove_hop_by_hop`]), including every header the
///    caller's `Connection` names.
/// 2. [`Mode::Auth`]: every caller credential ([`scrub_caller_credentials`]); then the caller's
///    impersonation is written ([`write_impersonation`]).
///    [`Mode::NoAuth`]: nothing more, so the caller's own credentials pass through.
///
/// A proxy adds its own credential and any `Connection`/`Upgrade` it needs after this.
///
/// # Errors
/// In auth mode, [`ImpersonateError`] when a name cannot be sent as a header value; `headers`
/// is then unchanged.
pub fn prepare_upstream_headers(
    headers: &mut HeaderMap,
    mode: Mode,
    who: &Impersonation,
) -> Result<(), ImpersonateError> {
    match mode {
        Mode::NoAuth => {
            remove_hop_by_hop(headers);
            Ok(())
        }
        Mode::Auth => {
            // Check every name before touching the headers, so an error leaves them as they were.
            let values = ImpersonationValues::new(who)?;
            remove_hop_by_hop(headers);
            scrub_caller_credentials(headers);
            values.write(headers);
            Ok(())
        }
    }
}

/// The header values of an impersonation, all checked.
struct ImpersonationValues {
    user: HeaderValue,
    groups: Vec<HeaderValue>,
}

impl ImpersonationValues {
    fn new(who: &Impersonation) -> Result<Self, ImpersonateError> {
        if let Some(problem) = user_name_problem(&who.user) {
            return Err(ImpersonateError::InvalidUser {
                user: who.user.clone(),
                problem,
            });
        }
        let user = header_value("Impersonate-User", &who.user)?;
        let groups = who
            .groups
            .iter()
            .map(|group| {
                if let Some(problem) = group_name_problem(group) {
                    return Err(ImpersonateError::InvalidGroup {
                        group: group.clone(),
                        problem,
                    });
                }
                header_value("Impersonate-Group", group)
            })
            .collect::<Result<_, _>>()?;
        Ok(ImpersonationValues { user, groups })
    }

    fn write(self, headers: &mut HeaderMap) {
        retain_headers(headers, |name| {
            name != IMPERSONATE_USER && name != IMPERSONATE_GROUP
        });
        headers.append(IMPERSONATE_USER, self.user);
        for group in self.groups {
            headers.append(IMPERSONATE_GROUP, group);
        }
    }
}

fn header_value(header: &'static str, value: &str) -> Result<HeaderValue, ImpersonateError> {
    HeaderValue::from_str(value).map_err(|_| ImpersonateError::InvalidHeaderValue {
        header,
        value: value.to_owned(),
    })
}
