//! The TLS server configuration: the generated server certificate, ALPN `http/1.1` only (kubectl
//! needs HTTP/1.1 for upgrades), and optional client certificates verified against the CA, as the
//! apiserver's `--client-ca-file` does (tokens and anonymous requests still work without one).

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::pki::Pki;

pub(crate) fn server_config(pki: &Pki) -> anyhow::Result<Arc<ServerConfig>> {
    // An explicit provider: the process may have more than one compiled in.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
