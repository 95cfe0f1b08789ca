//! testkit (placeholder, being written).
