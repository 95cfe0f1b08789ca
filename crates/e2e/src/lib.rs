//! The end-to-end harness: starts the real `kube-auth-proxy` in front of the testkit stand-ins (a
//! kube-apiserver and a tailscaled LocalAPI) as separate processes, and drives the real `kubectl`
//! through it. Used by this crate's tests and by `cargo xtask demo`.
//!
//! Processes announce readiness with a `listening on ...` line on stdout; the harness waits for that
//! line (with a deadline) instead of sleeping.

pub mod binaries;
pub mod cast;
pub mod demo;
pub mod http;
pub mod kubectl;
pub mod port_forward;
pub mod process;
pub mod raw;
pub mod raw_spdy;
pub mod scale;
pub mod stack;
pub mod terminal;
pub mod webdriver;

pub use stack::{Stack, StackOptions};
