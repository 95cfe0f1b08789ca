//! The TCP/TLS edge (work in progress: filled in by the tlsedge change).
