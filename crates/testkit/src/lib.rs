//! testkit (placeholder, being written).
pub mod apiserver;
pub mod load;
pub mod localapi_standin;
