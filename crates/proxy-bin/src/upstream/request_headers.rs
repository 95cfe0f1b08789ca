//! The headers of a request on its way upstream, built in the one order that is safe.
//!
//! Everything the caller sent is cleaned first (hop-by-hop headers, including whatever the caller's
//! `Connection` names; in auth mode every caller credential), then the caller's impersonation is
//! written, and the proxy's own credential and connection headers are added last, when the request
//! is sent. [`UpstreamHeaders`] can only be made by that cleaning, so no path can send caller
//! headers upstream without it, nor clean them again after the proxy's headers are in.

use capmodel::Impersonation;
use http::HeaderMap;
use impersonate::{ImpersonateError, Mode};

/// A caller's request headers after [`impersonate::prepare_upstream_headers`].
#[derive(Debug, Clone, Default)]
pub(crate) struct UpstreamHeaders(HeaderMap);

impl UpstreamHeaders {
    /// Cleans `headers` as the mode requires and writes the caller's impersonation (auth mode).
    pub(crate) fn from_caller(
        mut headers: HeaderMap,
        mode: Mode,
        who: &Impersonation,
    ) -> Result<UpstreamHeaders, ImpersonateError> {
        impersonate::prepare_upstream_headers(&mut headers, mode, who)?;
        Ok(UpstreamHeaders(headers))
    }

    /// No caller headers at all (the proxy's own probes).
    pub(crate) fn none() -> UpstreamHeaders {
        UpstreamHeaders::default()
    }

    /// The headers, for the proxy to add its own to.
    pub(crate) fn into_inner(self) -> HeaderMap {
        self.0
    }
}
