//! capmodel (placeholder, being written).
