//! kube-auth-proxy: an authenticating, session-recording proxy for the Kubernetes API, as a
//! library. The `kube-auth-proxy` binary parses its flags into a [`Cli`] and calls [`start`];
//! tests and other programs can do the same in-process.
//!
//! The parts it assembles live in the workspace's crates: the identity source (`localapi`, or
//! TLS client certificates), policy (`capmodel`, also for the `--policy` file), header rewriting
//! (`impersonate`), request classification (`requestinfo`), session observation (`sessiontap`)
//! and recording (`recorder-client`). See `docs/architecture.md`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use clap::Parser as _;
//! let cli = kube_auth_proxy::Cli::try_parse_from([
//!     "kube-auth-proxy", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
//!     "--tls-self-signed", "--upstream-kubeconfig", "upstream.kubeconfig",
//! ])?;
//! let proxy = kube_auth_proxy::start(cli).await?;
//! println!("serving on https://{}", proxy.listen());
//! proxy.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod admission;
mod api_events;
mod app;
mod caller_limit;
mod cli;
mod exec;
mod forward;
mod health;
mod identity;
mod identity_cache;
mod logging;
mod metrics;
mod mode;
mod node_commands;
mod portforward;
mod proxy;
mod server;
mod serving_cert;
mod sessions;
mod status;
mod sync_body;
mod upgrade;
mod upstream;
mod workers;

pub use app::App;
pub use cli::{Cli, IdentityArg, LogColor, LogFormat, ModeArg};
pub use logging::init as init_logging;
pub use proxy::{start, RunningProxy};
