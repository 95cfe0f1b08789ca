//! localapi (placeholder, being written).
