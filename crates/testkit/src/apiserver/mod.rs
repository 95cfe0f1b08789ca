//! A kube-apiserver stand-in, faithful enough for the real `kubectl` (v1.27 to v1.33).
//!
//! It serves what the proxy's tests need from an upstream cluster:
//!
//! - discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/authentication.k8s.io/v1`) in the legacy
//!   (non-aggregated) format, which kubectl falls back to when the answer is plain `application/json`;
//! - minimal OpenAPI v3 and v2 (protobuf) documents, because `kubectl create`/`apply` refuse to
//!   send objects when they cannot download one (they tell kubectl that server-side field
//!   validation is supported);
//! - pods: get, list (with label and field selectors, `limit`/`continue`), watch, create, delete,
//!   patch and replace; namespaces: get, list, create (also from kubectl's protobuf body);
//! - server-side tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) as `kubectl get` asks
//!   for them, also inside watch events;
//! - `SelfSubjectReview` (`kubectl auth whoami`);
//! - authentication (bearer tokens, client certificates, anonymous) and impersonation with the
//!   apiserver's status codes and messages;
//! - test hooks under `/testkit/` (no authentication): the log of requests received, and pod
//!   creation that fires watch events.
//!
//! Every error is a `metav1.Status` JSON body so kubectl prints it as it would a real server's.
//! Behaviour follows the Kubernetes v1.32 sources (`k8s.io/apiserver/pkg/endpoints`, `filters`,
//! `pkg/printers/internalversion`); where the stand-in simplifies, the module that does so says how.
//!
//! - `pods/exec` and `pods/attach` over SPDY/3.1 (remote command v1 to v4) and WebSocket
//!   (`v5.channel.k8s.io`, `v4.channel.k8s.io`, the base64 variants and `channel.k8s.io`),
//!   running real processes on the host (on a pseudo-terminal for a tty) and reporting their
//!   exit status as the kubelet does; attach connects to a pod's long-running main process
//!   (`attachCommand` in the configuration). See the `remotecommand` module.
//! - `pods/portforward` over SPDY/3.1 (`portforward.k8s.io`) and SPDY tunnelled in WebSocket
//!   (`SPDY/3.1+portforward.k8s.io`, kubectl's default), forwarding to host TCP addresses the
//!   configuration maps container ports to (`portForward`, globally or per pod). See the
//!   `portforward` module.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use testkit::apiserver::{ApiServer, ApiServerConfig, PodConfig, ServeOptions};
//!
//! let server = ApiServer::start(ApiServerConfig::default(), ServeOptions::tls()).await?;
//! let ca_pem = server.ca_pem(); // trust this to reach server.url()
//! server.add_pod(&PodConfig::new("default", "late"))?; // watchers see ADDED
//! for request in server.requests() {
//!     println!("{} {} as {:?}", request.method, request.path, request.effective_user);
//! }
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod auth;
mod config;
mod discovery;
mod hooks;
mod identity;
mod impersonation;
mod list_body;
mod list_options;
mod middleware;
mod names;
mod namespaces;
mod negotiation;
mod openapi;
mod openapi_v2;
mod pki;
mod pods;
mod portforward;
mod protobuf;
mod remotecommand;
mod request_body;
mod request_log;
mod responses;
mod router;
mod selectors;
mod selfsubjectreview;
mod server;
mod state;
mod status;
mod streaming;
mod tables;
mod timefmt;
mod tls;
mod watch;
mod x509_subject;

pub use config::{
    ApiServerConfig, ClientCertConfig, ConfigError, GeneratedPodsConfig, PodConfig, TokenConfig,
};
pub use identity::UserInfo;
pub use pki::{foreign_self_signed_ca_pem, ClientCertPem};
pub use pods::StoreError;
pub use request_log::RecordedRequest;
pub use server::{ApiServer, ServeOptions};
