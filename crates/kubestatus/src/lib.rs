//! Kubernetes `metav1.Status` objects (work in progress: filled in by the kubestatus change).
