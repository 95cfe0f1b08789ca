//! Pods: the object store (with namespaces), how a new pod object is completed, the HTTP
//! handlers, the patch semantics, and the `ephemeralcontainers` subresource.

pub(crate) mod ephemeral;
mod error;
pub(crate) mod handlers;
mod ids;
pub(crate) mod object;
mod patch;
pub(crate) mod store;
mod stored;

pub use error::StoreError;
