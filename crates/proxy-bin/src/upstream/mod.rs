//! The upstream API server: configuration (kubeconfig, in-cluster), credentials and the client.

pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod kubeconfig;
pub(crate) mod lane;
pub(crate) mod request_headers;
pub(crate) mod self_signed_ca;
pub(crate) mod target;
pub(crate) mod tls;
pub(crate) mod token;

pub(crate) use client::Upstream;
pub(crate) use request_headers::UpstreamHeaders;
