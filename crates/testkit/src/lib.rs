//! testkit (placeholder, being written).
pub mod apiserver;
pub mod localapi_standin;
