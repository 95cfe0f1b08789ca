//! The TCP/TLS edge shared by `kube-auth-proxy`, `kube-recorder` and their test tools.
//!
//! - [`accept`]: [`BoundedListener`], an accept loop that hands out at most N connections at
//!   once, stops when shutdown is asked for, and afterwards waits (for at most a grace period)
//!   until the connections it handed out have ended.
//! - [`verify`]: [`AnyServerCertificate`], the rustls verifier behind kubeconfig's
//!   `insecure-skip-tls-verify` and tests against self-signed servers. **Insecure by design**:
//!   it accepts any certificate and checks only the handshake signatures.
//!
//! - [`proxy_protocol`]: the PROXY protocol header (v1 and v2) an L4 forwarder writes before the
//!   client's bytes, parsed without I/O and bounded; [`read_proxy_header`] reads exactly the
//!   header from a connection.
//!
//! - [`raise_open_file_limit`]: the soft limit on open files raised to the hard one, so a
//!   server can hold thousands of connections.
//!
//! What a server does with a connection (its TLS handshake, HTTP, per-client limits, its own
//! draining) stays in the server.

pub mod accept;
mod open_files;
pub mod proxy_protocol;
pub mod verify;

pub use accept::{
    read_proxy_header, Accepted, BoundedListener, ConnectionSlot, Draining, ProxyHeaderError,
};
pub use open_files::raise_open_file_limit;
pub use verify::AnyServerCertificate;

/// The README's example is compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
