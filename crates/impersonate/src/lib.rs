//! impersonate (placeholder, being written).
