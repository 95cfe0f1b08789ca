//! An async client for tailscaled's LocalAPI, spoken over the daemon's Unix socket.
//!
//! tailscaled serves an HTTP/1.1 API on a local Unix socket (on Linux
//! [`DEFAULT_SOCKET`]). This crate implements the three calls an authenticating proxy needs, with
//! the same requests and the same reading of the answers as Tailscale's own Go client
//! (`tailscale.com/client/local`, type `Client`; formerly `client/tailscale.LocalClient`):
//!
//! | Method | Request | Go counterpart |
//! |---|---|---|
//! | [`LocalApiClient::whois`] | `GET /localapi/v0/whois?addr=<ip:port>` | `Client.WhoIs` |
//! | [`LocalApiClient::cert_pair`] | `GET /localapi/v0/cert/<domain>?type=pair` | `Client.CertPair` |
//! | [`LocalApiClient::status`] | `GET /localapi/v0/status?peers=false` | `Client.StatusWithoutPeers` |
//!
//! Every request carries `Host: local-tailscaled.sock` and neither `Origin` nor `Referer`, because
//! tailscaled (`ipn/localapi/localapi.go`, `Handler.ServeHTTP` / `validHost`) rejects anything else
//! with 403 as a defence against browsers reaching the API. Error answers are `text/plain` (or
//! `{"error": "..."}` JSON in newer daemons); their text is kept in [`LocalApiError`].
//!
//! Each call opens its own connection, is bounded by one timeout (connect, request and body
//! together, see [`LocalApiClient::with_timeout`]) and reads at most [`MAX_RESPONSE_BYTES`] of
//! body, so a misbehaving daemon can neither stall a caller forever nor grow its memory.
//!
//! ```no_run
//! # async fn run() -> Result<(), localapi::LocalApiError> {
//! use localapi::{LocalApiClient, DEFAULT_SOCKET};
//!
//! let client = LocalApiClient::new(DEFAULT_SOCKET);
//! let who = client.whois("100.101.102.103:52341".parse().expect("socket address")).await?;
//! println!("{who:?}");
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]

mod cert;
mod client;
mod error;
mod retry;
mod status;
mod transport;

pub use cert::CertPair;
pub use client::LocalApiClient;
pub use error::LocalApiError;
pub use status::{SelfStatus, Status};

/// The Unix socket tailscaled listens on by default on Linux.
///
/// macOS builds of tailscaled use `/var/run/tailscaled.socket` instead (Go: `paths.DefaultTailscaledSocket`).
pub const DEFAULT_SOCKET: &str = "/var/run/tailscale/tailscaled.sock";

/// The `Host` header value Tailscale's clients send and tailscaled accepts (Go: `apitype.LocalAPIHost`).
pub const LOCAL_API_HOST: &str = "local-tailscaled.sock";

/// The largest response body a call reads (4 MiB); a longer body is reported as
/// [`LocalApiError::Malformed`].
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
