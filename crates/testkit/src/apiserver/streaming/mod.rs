//! What the streaming subresources share: `pods/exec` and `pods/attach`
//! ([`super::remotecommand`]) and `pods/portforward` ([`super::portforward`]) upgrade the
//! connection the same way ([`handshake`]) and read SPDY header blocks as spdystream does
//! ([`spdy_headers`]).

pub(crate) mod handshake;
pub(crate) mod sha1;
pub(crate) mod spdy_headers;
