//! Kubernetes user impersonation for an authenticating proxy: removes every credential and
//! impersonation header a caller sent, then writes `Impersonate-User` and `Impersonate-Group`
//! for the caller the proxy authenticated.
//!
//! Implements the header handling of Tailscale's Kubernetes operator API server proxy
//! (`cmd/k8s-operator`: the `Rewrite` hook and `addImpersonationHeaders`) on top of Kubernetes
//! user impersonation
//! (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation>).
//! Who to impersonate comes from [`capmodel::Impersonation`].
//!
//! In [`Mode::Auth`] the proxy calls the API server with its own credentials, which are
//! allowed to impersonate; so a caller's `Authorization` or `Impersonate-*` header reaching the
//! API server would let the caller choose its own identity. First the hop-by-hop headers go
//! (including whatever the caller's `Connection` names, which could otherwise remove the headers
//! the proxy writes), then every header named `Authorization` or starting with `Impersonate-`
//! (any letter case, `_` for `-` too) and every bearer token in `Sec-WebSocket-Protocol`; only
//! then are the caller's impersonation headers written. In [`Mode::NoAuth`] the proxy has no
//! credentials of its own and the caller's pass through (hop-by-hop headers still go).
//!
//! Pure: works on an [`http::HeaderMap`], no I/O.
//!
//! ```
//! use capmodel::Impersonation;
//! use http::HeaderMap;
//! use impersonate::{prepare_upstream_headers, Mode};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("authorization", "Bearer caller-token".parse()?);
//! headers.insert("IMPERSONATE-USER", "system:admin".parse()?);
//! headers.insert("accept", "application/json".parse()?);
//!
//! let who = Impersonation { user: "alice@example.com".into(), groups: vec!["eng".into()] };
//! prepare_upstream_headers(&mut headers, Mode::Auth, &who)?;
//!
//! assert!(headers.get("authorization").is_none());
//! assert_eq!(headers["impersonate-user"], "alice@example.com");
//! assert_eq!(headers["impersonate-group"], "eng");
//! assert_eq!(headers["accept"], "application/json");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod headers;
mod hop_by_hop;
mod mode;
mod websocket_token;

pub use error::ImpersonateError;
pub use headers::{
    is_caller_credential, prepare_upstream_headers, scrub_caller_credentials, write_impersonation,
    IMPERSONATE_GROUP, IMPERSONATE_USER,
};
pub use hop_by_hop::remove_hop_by_hop;
pub use mode::{Mode, ParseModeError};
pub use websocket_token::{is_bearer_subprotocol, BEARER_SUBPROTOCOL_PREFIX};

/// The README's example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

#[cfg(test)]
mod tests;
