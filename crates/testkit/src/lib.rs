//! testkit (placeholder, being written).
pub mod localapi_standin;
