//! The errors a LocalAPI call can end with.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a LocalAPI call failed.
///
/// The variants follow what a caller does next: an unknown peer is an unauthenticated caller (401),
/// an unreachable or slow daemon is an unavailable identity source (503), anything else is a daemon
/// that answered but not as expected (502).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalApiError {
    /// tailscaled knows no tailnet node at this address (`404 no match for IP:port`; Go:
    /// `ErrPeerNotFound`).
    #[error("no tailnet peer matches {addr}: {message}")]
    UnknownPeer {
        /// The address that was looked up.
        addr: SocketAddr,
        /// The daemon's error text.
        message: String,
    },
    /// tailscaled refused the call (403), e.g. because this process may not read the LocalAPI
    /// (Go: `AccessDeniedError`).
    #[error("tailscaled LocalAPI access denied: {0}")]
    AccessDenied(String),
    /// The socket could not be connected to: tailscaled is not running, or the path is wrong.
    #[error("cannot connect to tailscaled LocalAPI at {}: {source}", .socket.display())]
    Unreachable {
        /// The socket path that was tried.
        socket: PathBuf,
        /// The error from `connect(2)`.
        #[source]
        source: io::Error,
    },
    /// The call did not complete within the client's timeout.
    #[error("tailscaled LocalAPI call timed out")]
    Timeout,
    /// tailscaled answered with another non-200 status.
    #[error("tailscaled LocalAPI returned HTTP {status}: {message}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The daemon's error text, trimmed and truncated.
        message: String,
    },
    /// The answer could not be understood: bad JSON, bad PEM, an oversized body, or a broken HTTP
    /// exchange.
    #[error("malformed tailscaled LocalAPI response: {0}")]
    Malformed(String),
}
